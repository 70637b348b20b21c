// Benchmarks for nsbox, in sections; each section measures one thing, prints a
// table and checks its targets. A missed target is reported, not an error: the
// exit status is 0 unless the benchmark itself could not run.
//   node scripts/bench.ts [options] [SECTION...]     (default: every section)
// Sections (scripts/bench/*.ts):
//   startup       launcher start-up time and peak RSS against `node -e 0`, an
//                 empty single executable, unshare and bwrap; the start-up cost
//                 of commander and ip-cidr bundled into a single executable
//   net           networked sandbox (launcher --net bridge) start-up against
//                 --net none, `node -e 0` and rootless podman with slirp4netns
//   throughput    iperf3 sandbox<->host against a root-made veth and slirp4netns
//   concurrency   50 networked sandboxes at once against 50 podman containers
//   density       100 and 500 sandboxes running sleep (networked, --net none,
//                 bwrap, podman run -d): memory kept per sandbox, MemAvailable
//                 drop, time until all have started and until all have exited
//   imports       start-up cost of the runtime packages imported unbundled
// Run as root, every command runs as --uid/--gid (spawned with that uid/gid and
// no supplementary groups); run as anyone else, as the current user. The
// networked sections need root: they install netsetup setuid into a temporary
// prefix with its own bridges (nsbench1, 10.232.10.0/24; for density nsbench2,
// 10.232.12.0/22) and make the root veth
// baseline (10.232.11.0/24); all of it is removed at the end, also on failure
// and on SIGINT/SIGTERM/SIGHUP. Serialize with other users of the machine's
// network: flock /tmp/nsbox-it.lock node scripts/bench.ts
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { execaSync } from 'execa';
import { concurrency } from './bench/concurrency.ts';
import { density } from './bench/density.ts';
import { createContext, ROOT, type Options, type Section } from './bench/context.ts';
import { imports } from './bench/imports.ts';
import { netStartup } from './bench/netstartup.ts';
import type { SectionReport, Target } from './bench/report.ts';
import { startup } from './bench/startup.ts';
import { throughput } from './bench/throughput.ts';

// ---------------------------------------------------------------------------
// Options

/** An integer option's parser: at least min, at most max. */
function int(min: number, max = Number.MAX_SAFE_INTEGER, why = '') {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    if (Number(value) > max) throw new InvalidArgumentError(`at most ${max}${why}`);
    return Number(value);
  };
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

interface Parsed {
  runs: number; warmup: number; rssRuns: number; uid: number; gid?: number; rootfs?: string; launcher?: string; node?: string;
  json?: boolean; mtu: number; iperfTime: number; iperfRuns: number; concurrency: number; concurrencyRuns: number;
  density: number[]; densityParallel: number; densityPodmanMax: number; densitySettle: number; densityBudget: number;
}

/** --density's parser: a comma-separated list of counts, at most 1000 (the dense network is a /22). */
function counts(value: string): number[] {
  const list = value.split(',').map((x) => x.trim());
  if (list.some((x) => !/^\d+$/.test(x) || Number(x) < 1)) throw new InvalidArgumentError('expected counts >= 1 separated by commas, e.g. 100,500');
  if (list.some((x) => Number(x) > 1000)) throw new InvalidArgumentError('at most 1000 (the density network is a /22)');
  return [...new Set(list.map(Number))];
}

function cli(): Command {
  const sections = Object.entries(SECTIONS).map(([name, s]) => `  ${name.padEnd(14)}${s.summary}`).join('\n');
  const net = (flags: string, description: string) => new Option(flags, description).helpGroup('Options of the networked sections:');
  return new Command('node scripts/bench.ts')
    .usage('[options] [SECTION...]')
    .argument('[section...]')
    .helpOption('-h, --help', 'show this help')
    .option('--runs <n>', 'timed runs per command (use at least 20)', int(1), 30)
    .option('--warmup <n>', 'untimed warm-up runs per command', int(0), 3)
    .option('--rss-runs <n>', 'runs per command for peak RSS', int(1), 10)
    .option('--uid <u>', 'user to run the commands as when run as root', int(0), 1000)
    .option('--gid <g>', "its group (default: U's primary group in /etc/passwd, else U)", int(0))
    .option('--rootfs <dir>', 'rootfs to use (default: build one with scripts/make-rootfs.sh in a temporary directory, removed at the end)')
    .option('--launcher <p>', 'launcher executable (default: dist/launcher, built if missing); the networked sections install the netsetup beside it if there is one')
    .option('--node <p>', 'Node to compare with; the one the SEA is built from (default: .tools/bin/node if present, else this Node)')
    .option('--json', 'print one JSON object with all numbers instead of tables')
    .addOption(net('--mtu <n>', "MTU of the bench network and of the root-made veth (netsetup's default)").argParser(int(576, 65535)).default(1500))
    .addOption(net('--iperf-time <s>', 'seconds per iperf3 run').argParser(int(1)).default(3))
    .addOption(net('--iperf-runs <n>', 'iperf3 runs per setup and direction').argParser(int(1)).default(3))
    .addOption(net('--concurrency <n>', 'sandboxes / containers started at once').argParser(int(1, 200, ' (the bench subnet is a /24)')).default(50))
    .addOption(net('--concurrency-runs <n>', 'batches of each').argParser(int(1)).default(3))
    .addOption(net('--density <list>', 'numbers of sandboxes of the density section').argParser(counts).default([100, 500], '100,500'))
    .addOption(net('--density-parallel <n>', 'density: how many start at once (each Node program needs tens of MB while it starts)').argParser(int(1, 1000)).default(16))
    .addOption(net('--density-podman-max <n>', 'density: podman runs only for N up to this').argParser(int(0)).default(500))
    .addOption(net('--density-settle <s>', 'density: seconds between the last start and the measurement, and before each batch').argParser(int(0)).default(3))
    .addOption(net('--density-budget <s>', 'density: a batch starts no more after this many seconds (reported as started/N)').argParser(int(1)).default(180))
    .addHelpText('after', `\nSections (default: all):\n${sections}\n`)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`bench: ${str.replace(/^error: /, '')}Try 'node scripts/bench.ts --help'.\n`) });
}

/** The options, or undefined when --help was shown; throws CommanderError on a usage error (already reported). */
function parseOptions(argv: string[]): Options | undefined {
  const program = cli();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.code === 'commander.helpDisplayed') return undefined;
    throw err;
  }
  const positionals = program.processedArgs[0] as string[];
  for (const name of positionals) {
    if (!(name in SECTIONS)) program.error(`unknown section '${name}' (choose from: ${Object.keys(SECTIONS).join(', ')})`);
  }
  const values = program.opts<Parsed>();
  const toolsNode = path.join(ROOT, '.tools/bin/node');
  return {
    sections: positionals.length > 0 ? [...new Set(positionals)] : Object.keys(SECTIONS),
    runs: values.runs,
    warmup: values.warmup,
    rssRuns: values.rssRuns,
    uid: values.uid,
    gid: values.gid ?? primaryGid(values.uid),
    rootfs: values.rootfs === undefined ? undefined : path.resolve(values.rootfs),
    launcher: path.resolve(values.launcher ?? path.join(ROOT, 'dist/launcher')),
    node: path.resolve(values.node ?? (fs.existsSync(toolsNode) ? toolsNode : process.execPath)),
    json: values.json ?? false,
    iperfTime: values.iperfTime,
    iperfRuns: values.iperfRuns,
    concurrency: values.concurrency,
    concurrencyRuns: values.concurrencyRuns,
    mtu: values.mtu,
    densityCounts: values.density,
    densityParallel: values.densityParallel,
    densityPodmanMax: values.densityPodmanMax,
    densitySettle: values.densitySettle,
    densityBudget: values.densityBudget,
  };
}

// ---------------------------------------------------------------------------
// Sections, in the order they run by default. Add new ones here.

const SECTIONS: Record<string, Section> = {
  startup: { summary: 'launcher start-up time and peak RSS vs node -e 0, empty SEA, unshare, bwrap; cost of commander and ip-cidr in a SEA', run: startup },
  net: { summary: 'networked sandbox start-up vs --net none, node -e 0, podman slirp4netns (root)', run: netStartup },
  throughput: { summary: 'iperf3 sandbox<->host vs root-made veth, slirp4netns (root)', run: throughput },
  concurrency: { summary: 'N networked sandboxes at once vs N podman containers (root)', run: concurrency },
  density: { summary: '100 and 500 sandboxes at once: memory per sandbox, start and exit time, vs bwrap and podman (root)', run: density },
  imports: { summary: 'start-up cost of importing koffi, ip-cidr, commander, execa unbundled (ESM)', run: imports },
};

// ---------------------------------------------------------------------------
// Main

function nodeVersion(node: string): string {
  const r = execaSync(node, ['--version'], { reject: false });
  return r.exitCode === 0 ? r.stdout.trim() : 'unknown';
}

function targetLine(t: Target): string {
  return `  ${t.result}  ${t.name}${t.ratio === undefined ? '' : ` (${t.ratio.toFixed(2)})`}`;
}

async function main(argv: string[]): Promise<number> {
  let opts: Options | undefined;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    // commander has said what is wrong
    if (err instanceof CommanderError) return 2;
    throw err;
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
      loadAverage: os.loadavg()[0],
      node: nodeVersion(opts.node),
      user: ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : { uid: process.getuid!(), gid: process.getgid!() },
    };
    // A section that fails is reported as such and the others still run.
    const reports: Record<string, SectionReport> = {};
    let failed = 0;
    for (const name of opts.sections) {
      try {
        reports[name] = await SECTIONS[name]!.run(ctx);
      } catch (err) {
        failed++;
        const message = err instanceof Error ? err.message : String(err);
        ctx.log(`${name}: ${message}`);
        reports[name] = { text: [`FAILED: ${message}`], targets: [], data: { failed: message } };
      }
    }

    if (opts.json) {
      const sections = Object.fromEntries(Object.entries(reports).map(([name, r]) => [name, { ...r.data, targets: r.targets }]));
      process.stdout.write(`${JSON.stringify({ meta, sections }, null, 2)}\n`);
    } else {
      const out: string[] = [
        `nsbox bench: ${meta.cpus} x ${meta.cpu}, Linux ${meta.kernel}, Node ${meta.node}, as uid ${meta.user.uid} gid ${meta.user.gid}; load average ${meta.loadAverage!.toFixed(2)} at the start`,
      ];
      for (const [name, r] of Object.entries(reports)) {
        out.push('', `== ${name} ==`, '', ...r.text, '', 'Targets:');
        for (const t of r.targets) out.push(targetLine(t));
      }
      process.stdout.write(`${out.join('\n')}\n`);
    }
    return failed > 0 ? 1 : 0;
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    ctx.cleanup();
  }
}

process.exitCode = await main(process.argv.slice(2));
