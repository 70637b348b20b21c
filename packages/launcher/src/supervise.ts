// The launcher's hand-over to the supervisor (packages/shared/src/supervisor/):
// once the command runs, what is left (wait for it, forward signals, release the
// lease, unlist the sandbox, write the exited line, exit with its status) needs
// no V8, so the launcher execs the supervisor and its ~10 MiB go away
// (docs/platform.md §6).
import type { Child } from '@nsbox/shared/spawn';
import { blockSignals, execSupervisor, redirectSignals } from '@nsbox/shared/supervisor';
import type { NsboxError } from '@nsbox/shared/error';
import { SIGNALS } from '@nsbox/shared/syscalls';
import type { Forwarding } from './signals.ts';

export interface Rest {
  /** The sandbox's pid 1 (this process's child). */
  pid: number;
  /** Kill a pid 1 that would drop a forwarded signal (not with --init). */
  fallback: boolean;
  infoFd: number | undefined;
  /** The holding netsetup: its stdin is closed, its stdout read to the releasing line. */
  holder: Child | undefined;
  /** The sandbox's file in the caller's list, '' if none. */
  registry: string;
}

/** The supervisor's command line for `rest` (pure; the contract is in supervisor.c). */
export function supervisorArgs(rest: Rest, killedFor: number | undefined): string[] {
  const fd = (n: number | undefined): string => String(n ?? -1);
  return ['launcher', String(rest.pid), rest.fallback ? '1' : '0', String(killedFor ?? 0), fd(rest.infoFd), fd(rest.holder?.stdin), fd(rest.holder?.stdout), rest.registry];
}

/** The fds the supervisor keeps (pure). */
export function keptFds(rest: Rest): number[] {
  return [rest.infoFd, rest.holder?.stdin, rest.holder?.stdout].filter((fd): fd is number => fd !== undefined && fd >= 0);
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'].map((s) => SIGNALS[s]!);
const WAITED = [...FORWARDED, SIGNALS.SIGCHLD!];

/**
 * Execs the supervisor; returns (with the signals as they were) only if that
 * failed, and then the launcher goes on waiting in Node. No forwarded signal is
 * lost on the way (docs/platform.md §6): they are blocked in the main thread, so
 * one sent to it stays pending across the exec; one that lands in another of
 * Node's threads is sent on to the main thread by a native handler; one that
 * reached Node's own handler before that is in libuv's signal pipe, and the one
 * turn of the event loop below hands it to forwardSignals.
 */
export async function superviseRest(rest: Rest, signals: Forwarding): Promise<NsboxError> {
  const unblock = blockSignals(WAITED);
  const restore = redirectSignals(FORWARDED);
  await new Promise((resolve) => setImmediate(resolve));
  const failed = execSupervisor(supervisorArgs(rest, signals.killedFor()), keptFds(rest));
  restore();
  unblock();
  return failed;
}
