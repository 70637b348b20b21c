// Benchmarks for nsbox, in sections; each section measures one thing, prints a
// table and checks its targets. A missed target is reported, not an error: the
// exit status is 0 unless the benchmark itself could not run.
//   node scripts/bench.ts [options] [SECTION...]     (default: every section)
// Sections:
//   startup   launcher start-up time and peak RSS against `node -e 0`, unshare
//             and bwrap, all run as the same unprivileged user
// Run as root, every command runs as --uid/--gid (spawned with that uid/gid and
// no supplementary groups); run as anyone else, as the current user.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(import.meta.dirname, '..');

// ---------------------------------------------------------------------------
// Options

interface Options {
  sections: string[];
  runs: number;
  warmup: number;
  rssRuns: number;
  uid: number;
  gid: number;
  rootfs: string | undefined;
  launcher: string;
  node: string;
  json: boolean;
}

const USAGE = `Usage: node scripts/bench.ts [options] [SECTION...]

Sections (default: all):
{SECTIONS}

Options:
  --runs N        timed runs per command (default 30; use at least 20)
  --warmup N      untimed warm-up runs per command (default 3)
  --rss-runs N    runs per command for peak RSS (default 10)
  --uid U         user to run the commands as when run as root (default 1000)
  --gid G         its group (default: U's primary group in /etc/passwd, else U)
  --rootfs DIR    rootfs to use (default: build one with scripts/make-rootfs.sh
                  in a temporary directory, removed at the end)
  --launcher P    launcher executable (default: dist/launcher, built if missing)
  --node P        Node to compare with; the one the SEA is built from
                  (default: .tools/bin/node if present, else this Node)
  --json          print one JSON object with all numbers instead of tables
  -h, --help      show this help
`;

class UsageError extends Error {}

function positiveInt(name: string, value: string | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`--${name} ${value}: expected an integer >= ${min}`);
  return Number(value);
}

function primaryGid(uid: number): number {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 4 && f[2] === String(uid)) return Number(f[3]);
    }
  } catch {
    // no /etc/passwd: fall back to gid = uid
  }
  return uid;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      runs: { type: 'string' },
      warmup: { type: 'string' },
      'rss-runs': { type: 'string' },
      uid: { type: 'string' },
      gid: { type: 'string' },
      rootfs: { type: 'string' },
      launcher: { type: 'string' },
      node: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE.replace('{SECTIONS}', Object.entries(SECTIONS).map(([name, s]) => `  ${name.padEnd(14)}${s.summary}`).join('\n')));
    return undefined;
  }
  for (const name of positionals) {
    if (!(name in SECTIONS)) throw new UsageError(`unknown section '${name}' (choose from: ${Object.keys(SECTIONS).join(', ')})`);
  }
  const uid = positiveInt('uid', values.uid, 1000, 0);
  const toolsNode = path.join(root, '.tools/bin/node');
  return {
    sections: positionals.length > 0 ? [...new Set(positionals)] : Object.keys(SECTIONS),
    runs: positiveInt('runs', values.runs, 30, 1),
    warmup: positiveInt('warmup', values.warmup, 3, 0),
    rssRuns: positiveInt('rss-runs', values['rss-runs'], 10, 1),
    uid,
    gid: positiveInt('gid', values.gid, primaryGid(uid), 0),
    rootfs: values.rootfs === undefined ? undefined : path.resolve(values.rootfs),
    launcher: path.resolve(values.launcher ?? path.join(root, 'dist/launcher')),
    node: path.resolve(values.node ?? (fs.existsSync(toolsNode) ? toolsNode : process.execPath)),
    json: values.json,
  };
}

// ---------------------------------------------------------------------------
// Shared machinery: who runs the commands, temporary files, the rootfs

/** The user every benchmarked command runs as; undefined: the current user. */
type RunAs = { uid: number; gid: number } | undefined;

interface Context {
  opts: Options;
  runAs: RunAs;
  /** Progress and notes, on stderr so that --json output stays clean. */
  log(message: string): void;
  /** A temporary directory (made on first use, 0755, removed by cleanup). */
  tempDir(): string;
  /** The rootfs for sandboxes: --rootfs, or one built on first use. */
  rootfs(): string;
  /** A launcher executable: --launcher, built with scripts/build.ts if it is the default and missing. */
  launcher(): string;
  cleanup(): void;
}

function createContext(opts: Options): Context {
  const runAs: RunAs = process.getuid!() === 0 ? { uid: opts.uid, gid: opts.gid } : undefined;
  let tmp: string | undefined;
  let rootfs: string | undefined;
  let launcherChecked = false;
  const log = (message: string): void => {
    process.stderr.write(`bench: ${message}\n`);
  };
  const ctx: Context = {
    opts,
    runAs,
    log,
    tempDir() {
      if (tmp === undefined) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-bench-'));
        fs.chmodSync(tmp, 0o755);
      }
      return tmp;
    },
    rootfs() {
      if (rootfs !== undefined) return rootfs;
      let dir = opts.rootfs;
      if (dir === undefined) {
        dir = path.join(ctx.tempDir(), 'rootfs');
        log(`building a busybox rootfs in ${dir}`);
        execFileSync(path.join(root, 'scripts/make-rootfs.sh'), [dir], { stdio: ['ignore', 2, 2] });
        execFileSync('chmod', ['-R', 'a+rX', dir]);
      }
      // The sandboxes run as runAs: make sure that user can reach the rootfs.
      const probe = run(runAs, ['test', '-x', path.join(dir, 'bin', 'true')]);
      if (probe.status !== 0) {
        throw new Error(`${runAs ? `uid ${runAs.uid}` : 'this user'} cannot execute ${path.join(dir, 'bin/true')}; `
          + 'give a rootfs it can read (--rootfs), or set TMPDIR to a directory it can reach');
      }
      rootfs = dir;
      return dir;
    },
    launcher() {
      if (!launcherChecked && !fs.existsSync(opts.launcher)) {
        if (opts.launcher !== path.join(root, 'dist/launcher')) throw new Error(`${opts.launcher}: no such file`);
        log('dist/launcher is missing; building it with scripts/build.ts');
        execFileSync(opts.node, [path.join(root, 'scripts/build.ts'), 'launcher'], { cwd: root, stdio: ['ignore', 2, 2] });
      }
      launcherChecked = true;
      return opts.launcher;
    },
    cleanup() {
      if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
      tmp = undefined;
      rootfs = undefined;
    },
  };
  return ctx;
}

interface RunResult {
  ms: number;
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs argv to completion (stdout discarded), timed from just before the spawn to just after the exit. */
function run(runAs: RunAs, argv: string[]): RunResult {
  const [file, ...args] = argv;
  const start = process.hrtime.bigint();
  const r = spawnSync(file!, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error) throw new Error(`cannot run ${file}: ${r.error.message}`);
  return { ms, status: r.status, signal: r.signal, stderr: r.stderr };
}

/**
 * Lets the event loop turn. The runs are synchronous spawns, and signal handlers
 * (which clean up) only run when the loop turns: runners call this between runs.
 */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function check(label: string, r: RunResult): RunResult {
  if (r.status === 0) return r;
  const how = r.signal ? `died of ${r.signal}` : `exited ${r.status}`;
  const err = r.stderr.trim();
  throw new Error(`'${label}' ${how}${err ? `:\n${err}` : ''}`);
}

// ---------------------------------------------------------------------------
// Statistics and output

/** The q-quantile of sorted values, interpolating linearly between neighbours. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };
}

const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

function table(header: string[], rows: string[][], rightAligned: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

interface Target {
  name: string;
  /** measured / reference, compared with limit; undefined when it could not be measured */
  ratio: number | undefined;
  limit: number;
  result: 'PASS' | 'MISS' | 'SKIP';
}

function target(name: string, value: number | undefined, reference: number | undefined, limit: number): Target {
  if (value === undefined || reference === undefined || !(reference > 0)) return { name, ratio: undefined, limit, result: 'SKIP' };
  const ratio = value / reference;
  return { name, ratio: round(ratio, 3), limit, result: ratio <= limit ? 'PASS' : 'MISS' };
}

interface SectionReport {
  /** Human-readable lines (tables, notes). */
  text: string[];
  targets: Target[];
  /** Everything measured, for --json. */
  data: Record<string, unknown>;
}

interface Section {
  summary: string;
  run(ctx: Context): Promise<SectionReport>;
}

// ---------------------------------------------------------------------------
// Section: startup

interface Command {
  id: string;
  label: string;
  argv: string[];
}

/** Runs every command warmup + runs times, round-robin (rotating who goes first) so noise hits all alike. */
async function timeInterleaved(ctx: Context, commands: Command[], runs: number, warmup: number): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(commands.map((c) => [c.id, []]));
  for (let round = 0; round < warmup + runs; round++) {
    for (let k = 0; k < commands.length; k++) {
      const c = commands[(round + k) % commands.length]!;
      const r = check(c.label, run(ctx.runAs, c.argv));
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

function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const file = path.join(dir || '.', name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

const STARTUP_TIME_LIMIT = 1.3;
const STARTUP_RSS_LIMIT = 1.2;

async function startup(ctx: Context): Promise<SectionReport> {
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
      ['command', 'median', 'p90', 'min', 'x node'],
      commands.map((c) => {
        const s = timeStats.get(c.id)!;
        return [c.label, s.median.toFixed(2), s.p90.toFixed(2), s.min.toFixed(2), (s.median / nodeMedian).toFixed(2)];
      }),
      [false, true, true, true, true],
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
  ];

  const roundStats = (s: Stats): Stats => ({ n: s.n, median: round(s.median), p90: round(s.p90), min: round(s.min), max: round(s.max), mean: round(s.mean) });
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
        samples: times.get(c.id)!.map((x) => round(x, 3)),
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

// ---------------------------------------------------------------------------
// Sections, in the order they run by default. Add new ones here.

const SECTIONS: Record<string, Section> = {
  startup: { summary: 'launcher start-up time and peak RSS vs node -e 0, unshare, bwrap', run: startup },
};

// ---------------------------------------------------------------------------
// Main

function nodeVersion(node: string): string {
  const r = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

async function main(argv: string[]): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\nTry 'node scripts/bench.ts --help'.\n`);
    return 2;
  }
  if (opts === undefined) return 0;

  const ctx = createContext(opts);
  const onSignal = (signal: NodeJS.Signals): void => {
    ctx.cleanup();
    process.stderr.write(`bench: stopped by ${signal}\n`);
    process.exit(128 + os.constants.signals[signal]);
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, onSignal);

  try {
    const meta = {
      date: new Date().toISOString(),
      host: os.hostname(),
      kernel: os.release(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpus: os.availableParallelism(),
      node: nodeVersion(opts.node),
      user: ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : { uid: process.getuid!(), gid: process.getgid!() },
    };
    const reports: Record<string, SectionReport> = {};
    for (const name of opts.sections) reports[name] = await SECTIONS[name]!.run(ctx);

    if (opts.json) {
      const sections = Object.fromEntries(Object.entries(reports).map(([name, r]) => [name, { ...r.data, targets: r.targets }]));
      process.stdout.write(`${JSON.stringify({ meta, sections }, null, 2)}\n`);
    } else {
      const out: string[] = [
        `nsbox bench: ${meta.cpus} x ${meta.cpu}, Linux ${meta.kernel}, Node ${meta.node}, as uid ${meta.user.uid} gid ${meta.user.gid}`,
      ];
      for (const [name, r] of Object.entries(reports)) {
        out.push('', `== ${name} ==`, '', ...r.text, '', 'Targets:');
        for (const t of r.targets) out.push(`  ${t.result}  ${t.name}${t.ratio === undefined ? '' : ` (${t.ratio.toFixed(2)})`}`);
      }
      process.stdout.write(`${out.join('\n')}\n`);
    }
    return 0;
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    ctx.cleanup();
  }
}

process.exitCode = await main(process.argv.slice(2));
