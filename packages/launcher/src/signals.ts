// Signals sent to the launcher go to the sandbox. The command runs as pid 1 of its
// pid namespace, and the kernel drops signals a pid 1 has no handler for; so when
// the command neither catches nor ignores a forwarded signal, the launcher does
// what the signal would have done to an ordinary process and kills it.
import fs from 'node:fs';
import { libc } from '@nsbox/shared/libc';
import { SIGNALS } from '@nsbox/shared/syscalls';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const;

/** Whether a process catches, ignores or blocks `sig`, from the masks in
 *  /proc/PID/status. The kernel keeps a blocked signal pending even for a pid 1
 *  (an init such as tini blocks them all and takes them with sigtimedwait). */
export function handlesSignal(status: string, sig: number): boolean {
  const mask = (name: string): bigint => {
    const m = new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status);
    return m ? BigInt(`0x${m[1]}`) : 0n;
  };
  const bit = 1n << BigInt(sig - 1);
  return ((mask('SigCgt') | mask('SigIgn') | mask('SigBlk')) & bit) !== 0n;
}

export interface Forwarding {
  /** The signal the launcher killed the sandbox for, if it had to. */
  killedFor(): number | undefined;
  stop(): void;
}

/** `fallback`: kill a pid 1 that would drop the signal (not with --init: the init
 *  waits for signals in sigtimedwait, which /proc does not show as blocked). */
export function forwardSignals(pid: number, fallback = true): Forwarding {
  let killedFor: number | undefined;
  const handlers = FORWARDED.map((name) => {
    const sig = SIGNALS[name]!;
    const handler = (): void => {
      const c = libc();
      c.kill(pid, sig);
      if (!fallback) return;
      let status = '';
      try {
        status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      } catch {
        return;
      }
      if (!handlesSignal(status, sig)) {
        killedFor ??= sig;
        c.kill(pid, SIGNALS.SIGKILL!);
      }
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    killedFor: () => killedFor,
    stop: () => {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}
