// Runs a program with its stdin and stdout on pipes, through the same native stub
// as the sandbox (clone + execve): loading node:child_process alone costs ~4 ms of
// start-up, and the launcher runs netsetup on every networked start.
import fs from 'node:fs';
import { describeErrno } from './errno.ts';
import { startStub } from './clone.ts';
import { libc, errno } from './libc.ts';
import { F_SETFD, O_CLOEXEC } from './syscalls.ts';

export interface Spawned {
  pid: number;
  /** Write end of the program's stdin (close it to send EOF). */
  stdin: number;
  /** Read end of the program's stdout. */
  stdout: number;
}

export class SpawnError extends Error {}

function pipe(): [number, number] {
  const fds = [0, 0];
  if (libc().pipe2(fds, O_CLOEXEC) !== 0) throw new SpawnError(`pipe2 failed: ${describeErrno(errno())}`);
  return [fds[0]!, fds[1]!];
}

/** Starts `file` with argv and env; stderr is inherited. Throws SpawnError if it cannot be executed. */
export function spawnProgram(file: string, argv: string[], env: string[]): Spawned {
  const c = libc();
  const [inRead, inWrite] = pipe();
  const [outRead, outWrite] = pipe();
  const child = startStub(0, (ends) => [
    { what: 'close the sync pipe', call: 'close', args: [ends.syncWrite] },
    { what: 'wait for the parent', call: 'read', args: [ends.syncRead, { bytes: new Uint8Array(8) }, 1], expect: 1 },
    { what: 'connect stdin', call: 'dup3', args: [inRead, 0, 0] },
    { what: 'connect stdout', call: 'dup3', args: [outWrite, 1, 0] },
    { what: 'keep stderr', call: 'fcntl', args: [2, F_SETFD, 0], soft: true },
    { what: `execute ${file}`, call: 'execve', args: [{ str: file }, { strings: argv }, { strings: env }] },
  ]);
  const failures = child.release();
  c.close(inRead);
  c.close(outWrite);
  if (failures.length > 0) {
    c.close(inWrite);
    c.close(outRead);
    c.waitpid(child.pid, [0], 0);
    const f = failures[0]!;
    throw new SpawnError(`${child.steps[f.step]?.what ?? 'start'}: ${describeErrno(f.errno)}`);
  }
  return { pid: child.pid, stdin: inWrite, stdout: outRead };
}

/** Reads from fd until a newline or EOF; returns the text before the newline. */
export function readLine(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw err;
    }
    if (n === 0) break;
    const chunk = buf.subarray(0, n);
    const nl = chunk.indexOf(10);
    if (nl >= 0) {
      chunks.push(Buffer.from(chunk.subarray(0, nl)));
      break;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Blocks until the child exits; its exit code, or 128+signal. */
export function waitStatus(pid: number): number {
  const status = [0];
  for (;;) {
    if (libc().waitpid(pid, status, 0) === pid) break;
    if (errno() !== 4 /* EINTR */) return 128;
  }
  const s = status[0]!;
  return (s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
}
