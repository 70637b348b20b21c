// What every section shares: the options, who runs the commands, temporary
// files, the rootfs and launcher, shared resources made on first use, and the
// cleanup of everything the benchmark created (run at the end, on failure and
// on SIGINT/SIGTERM/SIGHUP).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa, execaSync, type Result, type ResultPromise, type SyncResult } from 'execa';
import type { SectionReport } from './report.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Options {
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
  /** seconds per iperf3 run */
  iperfTime: number;
  iperfRuns: number;
  /** sandboxes started at once */
  concurrency: number;
  concurrencyRuns: number;
  /** MTU of the bench network and of the root-made veth it is compared with */
  mtu: number;
  /** the density section's numbers of sandboxes */
  densityCounts: number[];
  /** how many start at once in the density section */
  densityParallel: number;
  /** the largest N podman runs for in the density section */
  densityPodmanMax: number;
  /** seconds between the last start and the measurement */
  densitySettle: number;
  /** seconds after which a density batch starts no more */
  densityBudget: number;
}

export interface Section {
  summary: string;
  run(ctx: Context): Promise<SectionReport>;
}

/** The user every benchmarked command runs as; undefined: the current user. */
export type RunAs = { uid: number; gid: number } | undefined;

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** keep stdout (else it is discarded) */
  capture?: boolean;
  /** SIGKILL after this long */
  timeoutMs?: number;
}

export interface RunResult {
  ms: number;
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** how many extra pipes the child gets as fd 3, 4, ... (for --info-fd, --ready-fd) */
  extraFds?: number;
  /** keep stdout (else it is discarded) */
  capture?: boolean;
  /** SIGKILL after this long */
  timeoutMs?: number;
}

export interface Running {
  child: ResultPromise;
  /** Settles when the child has exited and its pipes are closed; ms from spawn to exit. */
  done: Promise<RunResult>;
}

export interface Context {
  opts: Options;
  runAs: RunAs;
  /** Progress and notes, on stderr so that --json output stays clean. */
  log(message: string): void;
  /** A temporary directory (made on first use, 0755, removed last by cleanup). */
  tempDir(): string;
  /** The rootfs for sandboxes: --rootfs, or one built on first use. */
  rootfs(): string;
  /** A launcher executable: --launcher, built with scripts/build.ts if it is the default and missing. */
  launcher(): string;
  /** dist/PROGRAM (a program or a probe of scripts/build.ts), built if missing. */
  built(program: string): string;
  /** A resource shared by sections (made by `make` on first use, then the same one). */
  shared<T>(key: string, make: () => T): T;
  /** Registers how to undo something the benchmark created; cleanup runs these last-in first-out. */
  defer(what: string, undo: () => void): void;
  /** Starts a process whose exit is awaited; cleanup SIGKILLs it if it still runs. */
  spawn(as: RunAs, argv: string[], o?: SpawnOptions): Running;
  cleanup(): void;
}

export function createContext(opts: Options): Context {
  const runAs: RunAs = process.getuid!() === 0 ? { uid: opts.uid, gid: opts.gid } : undefined;
  let tmp: string | undefined;
  let rootfs: string | undefined;
  let launcherChecked = false;
  const resources = new Map<string, unknown>();
  const undo: { what: string; fn: () => void }[] = [];
  const children = new Set<ResultPromise>();
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
        execaSync(path.join(ROOT, 'scripts/make-rootfs.sh'), [dir], { stdio: ['ignore', 2, 2] });
        execaSync('chmod', ['-R', 'a+rX', dir]);
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
        if (opts.launcher !== path.join(ROOT, 'dist/launcher')) throw new Error(`${opts.launcher}: no such file`);
        ctx.built('launcher');
      }
      launcherChecked = true;
      return opts.launcher;
    },
    built(program) {
      const file = path.join(ROOT, 'dist', program);
      if (!fs.existsSync(file)) {
        log(`dist/${program} is missing; building it with scripts/build.ts`);
        execaSync(opts.node, [path.join(ROOT, 'scripts/build.ts'), program], { cwd: ROOT, stdio: ['ignore', 2, 2] });
      }
      return file;
    },
    shared<T>(key: string, make: () => T): T {
      if (!resources.has(key)) resources.set(key, make());
      return resources.get(key) as T;
    },
    defer(what, fn) {
      undo.push({ what, fn });
    },
    spawn(as, argv, o = {}) {
      const [file, ...args] = argv;
      const start = process.hrtime.bigint();
      const child = execa(file!, args, {
        stdio: ['ignore', o.capture ? 'pipe' : 'ignore', 'pipe', ...Array<'pipe'>(o.extraFds ?? 0).fill('pipe')],
        ...envOptions(o.env),
        ...(as ? { uid: as.uid, gid: as.gid } : {}),
        ...(o.timeoutMs === undefined ? {} : { timeout: o.timeoutMs, killSignal: 'SIGKILL' as const }),
        stripFinalNewline: false,
        reject: false,
      });
      children.add(child);
      let exitedAt = start;
      child.once('exit', () => (exitedAt = process.hrtime.bigint()));
      const done = child.then((r) => {
        children.delete(child);
        if (spawnFailed(r)) throw new Error(`cannot run ${file}: ${r.cause instanceof Error ? r.cause.message : r.shortMessage}`);
        return { ms: Number(exitedAt - start) / 1e6, ...outcome(r) };
      });
      return { child, done };
    },
    cleanup() {
      for (const c of children) c.kill('SIGKILL');
      children.clear();
      while (undo.length > 0) {
        const { what, fn } = undo.pop()!;
        try {
          fn();
        } catch (err) {
          log(`cleanup: ${what} failed: ${(err as Error).message}`);
        }
      }
      resources.clear();
      if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
      tmp = undefined;
      rootfs = undefined;
    },
  };
  return ctx;
}

/** An env option replaces the environment, as it does for child_process. */
const envOptions = (env: NodeJS.ProcessEnv | undefined) => (env ? { env, extendEnv: false } : {});

/** The command could not be started at all (no exit, no signal, no time-out). */
const spawnFailed = (r: Result | SyncResult): boolean => r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut;

const text = (x: unknown): string => (typeof x === 'string' ? x : '');

function outcome(r: Result | SyncResult): Omit<RunResult, 'ms'> {
  return { status: r.exitCode ?? null, signal: (r.signal as NodeJS.Signals | undefined) ?? null, stdout: text(r.stdout), stderr: text(r.stderr) };
}

/** Runs argv to completion, timed from just before the spawn to just after the exit. */
export function run(runAs: RunAs, argv: string[], o: RunOptions = {}): RunResult {
  const [file, ...args] = argv;
  const start = process.hrtime.bigint();
  const r = execaSync(file!, args, {
    stdio: ['ignore', o.capture ? 'pipe' : 'ignore', 'pipe'],
    stripFinalNewline: false,
    maxBuffer: 64 * 1024 * 1024,
    reject: false,
    ...envOptions(o.env),
    ...(o.timeoutMs ? { timeout: o.timeoutMs, killSignal: 'SIGKILL' as const } : {}),
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (spawnFailed(r)) throw new Error(`cannot run ${file}: ${r.cause instanceof Error ? r.cause.message : r.shortMessage}`);
  return { ms, ...outcome(r) };
}

/**
 * Lets the event loop turn. Many runs are synchronous spawns, and signal handlers
 * (which clean up) only run when the loop turns: runners call this between runs.
 */
export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function check(label: string, r: RunResult): RunResult {
  if (r.status === 0) return r;
  const how = r.signal ? `died of ${r.signal}` : `exited ${r.status}`;
  const err = r.stderr.trim();
  throw new Error(`'${label}' ${how}${err ? `:\n${err}` : ''}`);
}

export function findExecutable(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
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

/** Runs a root-only command (ip, iptables) and returns its stdout, or throws with its stderr. */
export function asRoot(argv: string[]): string {
  const r = run(undefined, argv, { capture: true, timeoutMs: 60_000 });
  return check(argv.join(' '), r).stdout;
}
