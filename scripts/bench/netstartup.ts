// Section net: start-up of a networked sandbox (launcher --net bridge, which
// calls the setuid netsetup) against `launcher --net none`, `node -e 0` and
// rootless `podman run --rm --network=slirp4netns`, all running /bin/true as
// the same unprivileged user, interleaved.
import { type Context } from './context.ts';
import { benchNetworkAdmin, benchNetworkOwn, netsetupHasAdminServe, netsetupServes, networkedArgv, podmanBench, networkLeftovers, settled } from './benchnet.ts';
import { checkTarget, ratioText, round, roundStats, skipped, stats, table, target, type SectionReport } from './report.ts';
import { timeInterleaved, type Command } from './startup.ts';

const NODE_LIMIT = 2;
const PODMAN_LIMIT = 1 / 3;
const TARGETS = [
  `networked sandbox median start-up <= ${NODE_LIMIT} x node -e 0`,
  'networked sandbox median start-up <= 1/3 x podman --network=slirp4netns',
  'nothing left behind (veths, leases, podman containers)',
];

export async function netStartup(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const bench = podmanBench(ctx);
  if ('skip' in bench) return skipped(bench.skip, TARGETS);
  const { launcher, net, rootfs, podman, notes, skips } = bench;

  // The same with serving off: each launcher runs a netsetup of its own (a
  // user's first sandbox, or an admin's serveSeconds 0).
  const own = netsetupServes(ctx) ? benchNetworkOwn(ctx) : undefined;
  // And serving off but the admin's `netsetup serve` running: every launcher
  // served, a user's first one included.
  const admin = netsetupHasAdminServe(ctx) ? await benchNetworkAdmin(ctx) : undefined;
  const commands: Command[] = [
    { id: 'bridge', label: 'launcher --rootfs R --net bridge -- /bin/true', argv: networkedArgv(launcher, net, rootfs, ['/bin/true']) },
    ...(own ? [{ id: 'own', label: 'the same, serveSeconds 0 (a netsetup per sandbox)', argv: networkedArgv(launcher, own, rootfs, ['/bin/true']) }] : []),
    ...(admin ? [{ id: 'admin', label: 'the same, serveSeconds 0, netsetup serve running', argv: networkedArgv(launcher, admin, rootfs, ['/bin/true']) }] : []),
    { id: 'none', label: 'launcher --rootfs R --net none -- /bin/true', argv: [launcher, '--rootfs', rootfs, '--net', 'none', '--', '/bin/true'] },
    { id: 'node', label: 'node -e 0', argv: [opts.node, '-e', '0'] },
    // Not a contender: what one start of the setuid helper costs (lock and GC, no
    // change), with the launcher's environment for it (anything more makes it re-exec).
    { id: 'netsetup', label: '(reference) netsetup list: one setuid netsetup start', argv: [net.netsetup, 'list'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
  ];
  if (podman) commands.push({ id: 'podman', label: podman.runLabel(['/bin/true']), argv: podman.runArgv(['/bin/true']), env: podman.env });
  if (opts.runs < 20) notes.push(`only ${opts.runs} runs per command: use at least 20 for numbers worth comparing`);

  ctx.log(`net: ${opts.warmup} warm-up + ${opts.runs} timed runs of ${commands.length} commands, round-robin`);
  const times = await timeInterleaved(ctx, commands, opts.runs, opts.warmup);
  const s = new Map(commands.map((c) => [c.id, stats(times.get(c.id)!)]));
  const median = (id: string): number | undefined => s.get(id)?.median;

  const left = await settled(() => [...networkLeftovers(net), ...(own ? networkLeftovers(own) : []), ...(admin ? networkLeftovers(admin) : []), ...(podman ? podman.containers().map((c) => `podman container ${c}`) : [])]);

  const text = [
    `Networked start-up (ms, /bin/true, ${opts.runs} runs each after ${opts.warmup} warm-up runs, interleaved; R = ${rootfs}; `
      + `bridge ${net.bridge} ${net.subnet} mtu ${net.mtu}, netsetup ${net.netsetup})`,
    ...table(
      ['command', 'median', 'p90', 'min', 'x node', 'x podman'],
      commands.map((c) => {
        const x = s.get(c.id)!;
        return [c.label, x.median.toFixed(2), x.p90.toFixed(2), x.min.toFixed(2), ratioText(x.median, median('node')), ratioText(x.median, median('podman'))];
      }),
      [false, true, true, true, true, true],
    ),
    '',
    `left behind: ${left.length === 0 ? 'nothing' : left.join(', ')}`,
    ...skips.map((x) => `skipped: ${x}`),
    ...notes.map((n) => `note: ${n}`),
    ...(own ? ['note: --net bridge runs are served by the netsetup of the first one (serveSeconds, 30 s by default); the targets are checked on them'] : []),
  ];
  const targets = [
    target(TARGETS[0]!, median('bridge'), median('node'), NODE_LIMIT),
    target(TARGETS[1]!, median('bridge'), median('podman'), PODMAN_LIMIT),
    checkTarget(TARGETS[2]!, left.length === 0),
  ];
  return {
    text,
    targets,
    data: {
      rootfs,
      launcher,
      network: net,
      podman: podman ? { version: podman.version, runtime: podman.runtime, storageDriver: podman.storageDriver } : null,
      runs: opts.runs,
      warmup: opts.warmup,
      timeMs: Object.fromEntries(commands.map((c) => [c.id, {
        command: c.label,
        ...roundStats(s.get(c.id)!),
        ratioToNode: round(s.get(c.id)!.median / median('node')!, 3),
        ratioToPodman: median('podman') === undefined ? null : round(s.get(c.id)!.median / median('podman')!, 3),
        samples: times.get(c.id)!.map((x) => round(x, 3)),
      }])),
      leftBehind: left,
      skipped: skips,
      notes,
    },
  };
}
