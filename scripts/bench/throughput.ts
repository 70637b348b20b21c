// Section throughput: iperf3 between a sandbox on the bench network and a
// server on the host bound to the bridge's gateway, both directions, against
// the same with a root-made netns + veth + bridge and with slirp4netns (its
// default MTU and 65520; the server on 127.0.0.1, which slirp maps to 10.0.2.2).
// Every client runs as the bench user; runs are interleaved.
import { sleep, type Context, type RunAs, type RunResult } from './context.ts';
import { benchNetworkUnavailable, networkedArgv, networkedBench, networkLeftovers, settled } from './benchnet.ts';
import { IperfError, iperfBinary, iperfClientArgs, iperfRootfs, iperfServer, iperfUnavailable, receivedBitsPerSecond, type IperfServer } from './iperf.ts';
import { checkTarget, ratioText, round, roundStats, skipped, stats, table, targetAtLeast, type SectionReport } from './report.ts';
import { SLIRP_HOST_LOOPBACK, slirpNamespace, slirpUnavailable, slirpVersion, tunAccess, type SlirpNamespace } from './slirp.ts';
import { vethNamespace, vethUnavailable } from './veth.ts';

const VETH_LIMIT = 0.95;
const SLIRP_LIMIT = 4;
const SLIRP_BIG_MTU = 65520;
const TARGETS = [
  `sandbox->host >= ${VETH_LIMIT} x root-made veth`,
  `host->sandbox >= ${VETH_LIMIT} x root-made veth`,
  `sandbox->host >= ${SLIRP_LIMIT} x slirp4netns mtu ${SLIRP_BIG_MTU}`,
  `host->sandbox >= ${SLIRP_LIMIT} x slirp4netns mtu ${SLIRP_BIG_MTU}`,
  'nothing left behind (veths, leases)',
];

interface Setup {
  id: string;
  label: string;
  server: IperfServer;
  /** the server's address as the client sees it */
  connectTo: string;
  as: RunAs;
  /** argv of a client with these iperf3 arguments */
  client(args: string[]): string[];
}

const DIRECTIONS = [
  { id: 'up', label: 'sandbox->host', reverse: false },
  { id: 'down', label: 'host->sandbox (-R)', reverse: true },
] as const;

export async function throughput(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const bench = networkedBench(ctx, iperfUnavailable() ?? benchNetworkUnavailable() ?? vethUnavailable());
  if ('skip' in bench) return skipped(bench.skip, TARGETS);
  const { launcher, net } = bench;
  const rootfs = iperfRootfs(ctx);
  const iperf = iperfBinary();
  const veth = vethNamespace(ctx, net.mtu);
  const notes: string[] = [];
  const skips: string[] = [];
  const slirps: SlirpNamespace[] = [];
  const servers: IperfServer[] = [];
  try {
    const server = async (address: string): Promise<IperfServer> => {
      const s = await iperfServer(ctx, address);
      servers.push(s);
      return s;
    };
    const bridgeServer = await server(net.gateway);
    const vethServer = await server(veth.hostAddress);
    const setups: Setup[] = [
      {
        id: 'sandbox', label: `sandbox: launcher --net bridge (mtu ${net.mtu})`, server: bridgeServer, connectTo: net.gateway, as: ctx.runAs,
        client: (args) => networkedArgv(launcher, net, rootfs, [iperf, ...args]),
      },
      {
        id: 'veth', label: `root-made netns + veth + bridge (mtu ${veth.mtu})`, server: vethServer, connectTo: veth.hostAddress, as: undefined,
        client: (args) => veth.inside([iperf, ...args]),
      },
    ];
    const slirpMissing = slirpUnavailable(ctx);
    if (slirpMissing) skips.push(slirpMissing);
    else {
      const loopServer = await server('127.0.0.1');
      for (const mtu of [undefined, SLIRP_BIG_MTU]) {
        const ns = await slirpNamespace(ctx, mtu);
        slirps.push(ns);
        setups.push({
          id: mtu === undefined ? 'slirp' : `slirp${mtu}`,
          label: `slirp4netns ${mtu === undefined ? '(default mtu 1500)' : `--mtu=${mtu}`}`,
          server: loopServer, connectTo: SLIRP_HOST_LOOPBACK, as: ctx.runAs,
          client: (args) => ns.inside([iperf, ...args]),
        });
      }
      notes.push(`${slirpVersion()}; netns made with unshare --user --map-root-user --net as the bench user; server on 127.0.0.1, reached as ${SLIRP_HOST_LOOPBACK}`);
      notes.push(...tunAccess(ctx).notes);
    }

    ctx.log(`throughput: ${opts.iperfRuns} x ${setups.length} setups x 2 directions of iperf3 -t ${opts.iperfTime}, interleaved`);
    const samples = new Map<string, number[]>();
    for (let rep = 0; rep < opts.iperfRuns; rep++) {
      for (let k = 0; k < setups.length; k++) {
        const setup = setups[(rep + k) % setups.length]!;
        for (const d of DIRECTIONS) {
          const key = `${setup.id}/${d.id}`;
          const bps = await measure(ctx, setup, d.reverse, opts.iperfTime);
          samples.set(key, [...(samples.get(key) ?? []), bps / 1e9]);
        }
      }
    }
    for (const s of slirps.splice(0)) await s.stop();
    for (const s of servers.splice(0)) await s.stop();
    const left = await settled(() => networkLeftovers(net));

    const st = (id: string, dir: string) => {
      const xs = samples.get(`${id}/${dir}`);
      return xs ? stats(xs) : undefined;
    };
    const cell = (id: string, dir: string): string => {
      const x = st(id, dir);
      return x ? `${x.median.toFixed(2)} (${x.min.toFixed(2)}-${x.max.toFixed(2)})` : '-';
    };
    const med = (id: string, dir: string): number | undefined => st(id, dir)?.median;
    const big = `slirp${SLIRP_BIG_MTU}`;
    const text = [
      `Throughput (Gbit/s, iperf3 -t ${opts.iperfTime}, TCP, one stream; median (min-max) of ${opts.iperfRuns} runs, interleaved; `
        + 'the server on the host, bound to a test-made address)',
      ...table(
        ['setup', 'server', ...DIRECTIONS.map((d) => d.label)],
        setups.map((s) => [s.label, `${s.server.address}:${s.server.port}`, ...DIRECTIONS.map((d) => cell(s.id, d.id))]),
        [false, false, true, true],
      ),
      '',
      ...table(
        ['sandbox / ...', ...DIRECTIONS.map((d) => d.label)],
        setups.filter((s) => s.id !== 'sandbox').map((s) => [s.label, ...DIRECTIONS.map((d) => ratioText(med('sandbox', d.id), med(s.id, d.id)))]),
        [false, true, true],
      ),
      '',
      `left behind: ${left.length === 0 ? 'nothing' : left.join(', ')}`,
      ...skips.map((x) => `skipped: ${x}`),
      ...notes.map((n) => `note: ${n}`),
    ];
    const targets = [
      targetAtLeast(TARGETS[0]!, med('sandbox', 'up'), med('veth', 'up'), VETH_LIMIT),
      targetAtLeast(TARGETS[1]!, med('sandbox', 'down'), med('veth', 'down'), VETH_LIMIT),
      targetAtLeast(TARGETS[2]!, med('sandbox', 'up'), med(big, 'up'), SLIRP_LIMIT),
      targetAtLeast(TARGETS[3]!, med('sandbox', 'down'), med(big, 'down'), SLIRP_LIMIT),
      checkTarget(TARGETS[4]!, left.length === 0),
    ];
    return {
      text,
      targets,
      data: {
        rootfs,
        network: net,
        seconds: opts.iperfTime,
        runs: opts.iperfRuns,
        gbitPerSecond: Object.fromEntries(setups.map((s) => [s.id, {
          setup: s.label,
          server: `${s.server.address}:${s.server.port}`,
          ...Object.fromEntries(DIRECTIONS.map((d) => {
            const x = st(s.id, d.id);
            return [d.id, x ? { ...roundStats(x, 3), samples: samples.get(`${s.id}/${d.id}`)!.map((v) => round(v, 3)) } : null];
          })),
        }])),
        leftBehind: left,
        skipped: skips,
        notes,
      },
    };
  } finally {
    for (const s of slirps) await s.stop();
    for (const s of servers) await s.stop();
  }
}

/** One iperf3 client run; a server still busy with the previous test is retried. */
async function measure(ctx: Context, setup: Setup, reverse: boolean, seconds: number): Promise<number> {
  const argv = setup.client(iperfClientArgs(setup.server, setup.connectTo, seconds, reverse));
  const label = `${setup.label}: iperf3 -c ${setup.connectTo}${reverse ? ' -R' : ''}`;
  for (let attempt = 1; ; attempt++) {
    const r: RunResult = await ctx.spawn(setup.as, argv, { capture: true, timeoutMs: (seconds + 60) * 1000 }).done;
    try {
      return receivedBitsPerSecond(label, r);
    } catch (err) {
      if (!(err instanceof IperfError) || !/busy/.test(err.message) || attempt >= 5) throw err;
      await sleep(300);
    }
  }
}
