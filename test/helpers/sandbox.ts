// Shared by the integration tests: the built launcher, a busybox rootfs, and
// running the launcher as an unprivileged user.
import { execa, execaSync, type ResultPromise } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');
/** The built launcher (and the unprivileged netsetup next to it) copied where any
 *  user can reach them: the checkout may be in a directory others cannot enter
 *  (a clone under /root). Filled in by requireRoot(). */
const BIN_DIR = path.join(os.tmpdir(), `nsbox-bin-${process.pid}`);
export const LAUNCHER = path.join(BIN_DIR, 'launcher');
/** An unprivileged uid/gid with no passwd entry: nothing on the host belongs to it. */
export const TEST_UID = Number(process.env.NSBOX_TEST_UID ?? 4321);
export const TEST_GID = TEST_UID;

/** The launcher's list of running sandboxes of a test user `uid` (registry.ts),
 *  removed at exit; root's only when empty (its entries go when their sandboxes end). */
export function forgetSandboxesOf(uid: number): void {
  process.on('exit', () => {
    const dirs = [`/tmp/nsbox-${uid}`, `/run/user/${uid}/nsbox`];
    for (const dir of dirs) {
      try {
        if (uid === 0) fs.rmdirSync(dir);
        else fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // not there, or root's still in use
      }
    }
  });
}
forgetSandboxesOf(TEST_UID);
forgetSandboxesOf(0);

export function requireRoot(): void {
  if (process.getuid!() !== 0) throw new Error('integration tests run as root (they switch to an unprivileged user themselves)');
  const built = path.join(ROOT, 'dist/launcher');
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run 'node scripts/build.ts' first`);
  if (fs.existsSync(LAUNCHER)) return;
  fs.mkdirSync(BIN_DIR, { mode: 0o755 });
  fs.chmodSync(BIN_DIR, 0o755);
  process.on('exit', () => fs.rmSync(BIN_DIR, { recursive: true, force: true }));
  for (const name of ['launcher', 'netsetup']) {
    const from = path.join(ROOT, 'dist', name);
    if (!fs.existsSync(from)) continue;
    fs.copyFileSync(from, path.join(BIN_DIR, name));
    fs.chmodSync(path.join(BIN_DIR, name), 0o755);
  }
}

/** This Node, where the test users can run it: the checkout (and its .tools)
 *  may be somewhere they cannot enter, such as /root. Copied on first use. */
export function userNode(): string {
  requireRoot();
  const node = path.join(BIN_DIR, 'node');
  if (!fs.existsSync(node)) {
    fs.copyFileSync(process.execPath, `${node}.new`);
    fs.chmodSync(`${node}.new`, 0o755);
    fs.renameSync(`${node}.new`, node);
  }
  return node;
}

/** A fresh busybox rootfs in a temporary directory, removed when the process exits. */
export function makeRootfs(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-rootfs-'));
  fs.chmodSync(dir, 0o755);
  fs.rmdirSync(dir);
  execaSync(path.join(ROOT, 'scripts/make-rootfs.sh'), [dir], { stdio: 'ignore' });
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let busyboxRootfs: string | undefined;
/** The static busybox of a test rootfs, for running its applets on the host's side
 *  (e.g. ping under nsenter): the host itself need not have busybox. */
export function busybox(): string {
  busyboxRootfs ??= makeRootfs();
  return path.join(busyboxRootfs, 'bin/busybox');
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

/** A child process started by execa. */
export type Child = ResultPromise;

/** Starts the launcher as the test user. dist/launcher gets --net none unless args
 *  name a network: the netsetup next to it is not setuid root. */
export function start(args: string[], o: RunOptions = {}): Child {
  const net = o.defaultNet || o.launcher || args.some((a) => a.startsWith('--net')) ? [] : ['--net', 'none'];
  return spawnAs(o.launcher ?? LAUNCHER, [...net, ...args], o);
}

/** Starts any command as the test user (or o.uid), with stdin, stdout and stderr
 *  pipes and a clean environment; collect() waits for it. */
export function spawnAs(file: string, args: string[], o: RunOptions = {}): Child {
  return execa(file, args, {
    uid: o.uid ?? TEST_UID,
    gid: o.gid ?? o.uid ?? TEST_GID,
    env: o.env ?? { PATH: '/usr/bin:/bin', TERM: 'dumb' },
    extendEnv: false,
    stdio: ['pipe', 'pipe', 'pipe', ...(o.extraFds ?? [])],
    cwd: '/',
    reject: false,
    stripFinalNewline: false,
    forceKillAfterDelay: false,
  });
}

export async function collect(child: Child, o: RunOptions = {}): Promise<Result> {
  if (o.input !== undefined) child.stdin!.end(o.input);
  else if (!o.keepStdin) child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 30_000);
  const r = await child;
  clearTimeout(timer);
  return { code: r.exitCode ?? null, signal: (r.signal as NodeJS.Signals | undefined) ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function run(args: string[], o: RunOptions = {}): Promise<Result> {
  return collect(start(args, o), o);
}

/** Resolves once `text` has appeared on the child's stdout. */
export function waitFor(child: Child, text: string, timeoutMs = 30_000): Promise<void> {
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

/** The host's mount table, without what other test files running at the same
 *  time mount on purpose (network namespaces pinned under /run/netns, the
 *  hygiene test's tiny state tmpfs): theirs, not a sandbox's leftovers. */
export function hostMounts(): string {
  return fs
    .readFileSync('/proc/1/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => !/ \/run\/(netns\/|nsbox-test-)\S+ /.test(line))
    .join('\n');
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
