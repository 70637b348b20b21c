// Runs a program (netsetup for the launcher, iptables-restore for netsetup) with
// glibc's posix_spawn through koffi: loading node:child_process alone costs
// ~1-4 ms of start-up, and posix_spawn (clone with CLONE_VM|CLONE_VFORK) does not
// copy Node's page tables. The child gets stdin from a pipe; stdout on /dev/null
// or a pipe the caller reads; stderr into a memory file or the caller's own; cwd
// /, the given environment, all signals at their defaults and unblocked. It can
// be started before its input is known (it waits on stdin): send() gives it its
// input, closeInput() just EOF, wait() reaps it.
import fs from 'node:fs';
import { sysError } from '@nsbox/shared/error';
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

export interface SpawnOptions {
  /** 'pipe': the caller reads it from Child.stdout; default 'null' (/dev/null). */
  stdout?: 'pipe' | 'null';
  /** 'capture' (default): into a memory file, its first line in wait()'s
   *  outcome; 'inherit': the caller's stderr. */
  stderr?: 'capture' | 'inherit';
}

export interface Child {
  pid: number;
  /** Read end of the child's stdout with `stdout: 'pipe'`, else -1. */
  stdout: number;
  /** Write end of the child's stdin, -1 once closed. */
  readonly stdin: number;
  /** Writes the child's whole input and closes its stdin (once). */
  send(input: string): void;
  /** Writes to the child's stdin and keeps it open; failures show in wait(). */
  write(text: string): void;
  /** Closes the child's stdin: it reads EOF. */
  closeInput(): void;
  /** Closes stdin if send() was not called (the child reads EOF), blocks until
   *  the child has exited; idempotent. */
  wait(): Outcome;
}

/** Reads from fd until a newline or EOF; returns the text before the newline. */
export function readLine(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (;;) {
    const n = fs.readSync(fd, buf);
    if (n === 0) break;
    const nl = buf.subarray(0, n).indexOf(10);
    chunks.push(Buffer.from(buf.subarray(0, nl >= 0 ? nl : n)));
    if (nl >= 0) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A child that dies early makes this fail (EPIPE): its status tells why. */
function writeAll(fd: number, text: string): void {
  try {
    const bytes = Buffer.from(text);
    for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at);
  } catch {
    // wait() reports the failure.
  }
}

function pipe(): [number, number] {
  const fds = [-1, -1];
  if (libc().pipe2(fds, O_CLOEXEC) !== 0) throw sysError('make a pipe (pipe2)', errno());
  return fds as [number, number];
}

export function start(file: string, args: string[], env: Record<string, string>, o: SpawnOptions = {}): Child {
  const c = libc();
  const [stdinRead, stdinWrite] = pipe();
  const [stdoutRead, stdoutWrite] = o.stdout === 'pipe' ? pipe() : [-1, -1];
  const capture = o.stderr !== 'inherit';
  const stderr = capture ? (c.memfd_create('stderr', MFD_CLOEXEC) as number) : -1;
  const actions = Buffer.alloc(ACTIONS_SIZE);
  let pid: number;
  try {
    if (capture && stderr < 0) throw sysError('memfd_create', errno());
    try {
      c.posix_spawn_file_actions_adddup2(actions, stdinRead, 0);
      if (stdoutWrite >= 0) c.posix_spawn_file_actions_adddup2(actions, stdoutWrite, 1);
      else c.posix_spawn_file_actions_addopen(actions, 1, '/dev/null', fs.constants.O_WRONLY, 0);
      // dup2 onto itself clears close-on-exec, which Node sets on 0-2.
      c.posix_spawn_file_actions_adddup2(actions, capture ? stderr : 2, 2);
      c.posix_spawn_file_actions_addchdir_np(actions, '/');
      const out = [0];
      const envList = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const rc = c.posix_spawn(out, file, actions, spawnAttributes(), [file, ...args, null], [...envList, null]) as number;
      if (rc !== 0) throw sysError(file, rc);
      pid = out[0]!;
    } finally {
      c.posix_spawn_file_actions_destroy(actions);
    }
  } catch (err) {
    c.close(stdinWrite);
    if (stdoutRead >= 0) c.close(stdoutRead);
    if (stderr >= 0) c.close(stderr);
    throw err;
  } finally {
    c.close(stdinRead);
    if (stdoutWrite >= 0) c.close(stdoutWrite);
  }
  let input = stdinWrite;
  const closeInput = (): void => {
    if (input >= 0) c.close(input);
    input = -1;
  };
  let outcome: Outcome | undefined;
  return {
    pid,
    stdout: stdoutRead,
    get stdin() {
      return input;
    },
    closeInput,
    send(text) {
      if (input < 0) throw new Error('input already sent');
      try {
        writeAll(input, text);
      } finally {
        closeInput();
      }
    },
    write(text) {
      if (input < 0) throw new Error('input already closed');
      writeAll(input, text);
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
      let firstLine = '';
      if (stderr >= 0) {
        const buf = Buffer.alloc(4096);
        const n = fs.readSync(stderr, buf, 0, buf.length, 0);
        c.close(stderr);
        firstLine = buf.toString('utf8', 0, n).trim().split('\n')[0] ?? '';
      }
      outcome = { status: code, stderr: firstLine };
      return outcome;
    },
  };
}

/**
 * Runs `file` with exactly the fds `fds` (fds[i] becomes its fd i; 'null' is
 * /dev/null), an empty environment, cwd / and every signal at its default;
 * returns its pid without waiting (reap it with reap()).
 */
export function spawnWith(file: string, argv: string[], fds: (number | 'null')[]): number {
  const c = libc();
  const actions = Buffer.alloc(ACTIONS_SIZE);
  try {
    fds.forEach((fd, i) => {
      if (fd === 'null') c.posix_spawn_file_actions_addopen(actions, i, '/dev/null', fs.constants.O_RDWR, 0);
      else c.posix_spawn_file_actions_adddup2(actions, fd, i);
    });
    c.posix_spawn_file_actions_addchdir_np(actions, '/');
    const out = [0];
    const rc = c.posix_spawn(out, file, actions, spawnAttributes(), [...argv, null], [null]) as number;
    if (rc !== 0) throw sysError(file, rc);
    return out[0]!;
  } finally {
    c.posix_spawn_file_actions_destroy(actions);
  }
}

const WNOHANG = 1;

/** Reaps `pid` if it has exited; true when it has (or is not our child). */
export function reap(pid: number): boolean {
  const r = libc().waitpid(pid, [0], WNOHANG) as number;
  return r !== 0;
}
