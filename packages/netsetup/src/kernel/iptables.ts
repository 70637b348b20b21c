// Runs iptables: by absolute path, never through a shell, with a fixed argument
// list, a fixed environment and -w. The rules themselves come from firewall.ts.
import fs from 'node:fs';
import type { Backend, Network } from '../policy/config.ts';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { addLeaseScript, dnatChain, dropLeasesScript, fwdChain, jumps, natChain, restoreScript } from '../policy/firewall.ts';
import type { Lease } from '../policy/leases.ts';
import { FIXED_ENV } from '../setuid/secure.ts';
import { start, type Child, type Outcome } from '@nsbox/shared/spawn';
import { untrusted } from '../setuid/trust.ts';

const NAMES: Record<Backend, { iptables: string; restore: string }> = {
  auto: { iptables: 'iptables', restore: 'iptables-restore' },
  nft: { iptables: 'iptables-nft', restore: 'iptables-nft-restore' },
  legacy: { iptables: 'iptables-legacy', restore: 'iptables-legacy-restore' },
};
const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export interface Tools {
  iptables: string;
  restore: string;
}

/** Absolute paths of the backend's programs, each resolving to a root-owned
 *  file. iptables-restore is checked now; iptables (teardown only) when used. */
export function tools(backend: Backend): Tools {
  const find = (name: string): string => {
    for (const dir of DIRS) {
      const p = `${dir}/${name}`;
      let real: string;
      try {
        real = fs.realpathSync.native(p);
      } catch {
        continue;
      }
      const problem = untrusted(real, 'file');
      if (problem) {
        throw new NsboxError({ exit: EXIT.CONFIG, what: `${p}`, why: `refusing to run it: ${problem.path} ${problem.why}`, todo: 'Reinstall iptables from the distribution' });
      }
      return p;
    }
    throw new NsboxError({ exit: EXIT.CONFIG, what: name, why: `not found in ${DIRS.join(', ')}`, todo: `Install iptables (backend "${backend}")` });
  };
  const restore = find(NAMES[backend].restore);
  let iptables: string | undefined;
  return {
    restore,
    get iptables() {
      iptables ??= find(NAMES[backend].iptables);
      return iptables;
    },
  };
}

function launch(file: string, args: string[]): Child {
  try {
    return start(file, args, FIXED_ENV);
  } catch (err) {
    throw new NsboxError({ exit: EXIT.SYSTEM, what: `run ${file}`, why: err instanceof NsboxError ? err.why : String(err), todo: 'Check the iptables installation' });
  }
}

function run(file: string, args: string[], input = ''): Outcome {
  const child = launch(file, args);
  child.send(input);
  return child.wait();
}

/**
 * An iptables-restore --noflush started ahead of time, waiting for its input:
 * its start (exec, libraries) overlaps netsetup's own work. Until it is given
 * input it holds nothing (not even the legacy backend's xtables lock, taken per
 * table), so other iptables runs may go ahead; wait() without input ends it.
 */
export const startRestore = (t: Tools): Child => launch(t.restore, ['-w', '--noflush']);

const restore = (t: Tools, script: string): Outcome => run(t.restore, ['-w', '--noflush'], script);

/** Rebuilds the network's chains from `leases` and makes sure the jumps exist. */
export function applyRules(t: Tools, net: Network, leases: Lease[]): void {
  let r = restore(t, restoreScript(net, leases, true));
  if (r.status !== 0) r = restore(t, restoreScript(net, leases, false));
  if (r.status !== 0) {
    throw new NsboxError({ exit: EXIT.SYSTEM, what: `install iptables rules for ${net.bridge}`, why: `${t.restore} failed: ${r.stderr}`, todo: 'Check that the iptables backend in the configuration matches the host' });
  }
}

/** Rules being changed in the background: finish() waits for them and, when
 *  the quick change did not apply (first use, rules removed by someone, a stale
 *  lease's rules already gone), rebuilds the chains from `leases` instead. */
export interface RuleChange {
  finish(leases: Lease[]): void;
  /** Waits for the change without checking it (the caller rebuilds anyway). */
  abandon(): void;
}

function change(t: Tools, net: Network, script: string, child = startRestore(t)): RuleChange {
  child.send(script);
  return {
    finish(leases) {
      if (child.wait().status !== 0) applyRules(t, net, leases);
    },
    abandon() {
      child.wait();
    },
  };
}

/** Starts adding one lease's rules, with `child` from startRestore() if there is one. */
export function startLeaseRules(t: Tools, net: Network, lease: Lease, child?: Child): RuleChange {
  return change(t, net, addLeaseScript(net, lease), child);
}

/** Starts deleting the rules of `gone` (finish() with the network's remaining leases). */
export const startDropLeaseRules = (t: Tools, net: Network, gone: Lease[]): RuleChange => change(t, net, dropLeasesScript(net, gone));

/** Deletes the rules of `gone` without the fallback (for use outside the state
 *  lock, where a rebuild could race with other calls); false when it did not apply. */
export function tryDropLeaseRules(t: Tools, net: Network, gone: Lease[]): boolean {
  return restore(t, dropLeasesScript(net, gone)).status === 0;
}

/** Deletes the rules of `gone`; `rest` are the network's remaining leases. */
export function dropLeaseRules(t: Tools, net: Network, gone: Lease[], rest: Lease[]): void {
  startDropLeaseRules(t, net, gone).finish(rest);
}

/** Removes every jump to the network's chains and the chains themselves. */
export function removeRules(t: Tools, net: Network): void {
  for (const j of jumps(net)) {
    for (let i = 0; i < 100; i++) if (run(t.iptables, ['-w', '-t', j.table, '-D', j.chain, ...j.rule]).status !== 0) break;
  }
  for (const [table, chain] of [['nat', natChain(net)], ['nat', dnatChain(net)], ['filter', fwdChain(net)]] as const) {
    if (run(t.iptables, ['-w', '-t', table, '-F', chain]).status === 0) run(t.iptables, ['-w', '-t', table, '-X', chain]);
  }
}
