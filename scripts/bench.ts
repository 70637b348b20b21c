// Benchmarks for nsbox, in sections; each section measures one thing, prints a
// table and checks its targets. A missed target is reported, not an error: the
// exit status is 0 unless the benchmark itself could not run.
//   node scripts/bench.ts [options] [SECTION...]     (default: every section)
// Sections (scripts/bench/*.ts):
//   startup       launcher start-up time and peak RSS against `node -e 0`, unshare
//                 and bwrap
//   net           networked sandbox (launcher --net bridge) start-up against
//                 --net none, `node -e 0` and rootless podman with slirp4netns
//   throughput    iperf3 sandbox<->host against a root-made veth and slirp4netns
//   concurrency   50 networked sandboxes at once against 50 podman containers
// Run as root, every command runs as --uid/--gid (spawned with that uid/gid and
// no supplementary groups); run as anyone else, as the current user. The
// networked sections need root: they install netsetup setuid into a temporary
// prefix with its own bridge (nsbench1, 10.232.10.0/24) and make the root veth
// baseline (10.232.11.0/24); all of it is removed at the end, also on failure
// and on SIGINT/SIGTERM/SIGHUP. Serialize with other users of the machine's
// network: flock /tmp/nsbox-it.lock node scripts/bench.ts
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { concurrency } from './bench/concurrency.ts';
import { createContext, ROOT, type Options, type Section } from './bench/context.ts';
import { netStartup } from './bench/netstartup.ts';
import type { SectionReport, Target } from './bench/report.ts';
import { startup } from './bench/startup.ts';
import { throughput } from './bench/throughput.ts';

// ---------------------------------------------------------------------------
// Options

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

Options of the networked sections:
  --mtu N         MTU of the bench network and of the root-made veth (default 1500,
                  netsetup's default)
  --iperf-time S  seconds per iperf3 run (default 3)
  --iperf-runs N  iperf3 runs per setup and direction (default 3)
  --concurrency N sandboxes / containers started at once (default 50, at most 200)
  --concurrency-runs N  batches of each (default 3)
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
      mtu: { type: 'string' },
      'iperf-time': { type: 'string' },
      'iperf-runs': { type: 'string' },
      concurrency: { type: 'string' },
      'concurrency-runs': { type: 'string' },
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
  const toolsNode = path.join(ROOT, '.tools/bin/node');
  const mtu = positiveInt('mtu', values.mtu, 1500, 576);
  if (mtu > 65535) throw new UsageError(`--mtu ${mtu}: at most 65535`);
  const concurrency = positiveInt('concurrency', values.concurrency, 50, 1);
  if (concurrency > 200) throw new UsageError(`--concurrency ${concurrency}: at most 200 (the bench subnet is a /24)`);
  return {
    sections: positionals.length > 0 ? [...new Set(positionals)] : Object.keys(SECTIONS),
    runs: positiveInt('runs', values.runs, 30, 1),
    warmup: positiveInt('warmup', values.warmup, 3, 0),
    rssRuns: positiveInt('rss-runs', values['rss-runs'], 10, 1),
    uid,
    gid: positiveInt('gid', values.gid, primaryGid(uid), 0),
    rootfs: values.rootfs === undefined ? undefined : path.resolve(values.rootfs),
    launcher: path.resolve(values.launcher ?? path.join(ROOT, 'dist/launcher')),
    node: path.resolve(values.node ?? (fs.existsSync(toolsNode) ? toolsNode : process.execPath)),
    json: values.json,
    iperfTime: positiveInt('iperf-time', values['iperf-time'], 3, 1),
    iperfRuns: positiveInt('iperf-runs', values['iperf-runs'], 3, 1),
    concurrency,
    concurrencyRuns: positiveInt('concurrency-runs', values['concurrency-runs'], 3, 1),
    mtu,
  };
}

// ---------------------------------------------------------------------------
// Sections, in the order they run by default. Add new ones here.

const SECTIONS: Record<string, Section> = {
  startup: { summary: 'launcher start-up time and peak RSS vs node -e 0, unshare, bwrap', run: startup },
  net: { summary: 'networked sandbox start-up vs --net none, node -e 0, podman slirp4netns (root)', run: netStartup },
  throughput: { summary: 'iperf3 sandbox<->host vs root-made veth, slirp4netns (root)', run: throughput },
  concurrency: { summary: 'N networked sandboxes at once vs N podman containers (root)', run: concurrency },
};

// ---------------------------------------------------------------------------
// Main

function nodeVersion(node: string): string {
  const r = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

function targetLine(t: Target): string {
  return `  ${t.result}  ${t.name}${t.ratio === undefined ? '' : ` (${t.ratio.toFixed(2)})`}`;
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
        `nsbox bench: ${meta.cpus} x ${meta.cpu}, Linux ${meta.kernel}, Node ${meta.node}, as uid ${meta.user.uid} gid ${meta.user.gid}`,
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
