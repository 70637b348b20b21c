// Time limits on blocking system calls of a synchronous program: an interval
// timer (setitimer ITIMER_REAL) sends SIGALRM, whose handler, installed without
// SA_RESTART, makes the blocked call (flock, read, write) return EINTR. The
// handler is native code that does nothing (a `ret` on a page of its own): a
// JavaScript handler would only run on the event loop, which a blocked main
// thread never reaches. The process-directed signal goes to the main thread,
// which is the one blocked (the kernel prefers the thread group leader); the
// timer repeats every INTERVAL_MS after the deadline, so a signal that lands
// just before the call blocks is followed by another. Nothing is installed
// unless a call is about to block: a free lock costs no timer at all.
import { codePage, handlerAction } from '@nsbox/shared/codepage';
import { errno, libc } from '@nsbox/shared/libc';
import { sysError } from '@nsbox/shared/error';
import { currentArch, SIGNALS } from '@nsbox/shared/syscalls';

const ITIMER_REAL = 0;
/** After the deadline, the signal repeats this often until the timer is cleared. */
const INTERVAL_MS = 50;

/** A handler that returns at once: endbr64; ret (x86_64), ret (arm64). */
const RET: Record<'x64' | 'arm64', string> = { x64: 'f30f1efac3', arm64: 'c0035fd6' };

let installed = false;

function installHandler(): void {
  if (installed) return;
  const c = libc();
  const address = codePage(Buffer.from(RET[currentArch()], 'hex'), 'the alarm handler');
  const act = handlerAction(address); // no SA_RESTART: the blocked call returns EINTR
  if (c.sigaction(SIGNALS.SIGALRM!, act, null) !== 0) throw sysError('install the alarm handler (sigaction)', errno());
  installed = true;
}

function arm(ms: number): void {
  const t = Buffer.alloc(32); // struct itimerval: interval {sec, usec}, value {sec, usec}
  t.writeBigInt64LE(0n, 0);
  t.writeBigInt64LE(BigInt(INTERVAL_MS * 1000), 8);
  t.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 16);
  t.writeBigInt64LE(BigInt((ms % 1000) * 1000), 24);
  if (libc().setitimer(ITIMER_REAL, t, null) !== 0) throw sysError('set an interval timer (setitimer)', errno());
}

function disarm(): void {
  libc().setitimer(ITIMER_REAL, Buffer.alloc(32), null);
}

/**
 * Runs `attempt` until it reports done, for at most `ms`: a blocking call in it
 * returns EINTR when the time is up (attempt returns 'again' for that, and is
 * called again while time is left). Returns false when the time ran out.
 */
export function withDeadline(ms: number, attempt: () => 'done' | 'again'): boolean {
  installHandler();
  const deadline = Date.now() + ms;
  arm(Math.max(1, ms));
  try {
    for (;;) {
      if (attempt() === 'done') return true;
      if (Date.now() >= deadline) return false;
    }
  } finally {
    disarm();
  }
}
