// Turning this process into the supervisor (supervisor/supervisor.c): once a
// sandbox's command runs, the launcher and netsetup's holder have only waiting
// left to do, which needs no V8. The supervisor's ELF is written into a sealed
// memfd and executed with fexecve (execveat AT_EMPTY_PATH): same pid, so the
// caller's shell, the sandbox's parent and the holder's recorded pid and start
// time all stay valid, and ~16 KiB of private memory instead of ~10 MiB
// (docs/platform.md §6).
import fs from 'node:fs';
import { codePage, handlerAction, sigactionBuffer } from './codepage.ts';
import { describeErrno } from './errno.ts';
import { NsboxError } from './error.ts';
import { errno, libc } from './libc.ts';
import { spawnWith } from './spawn.ts';
import { REDIRECT_CODE, SUPERVISOR_ELF } from './supervisor/code.ts';
import { currentArch, F_SETFD } from './syscalls.ts';

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
/** Since Linux 6.3; older kernels refuse the flag (EINVAL) and need none. */
const MFD_EXEC = 0x10;
const EINVAL = 22;
const F_ADD_SEALS = 1033;
const F_SEAL_ALL = 0x1 | 0x2 | 0x4 | 0x8; // seal, shrink, grow, write
const FD_CLOEXEC = 1;
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;

/** The name the supervisor's memfd has (its /proc/PID/exe is `/memfd:NAME (deleted)`). */
export const SUPERVISOR_NAME = 'nsbox-supervisor';

/** Blocks `signals` in the calling thread (Node's main thread: the one that
 *  execs, and whose mask the supervisor inherits); returns the undo. */
export function blockSignals(signals: number[]): () => void {
  const set = Buffer.alloc(128);
  const old = Buffer.alloc(128);
  let mask = 0n;
  for (const s of signals) mask |= 1n << BigInt(s - 1);
  set.writeBigUInt64LE(mask, 0);
  libc().pthread_sigmask(SIG_BLOCK, set, old);
  return () => libc().pthread_sigmask(SIG_SETMASK, old, null);
}

let redirectPage: bigint | undefined;

/**
 * Until the exec, `signals` (blocked in the main thread) may still land in one of
 * Node's other threads, whose handler (libuv's) would leave them in a pipe that
 * the exec discards. This installs a native handler (redirect-*.S) that sends
 * each on to the main thread with tgkill, where it stays pending across the exec.
 * Returns the undo (Node's handlers back).
 */
export function redirectSignals(signals: number[]): () => void {
  const c = libc();
  if (redirectPage === undefined) {
    try {
      redirectPage = codePage(Buffer.from(REDIRECT_CODE[currentArch()], 'hex'), 'the signal redirect');
    } catch {
      return () => {};
    }
  }
  const act = handlerAction(redirectPage);
  const old = signals.map((sig) => {
    const was = sigactionBuffer();
    c.sigaction(sig, act, was);
    return [sig, was] as const;
  });
  return () => {
    for (const [sig, was] of old) c.sigaction(sig, was, null);
  };
}

/** A sealed memfd holding the supervisor, or why there is none. */
function supervisorFile(): number | NsboxError {
  const c = libc();
  let fd: number = c.memfd_create(SUPERVISOR_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno() === EINVAL) fd = c.memfd_create(SUPERVISOR_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return new NsboxError({ what: 'memfd_create for the supervisor', why: describeErrno(errno()) });
  try {
    const bytes = Buffer.from(SUPERVISOR_ELF[currentArch()], 'base64');
    for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at);
  } catch (err) {
    c.close(fd);
    return new NsboxError({ what: 'write the supervisor', why: (err as Error).message });
  }
  // Sealed: nothing can change the code between here and the exec.
  if (c.fcntl(fd, F_ADD_SEALS, 'int', F_SEAL_ALL) !== 0) {
    const e = errno();
    c.close(fd);
    return new NsboxError({ what: 'seal the supervisor', why: describeErrno(e) });
  }
  return fd;
}

/**
 * Starts the supervisor as a child (`args` after its argv[0]) with exactly the
 * fds `fds` (spawnWith); its pid, or why it could not be started.
 */
export function spawnSupervisor(args: string[], fds: (number | 'null')[]): number | NsboxError {
  const file = supervisorFile();
  if (file instanceof NsboxError) return file;
  try {
    return spawnWith(`/proc/self/fd/${file}`, [SUPERVISOR_NAME, ...args], fds);
  } catch (err) {
    return err instanceof NsboxError ? err : new NsboxError({ what: 'start the supervisor', why: (err as Error).message });
  } finally {
    libc().close(file);
  }
}

/**
 * Replaces this process with the supervisor (`args` after its argv[0]). Every
 * fd but 0-2 and `keep` is made close-on-exec first (Node has many: epoll,
 * eventfds, pipes, koffi's file); those are made inheritable. Returns only if it
 * could not (an old kernel, vm.memfd_noexec=2, a noexec policy): why; the
 * caller then goes on waiting in Node.
 */
export function execSupervisor(args: string[], keep: number[]): NsboxError {
  const file = supervisorFile();
  if (file instanceof NsboxError) return file;
  const c = libc();
  const inherit = new Set([0, 1, 2, ...keep]);
  for (const name of fs.readdirSync('/proc/self/fd')) {
    const fd = Number(name);
    if (fd !== file) c.fcntl(fd, F_SETFD, 'int', inherit.has(fd) ? 0 : FD_CLOEXEC);
  }
  c.fexecve(file, [SUPERVISOR_NAME, ...args, null], [null]);
  const e = errno();
  c.close(file);
  return new NsboxError({ what: 'execute the supervisor', why: describeErrno(e) });
}
