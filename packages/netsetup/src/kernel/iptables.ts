// Runs iptables: by absolute path, never through a shell, with a fixed argument
// list, a fixed environment and -w. The rules themselves come from firewall.ts.
// Also looks at what is there: whether a network's jumps and chains survived (a
// firewall reload flushes them; with the nft backend a netlink dump, ~0.1 ms,
// which a connect skips while the ruleset's generation says nothing changed:
// policy/rulecheck.ts), and the host's nat table (its own forwards).
import fs from 'node:fs';
import * as nl from '@nsbox/shared/netlink';
import type { Backend, Network } from '../policy/config.ts';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { addLeaseScript, dnatChain, dropLeasesScript, forwardRules, fwdChain, jumps, natChain, presentInSave, restoreScript } from '../policy/firewall.ts';
import type { Lease } from '../policy/leases.ts';
import { FIXED_ENV } from '../setuid/secure.ts';
import { start, type Child, type Outcome } from '@nsbox/shared/spawn';
import { untrusted } from '../setuid/trust.ts';
import { Rtnl } from './rtnl.ts';

const NAMES: Record<Backend, { iptables: string; restore: string; save: string }> = {
  auto: { iptables: 'iptables', restore: 'iptables-restore', save: 'iptables-save' },
  nft: { iptables: 'iptables-nft', restore: 'iptables-nft-restore', save: 'iptables-nft-save' },
  legacy: { iptables: 'iptables-legacy', restore: 'iptables-legacy-restore', save: 'iptables-legacy-save' },
};
const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export interface Tools {
  iptables: string;
  restore: string;
  save: string;
  /** Whether the backend is nf_tables (else legacy x_tables). */
  nft: boolean;
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
  let save: string | undefined;
  return {
    restore,
    nft: isNft(backend, fs.realpathSync.native(restore)),
    get iptables() {
      iptables ??= find(NAMES[backend].iptables);
      return iptables;
    },
    get save() {
      save ??= find(NAMES[backend].save);
      return save;
    },
  };
}

/** "auto" is whatever /usr/sbin/iptables is: Debian's alternatives point it at
 *  xtables-nft-multi or xtables-legacy-multi. */
const isNft = (backend: Backend, real: string): boolean => backend === 'nft' || (backend === 'auto' && !real.includes('legacy'));

/** The backend's kind without the trust walk (for a look, not to run anything). */
export function backendIsNft(backend: Backend): boolean {
  if (backend !== 'auto') return backend === 'nft';
  for (const dir of DIRS) {
    try {
      return isNft(backend, fs.realpathSync.native(`${dir}/${NAMES.auto.restore}`));
    } catch {
      // Not in this directory.
    }
  }
  return true;
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

/** Rebuilds the network's chains from `leases` and adds the jumps that are
 *  missing (existing ones stay where they are). */
export function applyRules(t: Tools, net: Network, leases: Lease[]): void {
  let r = restore(t, restoreScript(net, leases, look(t, net).present));
  // A jump appeared or vanished in between: look again.
  if (r.status !== 0) r = restore(t, restoreScript(net, leases, look(t, net).present));
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

/** What is left of a network's rules: its jumps (in jumps() order), and whether
 *  they are all there (with legacy, whose look sees everything anyway, also its
 *  chains' own network rules). */
export interface RuleState {
  present: boolean[];
  intact: boolean;
}

/**
 * Looks at the network's rules without changing anything: with nf_tables one
 * netlink dump per built-in chain (they hold few rules; the tables are not
 * dumped whole: kube-proxy's hold thousands), ~0.1 ms each; with legacy one
 * iptables-save. A firewall reload flushes the built-in chains or replaces the
 * tables, and either takes the jumps: not intact. (With nf_tables a flush of
 * netsetup's own chains alone goes unnoticed until a rebuild: it costs two
 * more dumps per connect and is nothing a reload does.)
 */
export const look = (t: Pick<Tools, 'nft' | 'save'>, net: Network): RuleState => startLook(t, net).collect();

/** look(), begun now: with legacy its iptables-save runs while the caller works;
 *  close() reaps it when the answer is not wanted. */
export function startLook(t: Pick<Tools, 'nft' | 'save'>, net: Network): Pending<RuleState> {
  if (!t.nft) {
    const save = startSave(t.save, [], "read the host's iptables rules");
    return { collect: () => fromSave(net, save.collect()), close: () => save.close() };
  }
  let answer: RuleState | undefined;
  return { collect: () => (answer ??= lookNft(net)), close: () => {} };
}

function fromSave(net: Network, save: string): RuleState {
  const present = presentInSave(net, save);
  const count = (chain: string): number => save.split('\n').filter((l) => l.startsWith(`-A ${chain} `)).length;
  return { present, intact: present.every(Boolean) && count(fwdChain(net)) >= forwardRules(net).length && count(natChain(net)) >= (net.nat ? 1 : 0) };
}

/** The process's socket for looking at rules: kept open until the exit, as
 *  closing one after a commit waits (kernel/bridgefilter.ts, processFilter). */
let reader: Rtnl | undefined;

function lookNft(net: Network): RuleState {
  const js = jumps(net);
  let sock: Rtnl;
  try {
    sock = reader ??= Rtnl.open(NETLINK_NETFILTER);
  } catch {
    // No nfnetlink (nf_tables never loaded): no tables, no jumps.
    return { present: js.map(() => false), intact: false };
  }
  const rules = (table: string, chain: string): nl.Message[] | undefined => {
    try {
      return sock.dump(`list ${table} ${chain}`, (seq) => getRules(seq, table, chain)).filter((m) => m.type === NFT_NEWRULE);
    } catch {
      return undefined; // No such table or chain.
    }
  };
  const present = js.map((j) => {
    const name = Buffer.from(`${j.target}\0`);
    return (rules(j.table, j.chain) ?? []).some((m) => m.payload.includes(name));
  });
  return { present, intact: present.every(Boolean) };
}

// nf_tables over netlink (<linux/netfilter/nf_tables.h>): a dump of one chain's
// rules, with iptables-nft's tables in the ip family.
const NETLINK_NETFILTER = 12;
const NFT_NEWRULE = (10 << 8) | 6;
const NFT_GETRULE = (10 << 8) | 7;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;

function getRules(seq: number, table: string, chain: string): Buffer {
  const nfgenmsg = Buffer.from([nl.AF_INET, 0, 0, 0]);
  return nl.message(NFT_GETRULE, nl.NLM_F_DUMP, seq, [nfgenmsg, nl.attrStr(NFTA_RULE_TABLE, table), nl.attrStr(NFTA_RULE_CHAIN, chain)]);
}

/** Everything a program writes to its stdout. */
function readAll(fd: number): string {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(64 * 1024);
  for (let n = fs.readSync(fd, buf); n > 0; n = fs.readSync(fd, buf)) chunks.push(Buffer.from(buf.subarray(0, n)));
  return Buffer.concat(chunks).toString('utf8');
}

/** Something started ahead of time: collect() waits for its answer (once; the
 *  same answer or failure after), close() reaps it without one. */
export interface Pending<T> {
  collect(): T;
  close(): void;
}

/** The host's nat table (iptables-save -t nat, a few ms), read while the caller works. */
export const startNatTable = (t: Tools): Pending<string> => startSave(t.save, ['-t', 'nat'], "read the host's nat table");

function startSave(file: string, args: string[], what: string): Pending<string> {
  const child = start(file, args, FIXED_ENV, { stdout: 'pipe' });
  child.closeInput();
  let outcome: { text: string } | { error: NsboxError } | undefined;
  const finish = (): { text: string } | { error: NsboxError } => {
    if (outcome) return outcome;
    let text = '';
    try {
      text = readAll(child.stdout);
    } catch {
      // Read what there was; the status says whether it is whole.
    }
    fs.closeSync(child.stdout);
    const r = child.wait();
    outcome = r.status === 0 ? { text } : { error: new NsboxError({ exit: EXIT.SYSTEM, what, why: `${file} failed: ${r.stderr || `exit status ${r.status}`}`, todo: 'Check that the iptables backend in the configuration matches the host' }) };
    return outcome;
  };
  return {
    collect() {
      const o = finish();
      if ('error' in o) throw o.error;
      return o.text;
    },
    close: () => void finish(),
  };
}
