// Section startup: launcher start-up time and peak RSS against `node -e 0`, an
// empty program built as a single executable exactly like the launcher
// (dist/probe-empty), unshare and bwrap, all run as the same unprivileged user;
// and what commander and ip-cidr cost bundled into such an executable (their
// probes minus the empty one, paired by round). Also the runners (interleaved
// timing, peak RSS) other start-up sections use.
import fs from 'node:fs';
import { check, findExecutable, run, tick, type Context } from './context.ts';
import { quantile, round, roundStats, stats, table, target, type SectionReport } from './report.ts';

export interface Command {
  id: string;
  label: string;
  argv: string[];
  env?: NodeJS.ProcessEnv;
}

/** Runs every command warmup + runs times, round-robin (rotating who goes first) so noise hits all alike. */
export async function timeInterleaved(ctx: Context, commands: Command[], runs: number, warmup: number): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(commands.map((c) => [c.id, []]));
  for (let round = 0; round < warmup + runs; round++) {
    for (let k = 0; k < commands.length; k++) {
      const c = commands[(round + k) % commands.length]!;
      const r = check(c.label, run(ctx.runAs, c.argv, { env: c.env, timeoutMs: 120_000 }));
      if (round >= warmup) samples.get(c.id)!.push(r.ms);
      await tick();
    }
  }
  return samples;
}

const RSS_MARK = 'nsbox-bench-maxrss=';

/** Peak RSS in KB of each command under GNU time (the largest of the process and its waited-for children), interleaved. */
async function peakRss(ctx: Context, time: string, commands: Command[], runs: number): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(commands.map((c) => [c.id, []]));
  for (let round = 0; round < runs; round++) {
    for (let k = 0; k < commands.length; k++) {
      const c = commands[(round + k) % commands.length]!;
      const r = check(c.label, run(ctx.runAs, [time, '-f', `${RSS_MARK}%M`, ...c.argv]));
      const line = r.stderr.split('\n').reverse().find((l) => l.startsWith(RSS_MARK));
      if (line === undefined) throw new Error(`no peak RSS from ${time} for '${c.label}'`);
      samples.get(c.id)!.push(Number(line.slice(RSS_MARK.length)));
      await tick();
    }
  }
  return samples;
}

const STARTUP_TIME_LIMIT = 1.3;
const STARTUP_RSS_LIMIT = 1.2;
/** A package may go into the launcher or netsetup if it costs at most this much start-up, in ms. */
export const PACKAGE_COST_LIMIT_MS = 1;
/** The packages whose cost in a single executable is measured: probe name, package. */
const PACKAGE_PROBES: [id: string, pkg: string][] = [['probe-commander', 'commander'], ['probe-ipcidr', 'ip-cidr']];

export async function startup(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const launcher = ctx.launcher();
  const rootfs = ctx.rootfs();
  const notes: string[] = [];
  const bwrap = findExecutable('bwrap');
  const unshare = findExecutable('unshare');
  const time = fs.existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

  const commands: Command[] = [
    { id: 'launcher', label: 'launcher --rootfs R --net none -- /bin/true', argv: [launcher, '--rootfs', rootfs, '--net', 'none', '--', '/bin/true'] },
    { id: 'node', label: 'node -e 0', argv: [opts.node, '-e', '0'] },
    { id: 'probe-empty', label: 'probe-empty (empty program, SEA as built)', argv: [ctx.built('probe-empty')] },
    ...PACKAGE_PROBES.map(([id, pkg]): Command => ({ id, label: `${id} (${pkg} bundled, SEA as built)`, argv: [ctx.built(id)] })),
  ];
  if (unshare) {
    commands.push({ id: 'unshare', label: 'unshare -Urmupif --mount-proc -R R /bin/true', argv: [unshare, '-Urmupif', '--mount-proc', '-R', rootfs, '/bin/true'] });
  } else notes.push('unshare not found: skipped');
  if (bwrap) {
    commands.push({ id: 'bwrap', label: 'bwrap --unshare-all --bind R / --proc /proc --dev /dev /bin/true', argv: [bwrap, '--unshare-all', '--bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '/bin/true'] });
  } else notes.push('bwrap not found: skipped');
  if (opts.runs < 20) notes.push(`only ${opts.runs} runs per command: use at least 20 for numbers worth comparing`);

  ctx.log(`startup: ${opts.warmup} warm-up + ${opts.runs} timed runs of ${commands.length} commands, round-robin`);
  const times = await timeInterleaved(ctx, commands, opts.runs, opts.warmup);
  const timeStats = new Map(commands.map((c) => [c.id, stats(times.get(c.id)!)]));
  const nodeMedian = timeStats.get('node')!.median;
  const emptyMedian = timeStats.get('probe-empty')!.median;
  // Each package's cost: its probe minus the empty probe of the same round.
  const empty = times.get('probe-empty')!;
  const costs = new Map(PACKAGE_PROBES.map(([id]) => [id, stats(times.get(id)!.map((ms, i) => ms - empty[i]!))]));

  let rss: Map<string, number[]> | undefined;
  const rssCommands: Command[] = [
    { id: 'launcher', label: 'launcher --rootfs R --net none -- /bin/sleep 0.2', argv: [launcher, '--rootfs', rootfs, '--net', 'none', '--', '/bin/sleep', '0.2'] },
    { id: 'node', label: 'node -e "setTimeout(()=>{},200)"', argv: [opts.node, '-e', 'setTimeout(()=>{},200)'] },
  ];
  if (time) {
    ctx.log(`startup: peak RSS, ${opts.rssRuns} runs of ${rssCommands.length} commands under ${time}`);
    rss = await peakRss(ctx, time, rssCommands, opts.rssRuns);
  } else notes.push('/usr/bin/time (GNU time) not found: peak RSS skipped');
  const rssStats = rss && new Map(rssCommands.map((c) => [c.id, stats(rss.get(c.id)!)]));

  const text: string[] = [
    `Start-up time (ms, ${opts.runs} runs each after ${opts.warmup} warm-up runs, interleaved; R = ${rootfs})`,
    ...table(
      ['command', 'median', 'p90', 'min', 'x node', 'x empty SEA'],
      commands.map((c) => {
        const s = timeStats.get(c.id)!;
        return [c.label, s.median.toFixed(2), s.p90.toFixed(2), s.min.toFixed(2), (s.median / nodeMedian).toFixed(2), (s.median / emptyMedian).toFixed(2)];
      }),
      [false, true, true, true, true, true],
    ),
    '',
    `Start-up cost of a package bundled into a single executable (ms: its probe minus probe-empty, paired by round, ${opts.runs} pairs)`,
    ...table(
      ['package', 'median', 'p10', 'p90', 'min - min', 'probe / empty'],
      PACKAGE_PROBES.map(([id, pkg]) => {
        const c = costs.get(id)!;
        const sorted = times.get(id)!.map((ms, i) => ms - empty[i]!).sort((a, b) => a - b);
        const minDiff = timeStats.get(id)!.min - timeStats.get('probe-empty')!.min;
        return [pkg, c.median.toFixed(2), quantile(sorted, 0.1).toFixed(2), quantile(sorted, 0.9).toFixed(2), minDiff.toFixed(2), (timeStats.get(id)!.median / emptyMedian).toFixed(3)];
      }),
      [false, true, true, true, true, true],
    ),
  ];
  if (rssStats) {
    const nodeRss = rssStats.get('node')!.median;
    text.push(
      '',
      `Peak RSS (KB, GNU time %M, median of ${opts.rssRuns} runs each)`,
      ...table(
        ['command', 'median', 'min', 'max', 'x node'],
        rssCommands.map((c) => {
          const s = rssStats.get(c.id)!;
          return [c.label, String(Math.round(s.median)), String(s.min), String(s.max), (s.median / nodeRss).toFixed(2)];
        }),
        [false, true, true, true, true],
      ),
    );
  }
  if (notes.length > 0) text.push('', ...notes.map((n) => `note: ${n}`));

  const targets = [
    target(`launcher median start-up <= ${STARTUP_TIME_LIMIT} x node -e 0`, timeStats.get('launcher')!.median, nodeMedian, STARTUP_TIME_LIMIT),
    target(`launcher peak RSS <= ${STARTUP_RSS_LIMIT} x node`, rssStats?.get('launcher')!.median, rssStats?.get('node')!.median, STARTUP_RSS_LIMIT),
    // Not the programs' targets: whether a package is cheap enough to bundle into them (ratio: ms / limit).
    ...PACKAGE_PROBES.map(([id, pkg]) => target(`${pkg} bundled costs <= ${PACKAGE_COST_LIMIT_MS} ms of start-up`, costs.get(id)!.median, PACKAGE_COST_LIMIT_MS, 1)),
  ];

  return {
    text,
    targets,
    data: {
      rootfs,
      launcher,
      node: opts.node,
      runs: opts.runs,
      warmup: opts.warmup,
      timeMs: Object.fromEntries(commands.map((c) => [c.id, {
        command: c.label,
        ...roundStats(timeStats.get(c.id)!),
        ratioToNode: round(timeStats.get(c.id)!.median / nodeMedian, 3),
        ratioToEmptySea: round(timeStats.get(c.id)!.median / emptyMedian, 3),
        samples: times.get(c.id)!.map((x) => round(x, 3)),
      }])),
      packageCostMs: Object.fromEntries(PACKAGE_PROBES.map(([id, pkg]) => [pkg, {
        probe: id,
        ...roundStats(costs.get(id)!, 3),
        minMinusMin: round(timeStats.get(id)!.min - timeStats.get('probe-empty')!.min, 3),
      }])),
      peakRssKb: rssStats
        ? Object.fromEntries(rssCommands.map((c) => [c.id, {
          command: c.label,
          ...roundStats(rssStats.get(c.id)!),
          ratioToNode: round(rssStats.get(c.id)!.median / rssStats.get('node')!.median, 3),
          samples: rss!.get(c.id)!,
        }]))
        : null,
      notes,
    },
  };
}
