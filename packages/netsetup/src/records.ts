// The lease records, their lock and their garbage collection.
//
// Invariant: every veth, every lease rule and every port binding of the bridge
// filter netsetup makes belongs to a record, written before the veth, rule or
// binding exists and dropped only after all are gone. The record carries what
// unbinding needs (port name, the sandbox's MAC, address, owner), so the
// binding goes with the veth whenever the lease ends, crashed or not.
// The state lock guards the records alone and is held only to read and write
// them (about 1 ms), never while waiting on anything a caller controls: not
// their fds (the holder's releasing line comes after the lock), not the size of
// their request (cli.ts caps it while parsing), not the host's socket tables
// (read before it); waiting for it is bounded (kernel/state.ts). Work that waits for the kernel (veths, addresses, rules of
// a release) is done outside it, on a record marked pending or releasing with
// its holder (pid and start time). A record whose holder is dead, or a ready
// one whose veth (same name and ifindex) is gone, is stale, and the next call's
// GC deletes its veth by exact name, then its binding and rules, then the record. So a
// netsetup killed at any point leaves nothing the next call does not finish.
//
// A Call carries what one netsetup run shares between its steps: one host
// rtnetlink socket, one resolved iptables (one trust walk), the state
// directory checked once, and a generation of the ruleset found checked
// (policy/rulecheck.ts), recorded by its next update under the lock. Its
// netfilter socket is the process's (kernel/bridgefilter.ts, processFilter): it
// is never closed before the answer is out.
import fs from 'node:fs';
import { sysError } from '@nsbox/shared/error';
import { ENODEV, ENOENT } from '@nsbox/shared/errno';
import * as nl from '@nsbox/shared/netlink';
import { NsboxError } from '@nsbox/shared/error';
import { ERESTART, processFilter, tableMissing, type BridgeFilter } from './kernel/bridgefilter.ts';
import { cidrRange, ipv4ToInt } from '@nsbox/shared/ipv4';
import { dropLeaseRules, tools, type Tools } from './kernel/iptables.ts';
import { Rtnl } from './kernel/rtnl.ts';
import { ensureDir, rulesChecked, State } from './kernel/state.ts';
import { HOST_SCOPE, portBinding, type PortBinding } from './policy/bridgerules.ts';
import type { Config, Network } from './policy/config.ts';
import { hasLeaseRules } from './policy/firewall.ts';
import { isLeaseVeth, partition, type Holder, type Lease } from './policy/leases.ts';
import { nextGeneration, type Generation } from './policy/rulecheck.ts';
import { mark } from './timing.ts';

export class Call {
  readonly config: Config;
  private sock: Rtnl | undefined;
  private resolved: Tools | undefined;
  private dirChecked = false;
  /** A generation at which the jumps are known intact, to record at the next update. */
  checked: Generation | undefined;

  constructor(config: Config) {
    this.config = config;
  }

  /** The host's rtnetlink socket, opened on first use. */
  get rtnl(): Rtnl {
    return (this.sock ??= Rtnl.open());
  }

  /** The host's bridge filter: the process's netfilter socket, opened on first use. */
  get filter(): BridgeFilter {
    return processFilter(HOST_SCOPE);
  }

  /** The configured iptables backend's programs, found and trusted on first use. */
  get tools(): Tools {
    return (this.resolved ??= tools(this.config.iptables));
  }

  /** The state directory, checked the first time. */
  get stateDir(): string {
    if (!this.dirChecked) ensureDir(this.config.stateDir);
    this.dirChecked = true;
    return this.config.stateDir;
  }

  /** Takes the state lock (the directory is checked the first time). */
  lock(): State {
    return State.lock(this.stateDir);
  }

  close(): void {
    this.sock?.close();
    this.sock = undefined;
  }
}

/** Runs `f` with a Call that is closed afterwards. */
export function withCall<T>(config: Config, f: (call: Call) => T): T {
  const call = new Call(config);
  try {
    return f(call);
  } finally {
    call.close();
  }
}

export interface Session {
  call: Call;
  state: State;
  /** Live leases after GC. */
  leases: Lease[];
  /** Every stale lease this session's GC removed. */
  collected: Lease[];
  /** Leases their holders are setting up or releasing outside the lock: not the
   *  caller's to touch, but their addresses and ids are taken (and pending ones
   *  count for quotas). */
  busy: Lease[];
}

/** Writes the lease records: `leases` and the busy ones. */
export function save(s: Session, leases: Lease[]): void {
  s.state.write([...leases, ...s.busy]);
}

/** Field 22 of /proc/PID/stat (start time), or undefined when there is no such process. */
function startTime(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

const holderAlive = (h: Holder): boolean => startTime(h.pid) === h.start;
let self: Holder | undefined;
/** This netsetup as the holder of a record. */
export const thisProcess = (): Holder => (self ??= { pid: process.pid, start: startTime(process.pid) ?? 0 });

/**
 * Lock, drop stale leases: their veths, their rules (only leases that publish
 * ports have any) and their records. The host's links are listed before the
 * lock is taken: the kernel answers that only when its own lock (rtnl) is free,
 * which can take tens of ms while other calls make veths; a lease that looks
 * stale by that list is looked up again under the lock. `beforeLock` sees that
 * list.
 */
export function begin(call: Call, beforeLock?: (links: nl.Link[]) => void): Session {
  const { rtnl, config } = call;
  const links = rtnl.links();
  mark('links listed');
  beforeLock?.(links);
  const state = call.lock();
  try {
    const parts = partition(state.read(), links, holderAlive);
    const { busy } = parts;
    if (state.fresh) sweepUnrecorded(call, links);
    const revived = parts.stale.filter((l) => {
      const k = l.state === 'ready' ? rtnl.link(l.hostVeth) : undefined;
      return k !== undefined && isLeaseVeth(l, k);
    });
    const live = [...parts.live, ...revived];
    const stale = parts.stale.filter((l) => !revived.includes(l));
    if (stale.length === 0) return { call, state, leases: live, collected: [], busy };
    // By exact name, veths only: our own, made for this lease (perhaps after the list was taken).
    deleteVethsNamed(rtnl, stale.map((l) => l.hostVeth));
    unbindLeases(call, stale);
    // Rules first, records last: killed in between, the stale leases are still
    // on record and the next call does it all again.
    const ruled = stale.filter(hasLeaseRules);
    for (const name of new Set(ruled.map((l) => l.network))) {
      const net = config.networks.find((n) => n.name === name);
      if (!net || !rtnl.link(net.bridge)) continue;
      const of = (leases: Lease[]): Lease[] => leases.filter((l) => l.network === name);
      dropLeaseRules(call.tools, net, of(ruled), of(live));
    }
    state.write([...live, ...busy]);
    return { call, state, leases: live, collected: stale, busy };
  } catch (err) {
    state.unlock();
    throw err;
  }
}

/**
 * With no lease file at all, any binding of an address of this configuration's
 * subnets is one whose record was lost (the state directory removed by hand
 * while sandboxes ran; every connect records its lease before it binds, under
 * this lock). Those whose veth is gone are swept: their ports send nothing, but
 * their owner's group pair for the address would let that owner's other
 * sandboxes reach the next sandbox given it. A port that still exists is left
 * (its sandbox keeps its network). Other configurations' subnets never overlap
 * these (a bridge is not made over another's route). Costs a listing of the
 * filter only on such a call.
 */
function sweepUnrecorded(call: Call, links: nl.Link[]): void {
  let bound;
  try {
    bound = call.filter.bound();
  } catch (err) {
    if (tableMissing(err)) return;
    throw err;
  }
  const names = new Set(links.map((k) => k.name));
  const ours = call.config.networks.map((n) => cidrRange(n.subnet));
  const inOurs = (a: string): boolean => ours.some((r) => ipv4ToInt(a) >= r.network && ipv4ToInt(a) <= r.broadcast);
  const lost = bound.filter((p) => !names.has(p.port) && p.addresses.some(inOurs));
  if (lost.length > 0) call.filter.sweep(lost);
}

export function end(s: Session): void {
  try {
    recordChecked(s.call, s.state);
  } finally {
    s.state.unlock();
  }
}

/** Under the lock: the generation the call found checked, if any, recorded once. */
function recordChecked(call: Call, state: State): void {
  if (call.checked) state.recordChecked(call.checked);
  call.checked = undefined;
}

/** Reads and writes records under the lock, without a GC: for a call's short
 *  updates of the records it holds (and the generation the call found checked). */
export function update<T>(call: Call, change: (records: Lease[], state: State) => T, onLocked?: () => void): T {
  const state = call.lock();
  try {
    onLocked?.();
    const result = change(state.read(), state);
    recordChecked(call, state);
    return result;
  } finally {
    state.unlock();
  }
}

/** Deletes the veths of these exact names, in two netlink round trips: each name
 *  is looked up, then each link found is deleted by its ifindex if it is a veth.
 *  A name that is gone, or now names a link of another kind (root made it), is
 *  left alone: a link netsetup did not make is not netsetup's to delete. */
export function deleteVethsNamed(rtnl: Rtnl, names: string[]): void {
  if (names.length === 0) return;
  const found = rtnl.batch(
    names.map((name) => {
      const seq = rtnl.nextSeq();
      return { seq, bytes: nl.getLinkByName(seq, name) };
    }),
    'look up stale veths',
  );
  const veths = found
    .flatMap((r) => r.replies.filter((m) => m.type === nl.RTM_NEWLINK).map((m) => nl.parseLink(m.payload)))
    .filter((k) => k.kind === 'veth' && names.includes(k.name));
  if (veths.length === 0) return;
  rtnl.batch(
    veths.map((k) => {
      const seq = rtnl.nextSeq();
      return { seq, bytes: nl.delLink(seq, k.index) };
    }),
    'delete stale veths',
  );
}

/** Deletes a link by index; one already gone (ENODEV) is fine. */
export function deleteLink(rtnl: Rtnl, index: number, name: string): void {
  const seq = rtnl.nextSeq();
  const [r] = rtnl.batch([{ seq, bytes: nl.delLink(seq, index) }], `delete ${name}`);
  if (r!.errno !== 0 && r!.errno !== ENODEV) throw sysError(`delete ${name}`, r!.errno, { detail: r!.message });
}

/** A lease's binding in the bridge filter (the lease has its MAC recorded). */
export function leaseBinding(net: Network, l: Lease & { mac: string }): PortBinding {
  return portBinding(HOST_SCOPE, net, { port: l.hostVeth, mac: l.mac, address: l.address, uid: l.uid });
}

/** The bindings of those `leases` that have one (a MAC recorded, a network
 *  still configured that their address belongs to). */
export function leaseBindings(config: Config, leases: Lease[]): PortBinding[] {
  return leases.flatMap((l) => {
    const net = config.networks.find((n) => n.name === l.network);
    if (!net || l.mac === undefined) return [];
    try {
      return [leaseBinding(net, { ...l, mac: l.mac })];
    } catch (err) {
      if (err instanceof NsboxError) return [];
      throw err;
    }
  });
}

/**
 * One lease's exact unbinding, as a transaction that applies only if the
 * ruleset's generation is still the recorded one (nothing changed since the
 * jumps were seen intact): then the generation after it is known checked too,
 * and the next connect needs no look. False when it did not apply (nothing was
 * removed): the caller unbinds as usual.
 */
function unbindChecked(call: Call, l: Lease): boolean {
  const net = call.config.networks.find((n) => n.name === l.network);
  if (!net) return false;
  const checked = rulesChecked(call.stateDir);
  if (!checked) return false;
  let b: PortBinding;
  try {
    b = leaseBinding(net, { ...l, mac: l.mac! });
  } catch (err) {
    if (err instanceof NsboxError) return false;
    throw err;
  }
  try {
    call.filter.unbind(b, checked.id);
  } catch (err) {
    if (err instanceof NsboxError && (err.errno === ERESTART || err.errno === ENOENT)) return false;
    throw err;
  }
  call.checked = { ...checked, id: nextGeneration(checked.id) };
  return true;
}

/**
 * Removes the bridge filter's elements of leases whose veths are gone (release,
 * GC, teardown): exactly, or, when they differ (the isolation setting changed,
 * the network left the configuration, someone edited them), whatever the port
 * name has. A missing table has nothing to remove. Leases without a MAC were
 * never bound.
 */
export function unbindLeases(call: Call, leases: Lease[]): void {
  const bound = leases.filter((l) => l.mac !== undefined);
  if (bound.length === 0) return;
  const f = call.filter;
  try {
    if (bound.length === 1 && unbindChecked(call, bound[0]!)) return;
    for (const l of bound) {
      const net = call.config.networks.find((n) => n.name === l.network);
      let b: PortBinding | undefined;
      try {
        b = net ? leaseBinding(net, { ...l, mac: l.mac! }) : undefined;
      } catch (err) {
        if (!(err instanceof NsboxError)) throw err;
      }
      if (b) f.unbindAny(b);
      else f.sweep(f.bound().filter((p) => p.port === l.hostVeth));
    }
  } catch (err) {
    if (!tableMissing(err)) throw err;
  }
}
