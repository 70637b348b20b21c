// 'launcher unshare' and 'launcher import': host commands as root in a user
// namespace with the caller's id maps (idmap.ts), the way to make, inspect and
// remove a tree whose files belong to the caller's subordinate ids. The same
// native stub as the sandbox's runs them: wait for the maps, drop the
// supplementary groups, exec.
import fs from 'node:fs';
import path from 'node:path';
import { CloneError, startStub, waitExit, type PipeEnds } from '@nsbox/shared/clone';
import { NsboxError } from '@nsbox/shared/error';
import type { Step } from '@nsbox/shared/program';
import { CLONE_NEWUSER, F_SETFD, O_CLOEXEC, PR_SET_PDEATHSIG, SIGNALS } from '@nsbox/shared/syscalls';
import { libc } from '@nsbox/shared/libc';
import { readCallerMaps, SUBGID, SUBUID, writeMaps, type IdMaps } from './idmap.ts';
import { EXIT_LAUNCHER, judgeStart } from './outcome.ts';
import { commandCandidates, type SandboxPlan } from './plan.ts';
import { forwardSignals } from './signals.ts';
import { str } from './steps.ts';
import { explainCloneFailure, readUsernsSettings } from './userns.ts';

/** The stub's program (pure): the command runs as root of a new user namespace,
 *  with `stdin` (when given) as its fd 0. */
export function unshareProgram(ends: PipeEnds, command: string[], env: string[], ids: IdMaps['kind'], stdin?: number): SandboxPlan {
  const steps: Step[] = [
    { what: 'set the parent-death signal', call: 'prctl', args: [PR_SET_PDEATHSIG, SIGNALS.SIGKILL!] },
    { what: 'close the sync pipe', call: 'close', args: [ends.syncWrite] },
    { what: 'wait for the launcher', call: 'read', args: [ends.syncRead, { bytes: new Uint8Array(8) }, 1], expect: 1 },
  ];
  if (ids === 'subids') steps.push({ what: 'drop the supplementary groups', call: 'setgroups', args: [0, 0] });
  if (stdin !== undefined) steps.push({ what: 'take the archive on stdin', call: 'dup3', args: [stdin, 0, 0] });
  for (const fd of [0, 1, 2]) steps.push({ what: `keep fd ${fd} open across exec`, call: 'fcntl', args: [fd, F_SETFD, 0], soft: true });
  const candidates = commandCandidates(command[0]!, env);
  const execFrom = steps.length;
  for (const c of candidates) steps.push({ what: `execute ${c}`, call: 'execve', args: [str(c), { strings: command }, { strings: env }], soft: true });
  return { steps, execFrom, candidates };
}

/** Runs a host command in the caller's user namespace; resolves to its exit status
 *  (128+N for signal N). `feed`, when given, writes the command's stdin. */
export async function runUnshared(command: string[], feed?: (fd: number) => void): Promise<number> {
  const maps = readCallerMaps(process.getuid!(), process.getgid!());
  const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
  let pipe: [number, number] | undefined;
  if (feed) {
    const fds = [-1, -1];
    if (libc().pipe2(fds, O_CLOEXEC) !== 0) throw new NsboxError({ what: 'import', why: 'cannot make a pipe' });
    pipe = fds as [number, number];
  }
  let plan: SandboxPlan | undefined;
  let child;
  try {
    child = startStub(CLONE_NEWUSER, (ends) => (plan = unshareProgram(ends, command, env, maps.kind, pipe?.[0])).steps);
  } catch (err) {
    if (err instanceof CloneError) throw explainCloneFailure(err.errno, readUsernsSettings(), process.getuid!() === 0);
    throw err;
  }
  if (pipe) libc().close(pipe[0]);
  const signals = forwardSignals(child.pid);
  try {
    try {
      writeMaps(child.pid, maps);
    } catch (err) {
      child.abort();
      throw err;
    }
    const outcome = judgeStart(plan!, child.release(), command[0]!);
    if (outcome.started && pipe) feed!(pipe[1]);
    if (pipe) libc().close(pipe[1]);
    const exit = await waitExit(child.pid);
    if (!outcome.started) throw outcome.error;
    return exit.signal !== undefined ? 128 + exit.signal : exit.code;
  } finally {
    signals.stop();
  }
}

export function unshare(argv: string[]): Promise<number> {
  const command = argv[0] === '--' ? argv.slice(1) : argv;
  if (command.length === 0 || command[0] === '') {
    throw new NsboxError({ what: 'unshare', why: 'needs a command', todo: "Try 'launcher unshare -- CMD [ARGS...]'." });
  }
  return runUnshared(command);
}

export type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'none';

/** What an archive is compressed with, from its first bytes (pure). */
export function compressionOf(head: Uint8Array): Compression {
  const b = Buffer.from(head);
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip';
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return 'zstd';
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

const TAR_FLAG: Record<Compression, string[]> = { gzip: ['--gzip'], xz: ['--xz'], zstd: ['--zstd'], bzip2: ['--bzip2'], none: [] };

/** tar's command line (pure). Owners by number, never by the host's names; /dev's
 *  contents stay out (device nodes cannot be made in a user namespace, and the
 *  sandbox gets its own /dev). */
export function tarArgs(archive: string, dir: string, compression: Compression, owners = true): string[] {
  return ['tar', '--extract', '--file', archive, '--directory', dir, ...TAR_FLAG[compression], '--numeric-owner', owners ? '--same-owner' : '--no-same-owner',
    '--same-permissions', '--anchored', '--exclude=./dev/*', '--exclude=dev/*'];
}

const TAR = '/usr/bin/tar';

export async function importRootfs(argv: string[]): Promise<number> {
  if (argv.length !== 2 || argv.some((a) => a === '')) {
    throw new NsboxError({ what: 'import', why: 'needs an archive and a directory', todo: "Try 'launcher import FILE|- DIR'." });
  }
  const [file, dir] = argv as [string, string];
  const what = `import ${file}`;
  let head: Buffer;
  let stdinRest: Buffer | undefined;
  if (file === '-') {
    head = readSome(0, 8);
    stdinRest = head;
  } else {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new NsboxError({ what, why: (err as Error).message.replace(/^\w+: /, ''), todo: 'Give a rootfs tarball (plain, gzip, xz or zstd).' });
    }
    head = readSome(fd, 8);
    fs.closeSync(fd);
  }
  const target = path.resolve(dir);
  try {
    fs.mkdirSync(target, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new NsboxError({ what: `import into ${dir}`, why: (err as Error).message.replace(/^\w+: /, '') });
    if (fs.readdirSync(target).length > 0) throw new NsboxError({ what: `import into ${dir}`, why: 'the directory is not empty', todo: 'Give a new or empty directory.' });
  }
  const compression = compressionOf(head);
  // Without subordinate ids only the caller is mapped: every file becomes the
  // caller's (a usable tree, but users inside cannot own files).
  const owners = readCallerMaps(process.getuid!(), process.getgid!()).kind === 'subids';
  if (!owners) process.stderr.write(`launcher: import: you have no subordinate ids (${SUBUID}, ${SUBGID}), so every file of ${dir} becomes yours.\n`);
  const args = tarArgs(file === '-' ? '-' : path.resolve(file), target, compression, owners);
  const feed = stdinRest === undefined ? undefined : (fd: number): void => copyStdin(stdinRest!, fd);
  const status = await runUnshared([TAR, ...args.slice(1)], feed);
  if (status !== 0) throw new NsboxError({ what, why: `tar failed (exit status ${status}; its messages are above)`, todo: `Remove the partial tree with 'launcher unshare -- rm -rf ${dir}'.`, exit: EXIT_LAUNCHER });
  return 0;
}

/** Up to n bytes from fd, fewer only at its end. */
function readSome(fd: number, n: number): Buffer {
  const buf = Buffer.alloc(n);
  let got = 0;
  while (got < n) {
    let r: number;
    try {
      r = fs.readSync(fd, buf, got, n - got, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
    if (r === 0) break;
    got += r;
  }
  return buf.subarray(0, got);
}

/** The bytes already read, then the rest of the launcher's stdin, into tar's. */
function copyStdin(first: Buffer, to: number): void {
  const write = (b: Buffer): boolean => {
    try {
      for (let at = 0; at < b.length; ) at += fs.writeSync(to, b, at);
      return true;
    } catch {
      return false; // tar has gone: its status says why
    }
  };
  if (!write(first)) return;
  const buf = Buffer.alloc(1 << 20);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
    if (n === 0 || !write(buf.subarray(0, n))) return;
  }
}
