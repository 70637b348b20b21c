// Runs a program (iptables-restore) with glibc's posix_spawn through koffi:
// loading node:child_process alone costs ~1-4 ms of netsetup's start, and
// posix_spawn (clone with CLONE_VM|CLONE_VFORK) does not copy Node's page
// tables. The child starts with stdin from a memory file holding `input`,
// stdout on /dev/null, stderr into a memory file, cwd /, the given environment,
// all signals at their defaults and unblocked. start() returns at once, so
// netsetup can do its netlink work while the child runs; wait() reaps it.
import fs from 'node:fs';
import { libc, errno } from '@nsbox/shared/libc';
import { describeErrno } from '@nsbox/shared/errno';

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const MFD_CLOEXEC = 0x1;
const EINTR = 4;
/** Generous sizes for glibc's opaque posix_spawn_file_actions_t (80 bytes on
 *  x86_64 and arm64), posix_spawnattr_t (336) and sigset_t (128). */
const OPAQUE = 512;

export interface Outcome {
  /** Exit code, or 128 + signal number. */
  status: number;
  /** The first line the program wrote to stderr. */
  stderr: string;
}

export interface Running {
  pid: number;
  /** Blocks until the child has exited; idempotent. */
  wait(): Outcome;
}

export class SpawnError extends Error {}

function memfd(name: string): number {
  const fd = libc().memfd_create(name, MFD_CLOEXEC) as number;
  if (fd < 0) throw new SpawnError(`memfd_create: ${describeErrno(errno())}`);
  return fd;
}

export function start(file: string, args: string[], env: Record<string, string>, input: string): Running {
  const c = libc();
  const stdin = memfd('stdin');
  let stderr = -1;
  const actions = Buffer.alloc(OPAQUE);
  const attr = Buffer.alloc(OPAQUE);
  let pid: number;
  try {
    // pwrite at offset 0 leaves the file offset at 0 for the child to read from.
    const bytes = Buffer.from(input);
    fs.writeSync(stdin, bytes, 0, bytes.length, 0);
    stderr = memfd('stderr');
    c.posix_spawn_file_actions_init(actions);
    c.posix_spawnattr_init(attr);
    try {
      const all = Buffer.alloc(OPAQUE);
      const none = Buffer.alloc(OPAQUE);
      c.sigfillset(all);
      c.sigemptyset(none);
      c.posix_spawnattr_setsigdefault(attr, all);
      c.posix_spawnattr_setsigmask(attr, none);
      c.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
      c.posix_spawn_file_actions_adddup2(actions, stdin, 0);
      c.posix_spawn_file_actions_addopen(actions, 1, '/dev/null', fs.constants.O_WRONLY, 0);
      c.posix_spawn_file_actions_adddup2(actions, stderr, 2);
      c.posix_spawn_file_actions_addchdir_np(actions, '/');
      const out = [0];
      const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const rc = c.posix_spawn(out, file, actions, attr, [file, ...args, null], [...envList, null]) as number;
      if (rc !== 0) throw new SpawnError(`${file}: ${describeErrno(rc)}`);
      pid = out[0]!;
    } finally {
      c.posix_spawn_file_actions_destroy(actions);
      c.posix_spawnattr_destroy(attr);
    }
  } catch (err) {
    c.close(stdin);
    if (stderr >= 0) c.close(stderr);
    throw err;
  }
  c.close(stdin);
  let outcome: Outcome | undefined;
  return {
    pid,
    wait(): Outcome {
      if (outcome) return outcome;
      const status = [0];
      let r: number;
      do r = c.waitpid(pid, status, 0) as number;
      while (r < 0 && errno() === EINTR);
      const s = status[0]!;
      const code = r !== pid ? 128 : (s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(stderr, buf, 0, buf.length, 0);
      c.close(stderr);
      outcome = { status: code, stderr: buf.toString('utf8', 0, n).trim().split('\n')[0] ?? '' };
      return outcome;
    },
  };
}
