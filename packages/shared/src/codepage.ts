// Machine code of our own (the sandbox stub, the no-op alarm handler, the signal
// redirect): each on a page of its own, mapped writable, filled, then made
// read+execute, so no page is ever writable and executable at once. And
// glibc's struct sigaction, for installing such code as a signal handler.
import { sysError } from './error.ts';
import { errno, libc } from './libc.ts';

export const PAGE = 4096;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;

/** Maps `code` (at most a page) read+execute; returns its address. `what` names it in errors. */
export function codePage(code: Uint8Array, what: string): bigint {
  if (code.length > PAGE) throw new Error(`${what}: ${code.length} bytes do not fit a page`);
  const c = libc();
  const ptr = c.mmap(null, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  const address = c.k.address(ptr) as bigint;
  if (address === 0xffffffffffffffffn) throw sysError(`map ${what} (mmap)`, errno());
  new Uint8Array(c.k.view(ptr, PAGE)).set(code);
  if (c.mprotect(ptr, PAGE, PROT_READ | PROT_EXEC) !== 0) throw sysError(`make ${what} executable (mprotect)`, errno());
  return address;
}

/** glibc's struct sigaction (x86_64 and arm64): handler, 128-byte mask, int flags, restorer. */
const SIGACTION_SIZE = 152;
const SA_FLAGS_OFFSET = 136;

/** A struct sigaction for the handler at `address`, nothing masked, with `flags`
 *  (0: no SA_RESTART, so a blocked call returns EINTR). */
export function handlerAction(address: bigint, flags = 0): Buffer {
  const act = Buffer.alloc(SIGACTION_SIZE);
  act.writeBigUInt64LE(address, 0);
  act.writeInt32LE(flags, SA_FLAGS_OFFSET);
  return act;
}

/** Room for the struct sigaction that sigaction() gives back. */
export const sigactionBuffer = (): Buffer => Buffer.alloc(SIGACTION_SIZE);
