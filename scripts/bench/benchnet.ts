// The bench network: netsetup installed setuid root into a temporary prefix
// (scripts/install.sh) with a configuration of its own, bridge nsbench1 on
// 10.232.10.0/24, and for the density section a second, larger one (bridge
// nsbench2 on 10.232.12.0/22, a quota for its largest N), and for the
// start-up sections two more with serving off (nsbench3, and nsbench4 with
// `netsetup serve` running: OWN, ADMIN below); removed with
// scripts/uninstall.sh (netsetup teardown: veths, bridges, rules, lease state)
// at the end of the run.
import fs from 'node:fs';
import path from 'node:path';
import { asRoot, check, ROOT, run, sleep, type Context } from './context.ts';
import { rootlessPodman, type Podman } from './podman.ts';
import { systemServerName } from '../../packages/shared/src/protocol.ts';

export const BENCH_BRIDGE = 'nsbench1';
export const BENCH_SUBNET = '10.232.10.0/24';
export const BENCH_GATEWAY = '10.232.10.1';
/** The density section's network: room for 1000 sandboxes. */
export const DENSE = { name: 'dense', bridge: 'nsbench2', subnet: '10.232.12.0/22', gateway: '10.232.12.1' } as const;

export interface BenchNetwork {
  prefix: string;
  /** the installed setuid netsetup, for the launcher's --netsetup */
  netsetup: string;
  bridge: string;
  subnet: string;
  gateway: string;
  mtu: number;
  quota: number;
  /** The density section's network (--network dense) and the bench user's quota on it. */
  dense: typeof DENSE & { quota: number };
}

/** Why the bench network cannot be made here, or undefined. */
export function benchNetworkUnavailable(): string | undefined {
  if (process.getuid!() !== 0) return 'the networked sections need root (they install netsetup setuid root into a temporary prefix)';
  return undefined;
}

/** The bench network, installed on first use. */
export function benchNetwork(ctx: Context): BenchNetwork {
  return ctx.shared('bench-network', () => install(ctx, 'main'));
}

/** A second install of the same netsetup with serving off (serveSeconds 0), on
 *  a network of its own (bridge nsbench3, 10.232.16.0/24): every launcher runs
 *  a netsetup of its own, as a user's first sandbox always does. */
export const OWN = { bridge: 'nsbench3', subnet: '10.232.16.0/24', gateway: '10.232.16.1' } as const;
export function benchNetworkOwn(ctx: Context): BenchNetwork {
  return ctx.shared('bench-network-own', () => install(ctx, 'own'));
}

/** A third install with serving off (bridge nsbench4, 10.232.20.0/24), and its
 *  `netsetup serve` running as root, as an admin's service would: every
 *  launcher of it is served, a user's first one included. */
export const ADMIN = { bridge: 'nsbench4', subnet: '10.232.20.0/24', gateway: '10.232.20.1' } as const;
export async function benchNetworkAdmin(ctx: Context): Promise<BenchNetwork> {
  const net = ctx.shared('bench-network-admin', () => install(ctx, 'admin'));
  await ctx.shared('bench-network-admin-serve', async () => {
    const name = `@${systemServerName(fs.statSync(net.netsetup, { bigint: true }))}`;
    const serving = ctx.spawn(undefined, [net.netsetup, 'serve'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    for (const end = Date.now() + 10_000; !fs.readFileSync('/proc/net/unix', 'utf8').includes(name); await sleep(50)) {
      if (Date.now() > end || serving.child.exitCode !== null) throw new Error(`netsetup serve of ${net.netsetup} did not start listening`);
    }
  });
  return net;
}

/** Whether the netsetup measured has `netsetup serve` (the admin's server). */
export function netsetupHasAdminServe(ctx: Context): boolean {
  return run(undefined, [measuredNetsetup(ctx), 'help'], { capture: true }).stdout.includes('\n  serve ');
}

function measuredNetsetup(ctx: Context): string {
  const beside = path.dirname(ctx.launcher());
  return fs.existsSync(path.join(beside, 'netsetup')) ? path.join(beside, 'netsetup') : ctx.built('netsetup');
}

function install(ctx: Context, kind: 'main' | 'own' | 'admin'): BenchNetwork {
  const why = benchNetworkUnavailable();
  if (why) throw new Error(why);
  const own = kind !== 'main';
  const main = kind === 'own' ? OWN : kind === 'admin' ? ADMIN : { bridge: BENCH_BRIDGE, subnet: BENCH_SUBNET, gateway: BENCH_GATEWAY };
  const bridges = own ? [main.bridge] : [BENCH_BRIDGE, DENSE.bridge];
  for (const bridge of bridges) {
    if (run(undefined, ['ip', 'link', 'show', bridge]).status === 0) {
      throw new Error(`a link named ${bridge} exists already (left by an earlier run?); remove it with 'ip link del ${bridge}' and its rules with 'iptables-save | grep ${bridge}'`);
    }
  }
  const { opts } = ctx;
  // The netsetup of the launcher measured (--launcher: a build of another
  // version brings its own), else this checkout's.
  const beside = path.dirname(ctx.launcher());
  const dist = fs.existsSync(path.join(beside, 'netsetup')) ? beside : path.dirname(ctx.built('netsetup'));
  const prefix = path.join(ctx.tempDir(), own ? `prefix-${kind}` : 'prefix');
  const stateDir = `/run/nsbox-bench-${process.pid}${own ? `-${kind}` : ''}`;
  const quota = Math.max(100, opts.concurrency + 10);
  const denseQuota = Math.max(...opts.densityCounts) + 10;
  const user = String(ctx.runAs?.uid ?? 0);
  const config = {
    stateDir,
    // Serving as netsetup does by default (30 s), or off.
    ...(own ? { serveSeconds: 0 } : {}),
    networks: [
      { name: 'bench', ...main, mtu: opts.mtu, quota: { users: { [user]: quota } } },
      ...(own ? [] : [{ ...DENSE, mtu: opts.mtu, quota: { users: { [user]: denseQuota } } }]),
    ],
  };
  const configFile = path.join(ctx.tempDir(), own ? `bench-netsetup-${kind}.conf` : 'bench-netsetup.conf');
  fs.writeFileSync(configFile, `${JSON.stringify(config, null, 2)}\n`);
  ctx.log(`installing netsetup setuid root into ${prefix} (bridge ${main.bridge}, ${main.subnet}, mtu ${opts.mtu}${own ? ', serveSeconds 0' : ''}${kind === 'admin' ? ', netsetup serve running' : ''})`);
  // Registered first: uninstall.sh also cleans up after a half-done install.
  ctx.defer(`uninstall ${prefix}`, () => {
    if (fs.existsSync(path.join(prefix, 'bin/netsetup'))) {
      check('scripts/uninstall.sh', run(undefined, [path.join(ROOT, 'scripts/uninstall.sh'), prefix], { timeoutMs: 60_000 }));
    }
    fs.rmSync(stateDir, { recursive: true, force: true });
    for (const bridge of bridges) {
      if (run(undefined, ['ip', 'link', 'show', bridge]).status === 0) ctx.log(`cleanup: ${bridge} is still there`);
      const rules = run(undefined, ['iptables-save'], { capture: true }).stdout.split('\n').filter((l) => l.includes(bridge));
      if (rules.length > 0) ctx.log(`cleanup: iptables rules of ${bridge} are still there:\n${rules.join('\n')}`);
    }
  });
  check('scripts/install.sh', run(undefined, [path.join(ROOT, 'scripts/install.sh'), prefix, '--config', configFile, '--dist', dist], { timeoutMs: 120_000 }));
  const netsetup = path.join(prefix, 'bin/netsetup');
  // The bridge and its address now, so that a host-side server can bind to the gateway.
  asRoot([netsetup, 'setup-host']);
  return { prefix, netsetup, ...main, mtu: opts.mtu, quota, dense: { ...DENSE, quota: denseQuota } };
}

/** Whether the netsetup measured serves a user's next sandboxes (serveSeconds):
 *  a build from before does not (and refuses the key), so it has no second install. */
export function netsetupServes(ctx: Context): boolean {
  return run(undefined, [measuredNetsetup(ctx), 'default-config'], { capture: true }).stdout.includes('serveSeconds');
}

/** What sandboxes of the bench network left: host veths on its bridge (or
 *  `bridge`) and leases of any network (after netsetup's GC). */
export function networkLeftovers(net: BenchNetwork, bridge = net.bridge): string[] {
  const veths = asRoot(['ip', '-o', 'link', 'show', 'master', bridge])
    .split('\n')
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined);
  const leases = JSON.parse(asRoot([net.netsetup, 'list', '--json'])) as { id: string }[];
  return [...veths.map((v) => `veth ${v}`), ...leases.map((l) => `lease ${l.id}`)];
}

/**
 * Polls `find` until it reports nothing or timeoutMs passed, and returns what it
 * last reported. A sandbox's veth goes when the kernel has destroyed its network
 * namespace, which happens shortly after the last process in it has exited.
 */
export async function settled(find: () => string[], timeoutMs = 10_000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const left = find();
    if (left.length === 0 || Date.now() > end) return left;
    await sleep(200);
  }
}

/** The launcher and the bench network for a networked section, or why the
 *  section is skipped (`unavailable`: a missing tool it needs). */
export function networkedBench(ctx: Context, unavailable = benchNetworkUnavailable()): { launcher: string; net: BenchNetwork } | { skip: string } {
  if (unavailable) return { skip: unavailable };
  const launcher = ctx.launcher();
  if (!launcherHasBridge(launcher)) return { skip: `${launcher} has no --net bridge (build it from a newer main)` };
  return { launcher, net: benchNetwork(ctx) };
}

/** What the sections that race podman start from: networkedBench()'s launcher
 *  and network, the rootfs, rootless podman (undefined when it is skipped, and
 *  why in `skips`) and its notes. */
export function podmanBench(ctx: Context): { launcher: string; net: BenchNetwork; rootfs: string; podman: Podman | undefined; notes: string[]; skips: string[] } | { skip: string } {
  const bench = networkedBench(ctx);
  if ('skip' in bench) return bench;
  const rootfs = ctx.rootfs();
  const pod = rootlessPodman(ctx);
  const podman = 'podman' in pod ? pod.podman : undefined;
  return { ...bench, rootfs, podman, notes: podman ? [...podman.notes] : [], skips: 'skip' in pod ? [pod.skip] : [] };
}

/** Whether the launcher offers --net bridge (its --help lists it). */
export function launcherHasBridge(launcher: string): boolean {
  const r = run(undefined, [launcher, '--help'], { capture: true, timeoutMs: 30_000 });
  return /\bbridge\b/.test(r.stdout);
}

/** argv of a sandbox on the bench network running argv. */
export function networkedArgv(launcher: string, net: BenchNetwork, rootfs: string, argv: string[], infoFd?: number): string[] {
  return [launcher, '--rootfs', rootfs, '--net', 'bridge', '--netsetup', net.netsetup, ...(infoFd === undefined ? [] : ['--info-fd', String(infoFd)]), '--', ...argv];
}
