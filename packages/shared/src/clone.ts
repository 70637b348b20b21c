// Starts a stub program in a new process made by glibc clone(CLONE_VM): the only
// way a Node process can get a child into new namespaces (docs/platform.md §1-2). The
// child blocks on a sync pipe until release(), so the caller can write its id maps
// and set up its network first; every failed step comes back over a close-on-exec
// pipe, whose EOF means the child has exec'd or died.
import fs from 'node:fs';
import { codePage, MAP_ANONYMOUS, MAP_PRIVATE, PAGE, PROT_READ, PROT_WRITE } from './codepage.ts';
import { describeErrno } from './errno.ts';
import { NsboxError, sysError } from './error.ts';
import { libc, errno } from './libc.ts';
import { assemble, decodeFailures, fillSlot, link, type Failure, type Step } from './program.ts';
import { STUB_CODE } from './stub/code.ts';
import { currentArch, CLONE_VM, O_CLOEXEC, SIGNALS, SYSCALLS } from './syscalls.ts';

const MAP_STACK = 0x20000;
const STACK_SIZE = 64 * 1024;
const WNOHANG = 1;

export interface PipeEnds {
  /** The child reads one byte from here before going on. */
  syncRead: number;
  /** The child's copy of the sync pipe's write end, which it must close first. */
  syncWrite: number;
}

export interface StubChild {
  pid: number;
  steps: Step[];
  /** Puts content into one of the program's slots; only before release(). */
  fill(slot: string, content: Uint8Array): void;
  /** Lets the child run its program; returns the failed steps once it has exec'd or died. */
  release(): Failure[];
  /** Kills a child that has not been released, and reaps it. */
  abort(): void;
}

/** clone() itself failed: the launcher explains why from the errno (user namespaces off, ...). */
export class CloneError extends NsboxError {
  declare readonly errno: number;
  constructor(errno: number) {
    super({ what: 'clone the sandbox', why: describeErrno(errno), errno });
  }
}

interface Mapping {
  ptr: unknown;
  address: bigint;
  size: number;
}

let stubAddress: bigint | undefined;

function map(size: number, extra = 0): Mapping {
  const c = libc();
  const ptr = c.mmap(null, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
  const address = c.k.address(ptr);
  if (address === 0xffffffffffffffffn) throw sysError(`mmap ${size} bytes`, errno());
  return { ptr, address, size };
}

function unmap(m: Mapping): void {
  libc().munmap(m.ptr, m.size);
}

function stubCode(): bigint {
  return (stubAddress ??= codePage(Buffer.from(STUB_CODE[currentArch()], 'hex'), "the stub's code"));
}

function pipe(): [number, number] {
  const fds = [0, 0];
  if (libc().pipe2(fds, O_CLOEXEC) !== 0) throw sysError('make a pipe (pipe2)', errno());
  return [fds[0]!, fds[1]!];
}

export function startStub(nsFlags: number, program: (ends: PipeEnds) => Step[]): StubChild {
  const c = libc();
  const code = stubCode();
  const [syncRead, syncWrite] = pipe();
  const [errRead, errWrite] = pipe();
  const steps = program({ syncRead, syncWrite });
  const image = assemble(steps, errWrite, currentArch());
  const data = map((image.bytes.length + PAGE - 1) & ~(PAGE - 1));
  const memory = new Uint8Array(c.k.view(data.ptr, data.size));
  link(image, memory, data.address);
  const stack = map(STACK_SIZE, MAP_STACK);

  const pid: number = c.clone(code, stack.address + BigInt(STACK_SIZE), nsFlags | CLONE_VM | SIGNALS.SIGCHLD!, data.address);
  const cloneErrno = pid < 0 ? errno() : 0;
  c.close(errWrite);
  c.close(syncRead);
  if (pid < 0) {
    for (const fd of [errRead, syncWrite]) c.close(fd);
    unmap(data);
    unmap(stack);
    throw new CloneError(cloneErrno);
  }

  let done = false;
  const finish = (): void => {
    done = true;
    unmap(data);
    unmap(stack);
  };
  const readFailures = (): Failure[] => {
    const chunks: Buffer[] = [];
    const buf = Buffer.alloc(4096);
    for (;;) {
      const n = fs.readSync(errRead, buf);
      if (n === 0) break;
      chunks.push(Buffer.from(buf.subarray(0, n)));
    }
    c.close(errRead);
    return decodeFailures(Buffer.concat(chunks));
  };

  return {
    pid,
    steps,
    fill(slot, content) {
      if (done) throw new Error('stub already released');
      fillSlot(image, memory, slot, content);
    },
    release() {
      if (done) throw new Error('stub already released');
      fs.writeSync(syncWrite, Buffer.from([1]));
      c.close(syncWrite);
      const failures = readFailures();
      finish();
      return failures;
    },
    abort() {
      if (done) return;
      c.kill(pid, SIGNALS.SIGKILL);
      c.close(syncWrite);
      readFailures();
      c.waitpid(pid, [0], 0);
      finish();
    },
  };
}

export type Exit = { code: number; signal?: undefined } | { signal: number; code?: undefined };

export function decodeWaitStatus(status: number): Exit {
  const sig = status & 0x7f;
  return sig === 0 ? { code: (status >> 8) & 0xff } : { signal: sig };
}

/** Resolves when the child exits, without blocking the event loop: a pidfd polled by libuv. */
export function waitExit(pid: number): Promise<Exit> {
  const c = libc();
  const pidfd = Number(c.syscall(SYSCALLS.pidfd_open[currentArch()], 'long', pid, 'long', 0));
  return new Promise((resolve, reject) => {
    const reap = (): boolean => {
      const status = [0];
      const r = c.waitpid(pid, status, pidfd >= 0 ? WNOHANG : 0);
      if (r === pid) {
        resolve(decodeWaitStatus(status[0]!));
        return true;
      }
      if (r < 0) {
        reject(sysError(`wait for pid ${pid}`, errno()));
        return true;
      }
      return false;
    };
    if (pidfd < 0) {
      reap();
      return;
    }
    const handle = c.k.node.poll(pidfd, { readable: true }, () => {
      if (reap()) {
        handle.close();
        c.close(pidfd);
      }
    });
  });
}
