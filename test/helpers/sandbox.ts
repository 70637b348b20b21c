// Shared by the integration tests: the built launcher, a busybox rootfs, and
// running the launcher as an unprivileged user.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const LAUNCHER = path.join(ROOT, 'dist/launcher');
/** An unprivileged uid/gid with no passwd entry: nothing on the host belongs to it. */
export const TEST_UID = Number(process.env.NSBOX_TEST_UID ?? 4321);
export const TEST_GID = TEST_UID;

/** The launcher's list of running sandboxes of `uid` (registry.ts), removed at exit. */
export function forgetSandboxesOf(uid: number): void {
  process.on('exit', () => fs.rmSync(`/tmp/nsbox-${uid}`, { recursive: true, force: true }));
}
forgetSandboxesOf(TEST_UID);

export function requireRoot(): void {
  if (process.getuid!() !== 0) throw new Error('integration tests run as root (they switch to an unprivileged user themselves)');
  if (!fs.existsSync(LAUNCHER)) throw new Error(`${LAUNCHER} is missing: run 'node scripts/build.ts' first`);
}

/** A fresh busybox rootfs in a temporary directory, removed when the process exits. */
export function makeRootfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-rootfs-'));
  fs.chmodSync(dir, 0o755);
  fs.rmdirSync(dir);
  execFileSync(path.join(ROOT, 'scripts/make-rootfs.sh'), [dir], { stdio: 'ignore' });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A directory owned by the test user, removed when the process exits. */
export function userDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-data-'));
  fs.chownSync(dir, TEST_UID, TEST_GID);
  fs.chmodSync(dir, 0o755);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  uid?: number;
  gid?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Leave stdin open for the test to write to. */
  keepStdin?: boolean;
  /** The launcher to run (default: dist/launcher). */
  launcher?: string;
  /** Run without adding --net none (see start()). */
  defaultNet?: boolean;
  /** Extra stdio entries from fd 3 on (e.g. 'pipe' for --info-fd 3). */
  extraFds?: 'pipe'[];
}

/** Starts the launcher as the test user. dist/launcher gets --net none unless args
 *  name a network: dist/netsetup next to it is not setuid root. */
export function start(args: string[], o: RunOptions = {}): ChildProcess {
  const net = o.defaultNet || o.launcher || args.some((a) => a.startsWith('--net')) ? [] : ['--net', 'none'];
  return spawn(o.launcher ?? LAUNCHER, [...net, ...args], {
    uid: o.uid ?? TEST_UID,
    gid: o.gid ?? TEST_GID,
    env: o.env ?? { PATH: '/usr/bin:/bin', TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe', ...(o.extraFds ?? [])],
    cwd: '/',
  });
}

export function collect(child: ChildProcess, o: RunOptions = {}): Promise<Result> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  if (o.input !== undefined) child.stdin!.end(o.input);
  else if (!o.keepStdin) child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export function run(args: string[], o: RunOptions = {}): Promise<Result> {
  return collect(start(args, o), o);
}

/** Resolves once `text` has appeared on the child's stdout. */
export function waitFor(child: ChildProcess, text: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(text)}; got ${JSON.stringify(seen)}`)), timeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** Pids of the processes that belong to `uid` on the host. */
export function processesOf(uid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = fs.readFileSync(`/proc/${entry}/status`, 'utf8');
      if (new RegExp(`^Uid:\\s+${uid}\\s`, 'm').test(status)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The sandbox's pid 1 as the host sees it: the launcher's child. */
export function sandboxPid(launcherPid: number): number | undefined {
  try {
    const children = fs.readFileSync(`/proc/${launcherPid}/task/${launcherPid}/children`, 'utf8').trim();
    return children === '' ? undefined : Number(children.split(' ')[0]);
  } catch {
    return undefined;
  }
}

export function hostMounts(): string {
  return fs.readFileSync('/proc/1/mountinfo', 'utf8');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
