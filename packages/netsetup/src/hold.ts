// The holder's hand-over to the supervisor (packages/shared/src/supervisor/):
// once netsetup --hold has answered, all it does is wait for the end of its
// stdin, which needs no V8. It execs the supervisor (still root, same pid and
// start time, so its records' holder stays alive for GC), which waits, then
// execs this same binary again as `netsetup release-held LEASE` to release.
import fs from 'node:fs';
import type { NsboxError } from '@nsbox/shared/error';
import { blockSignals, execSupervisor, spawnSupervisor } from '@nsbox/shared/supervisor';
import { O_CLOEXEC, O_PATH, SIGNALS } from '@nsbox/shared/syscalls';

/** The terminal's signals a holder ignores; blocked over the exec until the
 *  supervisor has set them to SIG_IGN and left the caller's session. */
const IGNORED = ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'].map((s) => SIGNALS[s]!);

/** The supervisor's command line (pure; the contract is in supervisor.c). */
export function holderArgs(binFd: number, lease: string, json: boolean, configFile: string): string[] {
  return ['holder', String(binFd), lease, json ? '1' : '0', configFile];
}

/**
 * Becomes the supervisor; returns only if that failed (the caller then waits in
 * Node as before). The running binary is opened through /proc/self/exe (O_PATH:
 * the very file, whatever happens to its path meanwhile) for the supervisor's
 * exec of release-held; the configuration is the file this call used.
 */
export function superviseHold(lease: string, configFile: string, json: boolean): void {
  const bin = fs.openSync('/proc/self/exe', O_PATH | O_CLOEXEC);
  const unblock = blockSignals(IGNORED);
  execSupervisor(holderArgs(bin, lease, json, configFile), [bin]);
  unblock();
  fs.closeSync(bin);
}

/**
 * A user's netsetup server (serve.ts) hands each lease it holds to a supervisor
 * of its own, as a child: `input` is where the end of the hold shows (the
 * launcher's socket, or the server's own stdin), `output` where release-held
 * writes its releasing line. Its pid, or why it could not be started.
 */
export function spawnHolder(input: number, output: number, lease: string, json: boolean, configFile: string): number | NsboxError {
  const bin = fs.openSync('/proc/self/exe', O_PATH | O_CLOEXEC);
  try {
    return spawnSupervisor(holderArgs(3, lease, json, configFile), [input, output, 'null', bin]);
  } finally {
    fs.closeSync(bin);
  }
}
