// Section concurrency: N networked sandboxes running `sleep 1` started at once,
// wall time until the last has exited, against N rootless
// `podman run --rm --network=slirp4netns IMAGE sleep 1` at once. Batches
// alternate; after each, nothing may be left (veths, leases, containers).
import { type Context, type RunAs } from './context.ts';
import { benchNetworkAdmin, benchNetworkOwn, netsetupHasAdminServe, netsetupServes, type BenchNetwork, networkedArgv, podmanBench, networkLeftovers, settled } from './benchnet.ts';
import { checkTarget, ratioText, round, roundStats, skipped, stats, table, target, type SectionReport } from './report.ts';

const PODMAN_LIMIT = 0.4;
const INFO_FD = 3;

interface Batch {
  wallMs: number;
  failures: string[];
  /** the address each sandbox reported on --info-fd (undefined: none reported) */
  addresses: (string | undefined)[];
  leftBehind: string[];
}

interface Contender {
  id: string;
  label: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
  infoFd: boolean;
  leftovers(): string[];
}

function infoEvent(line: string): { event?: string; address?: string } | undefined {
  try {
    return JSON.parse(line) as { event?: string; address?: string };
  } catch {
    return undefined;
  }
}

/** Starts n copies of argv in one go and waits for all of them. */
async function batch(ctx: Context, as: RunAs, c: Contender, n: number): Promise<Batch> {
  const infos: string[] = Array<string>(n).fill('');
  const start = process.hrtime.bigint();
  const running = Array.from({ length: n }, (_, i) => {
    const r = ctx.spawn(as, c.argv, { env: c.env, extraFds: c.infoFd ? 1 : 0, timeoutMs: 300_000 });
    if (c.infoFd) (r.child.stdio[INFO_FD] as NodeJS.ReadableStream).on('data', (d: Buffer | string) => (infos[i] += d.toString()));
    return r;
  });
  const results = await Promise.allSettled(running.map((r) => r.done));
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const failures: string[] = [];
  for (const r of results) {
    if (r.status === 'rejected') failures.push(String((r.reason as Error).message));
    else if (r.value.status !== 0) failures.push(`${r.value.signal ? `died of ${r.value.signal}` : `exited ${r.value.status}`}: ${r.value.stderr.trim().split('\n').pop() ?? ''}`);
  }
  // A lease's address is free again once its sandbox has exited, so a batch that
  // takes longer than one sandbox lives reuses addresses: only presence is checked.
  const addresses = infos.map((text) => text.split('\n').map(infoEvent).find((e) => e?.event === 'started')?.address);
  const leftBehind = await settled(c.leftovers);
  return { wallMs, failures, addresses, leftBehind };
}

export async function concurrency(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const n = opts.concurrency;
  const TARGETS = [
    `${n} networked sandboxes at once <= ${PODMAN_LIMIT} x ${n} podman --network=slirp4netns at once (median wall time)`,
    'every networked sandbox ran (exit 0) and reported its address on --info-fd',
    'nothing left behind after each batch (veths, leases, podman containers)',
  ];
  const bench = podmanBench(ctx);
  if ('skip' in bench) return skipped(bench.skip, TARGETS);
  const { launcher, net, rootfs, podman, notes, skips } = bench;

  /** launcher --net bridge on one of the bench installs. */
  const networked = (id: string, label: string, on: BenchNetwork): Contender => ({
    id,
    label,
    argv: networkedArgv(launcher, on, rootfs, ['/bin/sleep', '1'], INFO_FD),
    infoFd: true,
    leftovers: () => networkLeftovers(on),
  });
  const contenders: Contender[] = [networked('sandbox', `launcher --rootfs R --net bridge --info-fd ${INFO_FD} -- /bin/sleep 1`, net)];
  // The same with serving off: each launcher runs a netsetup of its own.
  const own = netsetupServes(ctx) ? benchNetworkOwn(ctx) : undefined;
  if (own) contenders.push(networked('own', 'the same, serveSeconds 0 (a netsetup per sandbox)', own));
  // Serving off, the admin's netsetup serve running: every launcher served, the first batch's too.
  const admin = netsetupHasAdminServe(ctx) ? await benchNetworkAdmin(ctx) : undefined;
  if (admin) contenders.push(networked('admin', 'the same, serveSeconds 0, netsetup serve running', admin));
  if (podman) {
    contenders.push({
      id: 'podman',
      label: podman.runLabel(['/bin/sleep', '1']),
      argv: podman.runArgv(['/bin/sleep', '1']),
      env: podman.env,
      infoFd: false,
      leftovers: () => podman.containers().map((c) => `podman container ${c}`),
    });
  }

  ctx.log(`concurrency: ${opts.concurrencyRuns} batches of ${n} at once for each of ${contenders.length} contenders, alternating`);
  const batches = new Map<string, Batch[]>(contenders.map((c) => [c.id, []]));
  for (let rep = 0; rep < opts.concurrencyRuns; rep++) {
    for (let k = 0; k < contenders.length; k++) {
      const c = contenders[(rep + k) % contenders.length]!;
      const b = await batch(ctx, ctx.runAs, c, n);
      ctx.log(`concurrency: ${c.id} batch ${rep + 1}: ${(b.wallMs / 1000).toFixed(2)} s, ${b.failures.length} failed, ${b.leftBehind.length} left behind`);
      batches.get(c.id)!.push(b);
    }
  }

  const wall = new Map(contenders.map((c) => [c.id, stats(batches.get(c.id)!.map((b) => b.wallMs / 1000))]));
  const median = (id: string): number | undefined => wall.get(id)?.median;
  const sandboxBatches = batches.get('sandbox')!;
  const allRan = sandboxBatches.every((b) => b.failures.length === 0 && b.addresses.every((x) => x !== undefined));
  const left = [...new Set([...batches.values()].flat().flatMap((b) => b.leftBehind))];
  const failures = [...batches.entries()].flatMap(([id, bs]) => bs.flatMap((b) => b.failures.map((f) => `${id}: ${f}`)));

  const text = [
    `${n} at once, each running sleep 1 (wall time in s from the first start to the last exit; ${opts.concurrencyRuns} batches each, alternating)`,
    ...table(
      ['command', 'median', 'min', 'max', 'failed', 'x podman'],
      contenders.map((c) => {
        const x = wall.get(c.id)!;
        const failed = batches.get(c.id)!.reduce((a, b) => a + b.failures.length, 0);
        return [c.label, x.median.toFixed(2), x.min.toFixed(2), x.max.toFixed(2), String(failed), ratioText(x.median, median('podman'))];
      }),
      [false, true, true, true, true, true],
    ),
    '',
    `sandboxes that reported an address on --info-fd, per batch: ${sandboxBatches.map((b) => `${b.addresses.filter((x) => x !== undefined).length} of ${n} `
      + `(${new Set(b.addresses.filter((x) => x !== undefined)).size} distinct)`).join(', ')}`,
    `--net bridge per batch, in order: ${sandboxBatches.map((b) => (b.wallMs / 1000).toFixed(2)).join(', ')} s${own ? ` (a batch that finds no netsetup serving runs ${n} of them; the ones after are served)` : ''}`,
    `left behind: ${left.length === 0 ? 'nothing' : left.join(', ')}`,
    ...failures.slice(0, 5).map((f) => `failure: ${f}`),
    ...(failures.length > 5 ? [`... and ${failures.length - 5} more failures`] : []),
    ...skips.map((x) => `skipped: ${x}`),
    ...notes.map((note) => `note: ${note}`),
  ];
  const targets = [
    target(TARGETS[0]!, median('sandbox'), median('podman'), PODMAN_LIMIT),
    checkTarget(TARGETS[1]!, allRan),
    checkTarget(TARGETS[2]!, left.length === 0),
  ];
  return {
    text,
    targets,
    data: {
      concurrency: n,
      batches: opts.concurrencyRuns,
      network: net,
      wallSeconds: Object.fromEntries(contenders.map((c) => [c.id, {
        command: c.label,
        ...roundStats(wall.get(c.id)!, 3),
        ratioToPodman: median('podman') === undefined ? null : round(wall.get(c.id)!.median / median('podman')!, 3),
        batches: batches.get(c.id)!.map((b) => ({ wallSeconds: round(b.wallMs / 1000, 3), failures: b.failures, addressed: b.addresses.filter((x) => x !== undefined).length, distinctAddresses: new Set(b.addresses.filter((x) => x !== undefined)).size, leftBehind: b.leftBehind })),
      }])),
      leftBehind: left,
      skipped: skips,
      notes,
    },
  };
}
