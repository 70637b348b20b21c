// The launcher's side of netsetup, the setuid helper that gives the sandbox its
// network: finding it, checking it is installed setuid root, and running it.
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '@nsbox/shared/errors';
import { readLine, SpawnError, start, type Child } from '@nsbox/shared/spawn';
import { EXIT_LAUNCHER } from './outcome.ts';

/** What netsetup reports for a connected sandbox (its --json output). */
export interface Lease {
  lease: string;
  network: string;
  interface: string;
  address: string;
  prefix: number;
  gateway: string;
  mtu: number;
  dns: string[];
  bridge: string;
  hostVeth: string;
  published: unknown[];
}

/** netsetup ignores and re-execs on anything but a minimal environment. */
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const INSTALL_HINT = "install it as root with 'scripts/install.sh' (netsetup root:root, mode 4755)";

/** Where to look for netsetup, in order (pure). */
export function netsetupCandidates(explicit: string | undefined, launcherPath: string, pathVar: string | undefined): string[] {
  if (explicit !== undefined) return [explicit];
  const dirs = [path.dirname(launcherPath), ...(pathVar ?? '').split(':').filter((d) => d.startsWith('/'))];
  return [...new Set(dirs.map((d) => path.join(d, 'netsetup')))];
}

export function findNetsetup(candidates: string[]): string | undefined {
  return candidates.find((c) => {
    try {
      return fs.statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

export function missingMessage(explicit: string | undefined): string {
  if (explicit !== undefined) return `launcher: netsetup ${explicit} does not exist, so the sandbox cannot get a network. Give --netsetup the installed helper, or use --net none.`;
  return `launcher: netsetup is not installed (looked next to the launcher and in PATH), so the sandbox cannot get a network: ${INSTALL_HINT}, or use --net none.`;
}

/** netsetup only works when it runs as root: a root-owned setuid file. */
export function checkSetuidRoot(file: string): void {
  const st = fs.statSync(file);
  if (st.uid !== 0 || (st.mode & 0o4000) === 0 || (st.mode & 0o001) === 0) {
    throw new UserError(`launcher: ${file} is not setuid root (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}), so it cannot configure the network: ${INSTALL_HINT}, or use --net none.`, EXIT_LAUNCHER);
  }
}

export interface Connection {
  lease: Lease;
  /** The netsetup that holds the lease and releases it when its stdin closes. */
  holder: Child;
}

/**
 * Connects pid's network namespace with `netsetup --hold`: netsetup configures
 * it, prints the lease and stays, releasing the lease as soon as its stdin
 * closes: when the launcher is done, or killed. One netsetup start per sandbox.
 * On failure netsetup has printed its own one-line message (its stderr is ours).
 */
export function connect(file: string, pid: number, publish: string[]): Connection {
  const args = ['--pid', String(pid), '--json', '--hold'];
  for (const p of publish) args.push('--publish', p);
  let holder: Child;
  try {
    holder = start(file, args, ENV, { stdout: 'pipe', stderr: 'inherit' });
  } catch (err) {
    if (err instanceof SpawnError) throw new UserError(`launcher: cannot run netsetup: ${err.message}`, EXIT_LAUNCHER);
    throw err;
  }
  const output = readLine(holder.stdout);
  if (output === '') {
    finish(holder);
    throw new UserError('', EXIT_LAUNCHER);
  }
  try {
    const lease = JSON.parse(output) as Lease;
    if (typeof lease.address !== 'string' || typeof lease.lease !== 'string') throw new Error('incomplete');
    lease.dns ??= [];
    lease.published ??= [];
    return { lease, holder };
  } catch {
    finish(holder);
    throw new UserError(`launcher: netsetup ${file} gave an answer the launcher does not understand (${JSON.stringify(output.slice(0, 80))}); are the launcher and netsetup from the same version?`, EXIT_LAUNCHER);
  }
}

/**
 * Lets the holding netsetup release the lease. It answers once it has marked
 * the lease as being released under the state lock: from then on every other
 * netsetup call sees it gone, and the launcher need not wait for the kernel to
 * delete the veth and rules (~20 ms).
 */
export function release(holder: Child): void {
  holder.closeInput();
  readLine(holder.stdout);
  fs.closeSync(holder.stdout);
}

/** Ends a holder that failed or is not wanted: EOF, then reap it. */
function finish(holder: Child): void {
  fs.closeSync(holder.stdout);
  holder.wait();
}
