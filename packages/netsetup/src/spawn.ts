// Runs a program (iptables-restore) with glibc's posix_spawn through koffi:
// loading node:child_process alone costs ~1-4 ms of netsetup's start, and
// posix_spawn (clone with CLONE_VM|CLONE_VFORK) does not copy Node's page
// tables. The child gets stdin from a pipe, stdout on /dev/null, stderr into a
// memory file, cwd /, the given environment, all signals at their defaults and
// unblocked. It can be started before its input is known (it waits on stdin
// while netsetup works): send() gives it its input, wait() reaps it.
import fs from 'node:fs';
import { describeErrno } from '@nsbox/shared/errno';
import { libc, errno } from '@nsbox/shared/libc';
import { O_CLOEXEC } from '@nsbox/shared/syscalls';

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const MFD_CLOEXEC = 0x1;
const EINTR = 4;
/** A generous size for glibc's posix_spawn_file_actions_t (80 bytes on x86_64
 *  and arm64); all zeros is its initial state (posix_spawn_file_actions_init). */
const ACTIONS_SIZE = 512;

/** glibc's posix_spawnattr_t, filled here rather than through five more FFI
 *  bindings (~20 µs each): its layout is public in <spawn.h> (short __flags;
 *  pid_t __pgrp; sigset_t __sd; sigset_t __ss; ...; 336 bytes on x86_64 and
 *  arm64). Every signal to its default in the child (Node ignores SIGPIPE), none
 *  blocked (__ss stays empty). */
function spawnAttributes(): Buffer {
  const attr = Buffer.alloc(512);
  attr.writeInt16LE(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK, 0);
  attr.fill(0xff, 8, 8 + 128);
  return attr;
}

export interface Outcome {
  /** Exit code, or 128 + signal number. */
  status: number;
  /** The first line the program wrote to stderr. */
  stderr: string;
}

export interface Child {
  pid: number;
  /** Writes the child's whole input and closes its stdin (once). */
  send(input: string): void;
  /** Closes stdin if send() was not called (the child reads EOF), blocks until
   *  the child has exited; idempotent. */
  wait(): Outcome;
}

export class SpawnError extends Error {}

export function start(file: string, args: string[], env: Record<string, string>): Child {
  const c = libc();
  const fds = [-1, -1];
  if (c.pipe2(fds, O_CLOEXEC) !== 0) throw new SpawnError(`pipe2: ${describeErrno(errno())}`);
  const [stdinRead, stdinWrite] = fds as [number, number];
  const stderr = c.memfd_create('stderr', MFD_CLOEXEC) as number;
  const actions = Buffer.alloc(ACTIONS_SIZE);
  let pid: number;
  try {
    if (stderr < 0) throw new SpawnError(`memfd_create: ${describeErrno(errno())}`);
    try {
      c.posix_spawn_file_actions_adddup2(actions, stdinRead, 0);
      c.posix_spawn_file_actions_addopen(actions, 1, '/dev/null', fs.constants.O_WRONLY, 0);
      c.posix_spawn_file_actions_adddup2(actions, stderr, 2);
      c.posix_spawn_file_actions_addchdir_np(actions, '/');
      const out = [0];
      const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const rc = c.posix_spawn(out, file, actions, spawnAttributes(), [file, ...args, null], [...envList, null]) as number;
      if (rc !== 0) throw new SpawnError(`${file}: ${describeErrno(rc)}`);
      pid = out[0]!;
    } finally {
      c.posix_spawn_file_actions_destroy(actions);
    }
  } catch (err) {
    c.close(stdinWrite);
    if (stderr >= 0) c.close(stderr);
    throw err;
  } finally {
    c.close(stdinRead);
  }
  let input = stdinWrite;
  const closeInput = (): void => {
    if (input >= 0) c.close(input);
    input = -1;
  };
  let outcome: Outcome | undefined;
  return {
    pid,
    send(text) {
      if (input < 0) throw new Error('input already sent');
      try {
        // A child that dies early makes this fail (EPIPE): its status tells why.
        const bytes = Buffer.from(text);
        for (let at = 0; at < bytes.length; ) at += fs.writeSync(input, bytes, at);
      } catch {
        // wait() reports the failure.
      } finally {
        closeInput();
      }
    },
    wait() {
      if (outcome) return outcome;
      closeInput();
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
