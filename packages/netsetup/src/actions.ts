// Everything netsetup does as root, in one place. Each action takes the state
// lock, garbage-collects, and then does its part; every error path undoes what
// the call created.
import fs from 'node:fs';
import * as nl from '@nsbox/shared/netlink';
import type { PublishSpec } from '@nsbox/shared/publish';
import type { Config, Network } from './config.ts';
import { EXIT, NetsetupError, SysError } from './errors.ts';
import { ensureBridge, randomMac } from './host.ts';
import { allocate, broadcastOf } from './ipam.ts';
import { applyRules, dropLeaseRules, removeRules, startDropLeaseRules, startLeaseRules, startRestore, tools, tryDropLeaseRules, type RuleChange, type Tools } from './iptables.ts';
import { admit, hostVethName, isoTime, partition, type Caller, type Holder, type Lease } from './leases.ts';
import { randomBytes } from './random.ts';
import { Rtnl } from './rtnl.ts';
import type { Child } from '@nsbox/shared/spawn';
import { State } from './state.ts';
import { admitPublish } from './publishing.ts';
import { boundSockets } from './sockets.ts';
import { notYours, pin, type Target } from './target.ts';
import { mark } from './timing.ts';

export interface Connection {
  lease: string;
  network: string;
  pid: number;
  interface: string;
  address: string;
  prefix: number;
  cidr: string;
  gateway: string;
  mtu: number;
  dns: string[];
  bridge: string;
  hostVeth: string;
  /** Host ports forwarded to `address`. */
  published: PublishSpec[];
}

export const SANDBOX_IFNAME = 'eth0';
const LOOPBACK_INDEX = 1;

interface Session {
  state: State;
  rtnl: Rtnl;
  tools: Tools;
  /** The host's links when the session began. */
  links: nl.Link[];
  /** Live leases after GC. */
  leases: Lease[];
  /** Stale leases whose rules are still to be removed (see begin()); still on record. */
  stale: Lease[];
  /** Every stale lease this session's GC found (removed, or kept in `stale`). */
  collected: Lease[];
  /** Leases their holders are releasing outside the lock: not the caller's to
   *  count or touch, but their addresses and ids are still taken. */
  releasing: Lease[];
}

/** Writes the lease records: `leases` and those being released by their holders. */
function save(s: Session, leases: Lease[]): void {
  s.state.write([...leases, ...s.releasing]);
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

/**
 * Lock, open the host netlink socket, drop stale leases: their veths, their rules
 * and their records. With `keepStaleOf`, the stale leases of that network keep
 * their rules and records for the caller (connect) to remove in its own rule
 * change, which saves one run of iptables-restore.
 */
function begin(config: Config, keepStaleOf?: string, t?: Tools, onLocked?: () => void): Session {
  const state = State.lock(config.stateDir);
  onLocked?.();
  let rtnl: Rtnl | undefined;
  try {
    rtnl = Rtnl.open();
    t ??= tools(config.iptables);
    const all = state.read();
    const links = rtnl.links();
    const { live, stale, releasing } = partition(all, links, holderAlive);
    if (stale.length === 0) return { state, rtnl, tools: t, links, leases: live, stale: [], collected: [], releasing };
    // Only a veth with exactly the recorded name: our own, made for this lease.
    const veths = stale.flatMap((l) => links.filter((k) => k.name === l.hostVeth && k.kind === 'veth'));
    deleteLinks(rtnl, veths);
    // Rules first, records last: killed in between, the stale leases are still
    // on record and the next call does it all again.
    const hasRules = (name: string): Network | undefined => {
      const net = config.networks.find((n) => n.name === name);
      return net && links.some((k) => k.name === net.bridge) ? net : undefined;
    };
    const kept = keepStaleOf !== undefined && hasRules(keepStaleOf) ? stale.filter((l) => l.network === keepStaleOf) : [];
    for (const name of new Set(stale.map((l) => l.network))) {
      const net = hasRules(name);
      if (name === keepStaleOf || !net) continue;
      dropLeaseRules(t, net, stale.filter((l) => l.network === name), live.filter((l) => l.network === name));
    }
    if (kept.length < stale.length) state.write([...live, ...kept, ...releasing]);
    return { state, rtnl, tools: t, links, leases: live, stale: kept, collected: stale, releasing };
  } catch (err) {
    rtnl?.close();
    state.unlock();
    throw err;
  }
}

function end(s: Session): void {
  s.rtnl.close();
  s.state.unlock();
}

/** Deletes links, all in one netlink round trip; errors are ignored (gone already). */
function deleteLinks(rtnl: Rtnl, links: { index: number }[]): void {
  if (links.length === 0) return;
  rtnl.batch(
    links.map((k) => {
      const seq = rtnl.nextSeq();
      return { seq, bytes: nl.delLink(seq, k.index) };
    }),
    'delete stale veths',
  );
}

function deleteLink(rtnl: Rtnl, index: number, name: string, quiet: boolean): void {
  const seq = rtnl.nextSeq();
  const [r] = rtnl.batch([{ seq, bytes: nl.delLink(seq, index) }], `delete ${name}`);
  if (r!.errno !== 0 && r!.errno !== 19 && !quiet) throw new SysError(`delete ${name}`, r!.errno, r!.message);
}

function newLeaseId(taken: Set<string>): string {
  for (;;) {
    const id = randomBytes(4).toString('hex');
    if (!taken.has(id)) return id;
  }
}

/**
 * Gives the network namespace of `pid` one veth on the network's bridge, and
 * publishes the host ports `publish` to it (all of them or, refused, nothing).
 *
 * Order, for speed without losing safety: iptables-restore is started first and
 * waits for its input; the lease is recorded as pending, then iptables-restore
 * gets the lease's rules (and the removal of stale leases' rules) and works in
 * the background while the veth is created and configured over netlink; the
 * call waits for the rules before it records the lease as ready. Killed at any
 * point, a pending lease is left on record, and the next call's GC removes its
 * veth and rules (an iptables-restore without input reads EOF and does nothing).
 */
export function connect(config: Config, net: Network, caller: Caller, pid: number, publish: PublishSpec[] = []): Connection {
  const t = tools(config.iptables);
  const early = startRestore(t);
  let homeFd = -1;
  let target: Target | undefined;
  let session: Session | undefined;
  try {
    homeFd = fs.openSync('/proc/self/ns/net', 'r');
    const pinned = (target = pin(pid, caller.uid, fs.fstatSync(homeFd)));
    mark('target pinned');
    const s = (session = begin(config, net.name, t));
    mark('locked, GC done');
    let prepared: Prepared;
    try {
      prepared = prepare(s, net, caller, pid, publish);
    } catch (err) {
      dropKeptStale(s, net, early);
      throw err;
    }
    const { lease, bridge, mtu } = prepared;
    mark('pending lease recorded');
    let rules: RuleChange | undefined;
    try {
      rules = startLeaseRules(s.tools, net, lease, s.stale, early);
      mark('iptables-restore started');
      const [made, found] = s.rtnl.batch(
        [
          (seq: number) =>
            nl.newVeth(seq, { hostName: lease.hostVeth, hostMac: randomMac(0xfe), mtu, master: bridge.index, peerName: SANDBOX_IFNAME, peerNetnsFd: pinned.netnsFd }),
          (seq: number) => nl.getLinkByName(seq, lease.hostVeth),
        ].map((build) => {
          const seq = s.rtnl.nextSeq();
          return { seq, bytes: build(seq) };
        }),
        `create veth ${lease.hostVeth}`,
      ) as [Reply, Reply];
      if (made.errno !== 0) throw new SysError(`create veth ${lease.hostVeth} with ${SANDBOX_IFNAME} in pid ${pid}'s namespace`, made.errno, made.message);
      const host = found.replies[0] ? nl.parseLink(found.replies[0].payload) : undefined;
      if (!host || host.link === undefined) throw new NetsetupError(EXIT.SYSTEM, `create veth ${lease.hostVeth}`, 'it vanished right after creation', 'Try again');
      lease.hostIndex = host.index;
      mark('veth created');
      configureInside(pinned.netnsFd, homeFd, host.link, net, lease.address, pid);
      if (!pinned.alive()) throw notYours(pid);
      mark('eth0 configured');
      // Rules before "ready": see above.
      const leases = [...s.leases, lease];
      const change = rules;
      rules = undefined;
      change.finish(leases);
      mark('rules in place');
      lease.state = 'ready';
      save(s, leases);
      mark('lease recorded ready');
    } catch (err) {
      const host = s.rtnl.link(lease.hostVeth);
      if (host && host.kind === 'veth') deleteLink(s.rtnl, host.index, lease.hostVeth, true);
      let clean = true;
      try {
        rules?.abandon();
        applyRules(s.tools, net, s.leases);
      } catch {
        clean = false;
      }
      // Without the rules removed, the pending lease stays on record for the next GC.
      if (clean) save(s, s.leases);
      throw err;
    }
    return {
      lease: lease.id,
      network: net.name,
      pid,
      interface: SANDBOX_IFNAME,
      address: lease.address,
      prefix: net.prefix,
      cidr: `${lease.address}/${net.prefix}`,
      gateway: net.gateway,
      mtu,
      dns: net.dns,
      bridge: net.bridge,
      hostVeth: lease.hostVeth,
      published: publish,
    };
  } finally {
    early.wait();
    if (homeFd >= 0) fs.closeSync(homeFd);
    if (session) end(session);
    target?.close();
  }
}

/** When connect fails before its rule change, the GC of the stale leases begin()
 *  kept for it is still owed: their rules, then their records (left on record
 *  for the next call if that fails). */
function dropKeptStale(s: Session, net: Network, child: Child): void {
  if (s.stale.length === 0) return;
  try {
    startDropLeaseRules(s.tools, net, s.stale, child).finish(s.leases.filter((l) => l.network === net.name));
    save(s, s.leases);
  } catch {
    // The next call tries again.
  }
}

interface Prepared {
  lease: Lease;
  bridge: nl.Link;
  mtu: number;
}

/** Quota, published ports, address, bridge and the pending lease record (with the kept stale leases). */
function prepare(s: Session, net: Network, caller: Caller, pid: number, publish: PublishSpec[]): Prepared {
  const groups = admit(net, s.leases, caller);
  if (publish.length > 0) {
    const addresses = s.rtnl.addresses().flatMap((a) => (a.family === nl.AF_INET && a.address ? [a.address] : []));
    admitPublish(net, caller, publish, s.leases, { addresses, sockets: boundSockets(publish.map((p) => p.protocol)) });
  }
  const address = allocate(net, [...s.leases, ...s.releasing].filter((l) => l.network === net.name).map((l) => l.address));
  if (!address) {
    throw new NetsetupError(EXIT.QUOTA, `network "${net.name}"`, `all addresses of ${net.subnet} are leased`, 'Release a lease or ask the administrator for a larger subnet');
  }
  const bridge = ensureBridge(s.rtnl, net, s.links);
  const mtu = bridge.mtu ?? net.mtu;
  mark('bridge checked');
  const taken = new Set([...s.leases, ...s.stale, ...s.releasing].map((l) => l.id));
  const lease: Lease = {
    id: newLeaseId(taken),
    network: net.name,
    uid: caller.uid,
    groups,
    address,
    hostVeth: '',
    hostIndex: 0,
    pid,
    state: 'pending',
    created: isoTime(Date.now()),
    published: publish,
  };
  lease.hostVeth = hostVethName(lease.id);
  // Recorded before the veth and the rules exist: if this call dies, the next
  // one's GC finds a pending lease and removes the veth by its exact name and
  // the rules by the lease's tag.
  save(s, [...s.leases, ...s.stale, lease]);
  return { lease, bridge, mtu };
}

type Reply = ReturnType<Rtnl['batch']>[number];

/** Address, eth0 up, lo up and the default route, through a socket inside the
 *  target's namespace, in one round trip. `index` is eth0's ifindex there. */
function configureInside(netnsFd: number, homeFd: number, index: number, net: Network, address: string, pid: number): void {
  const inside = Rtnl.openIn(netnsFd, homeFd);
  try {
    const steps: { what: string; build: (seq: number) => Buffer }[] = [
      { what: `add ${address}/${net.prefix} to ${SANDBOX_IFNAME}`, build: (seq) => nl.newAddress(seq, index, address, net.prefix, broadcastOf(net)) },
      { what: `bring ${SANDBOX_IFNAME} up`, build: (seq) => nl.setLinkUp(seq, index) },
      { what: 'bring lo up', build: (seq) => nl.setLinkUp(seq, LOOPBACK_INDEX) },
      { what: `add the default route via ${net.gateway}`, build: (seq) => nl.newDefaultRoute(seq, index, net.gateway) },
    ];
    const requests = steps.map((st) => {
      const seq = inside.nextSeq();
      return { seq, bytes: st.build(seq) };
    });
    const results = inside.batch(requests, `configure ${SANDBOX_IFNAME} in pid ${pid}`);
    results.forEach((r, i) => {
      if (r.errno !== 0) throw new SysError(`${steps[i]!.what} in pid ${pid}'s namespace`, r.errno, r.message);
    });
  } finally {
    inside.close();
  }
}

/**
 * Frees leases of the caller (root: anyone's) by id or by pid. The kernel takes
 * ~15 ms to delete a veth and iptables-restore ~10 ms to delete rules (both wait
 * for RCU grace periods), so the rules go in the background while the veths are
 * deleted. The leases are first recorded as pending: killed at any point, the
 * next call's GC deletes whatever is left of them. `onLocked` runs once the state
 * lock is held: from then on every other call sees the release as done.
 */
export function release(config: Config, caller: Caller, by: { id: string } | { pid: number }, onLocked?: () => void): Lease[] {
  const s = begin(config, undefined, undefined, onLocked);
  let change: RuleChange | undefined;
  try {
    const mine = (l: Lease): boolean => caller.uid === 0 || l.uid === caller.uid;
    const wanted = (l: Lease): boolean => mine(l) && ('id' in by ? l.id === by.id : l.pid === by.pid);
    const chosen = s.leases.filter(wanted);
    // A lease whose sandbox is gone was just collected by this very call: released.
    const gone = [...s.collected, ...s.releasing].filter(wanted);
    if (chosen.length === 0 && gone.length > 0) return gone;
    if (chosen.length === 0) {
      throw new NetsetupError(EXIT.DENIED, 'id' in by ? `lease ${by.id}` : `pid ${by.pid}`, 'no such lease of yours', 'See your leases with netsetup list');
    }
    const rest = s.leases.filter((l) => !chosen.includes(l));
    save(s, [...rest, ...chosen.map((l): Lease => ({ ...l, state: 'pending' }))]);
    const of = (leases: Lease[], net: Network): Lease[] => leases.filter((l) => l.network === net.name);
    const nets = config.networks.filter((n) => chosen.some((l) => l.network === n.name));
    // One iptables-restore at a time: the first network's in the background, any others after.
    const [first, ...others] = nets;
    if (first) change = startDropLeaseRules(s.tools, first, of(chosen, first));
    for (const l of chosen) deleteLink(s.rtnl, l.hostIndex, l.hostVeth, false);
    const started = change;
    change = undefined;
    started?.finish(of(rest, first!));
    for (const net of others) dropLeaseRules(s.tools, net, of(chosen, net), of(rest, net));
    save(s, rest);
    return chosen;
  } finally {
    change?.abandon();
    end(s);
  }
}

/**
 * The holder's release (netsetup --hold at end of stdin). Under the lock it only
 * marks the lease as being released, so `onLocked` comes early and every later
 * call already treats the lease as gone (it no longer counts for quotas); then,
 * outside the lock and so in parallel with other holders, it deletes the veth
 * (by name) and the rules, which wait ~10-15 ms each for the kernel; then it
 * drops the record. Killed in between, the record names a dead holder and the
 * next call's GC finishes the job.
 */
export function releaseHeld(config: Config, caller: Caller, id: string, onLocked: () => void): void {
  let lease: Lease | undefined;
  const s = begin(config, undefined, undefined, onLocked);
  try {
    lease = s.leases.find((l) => l.id === id && (caller.uid === 0 || l.uid === caller.uid));
    if (!lease) return;
    const holder: Holder = { pid: process.pid, start: startTime(process.pid) ?? 0 };
    save(s, [...s.leases.filter((l) => l !== lease), { ...lease, state: 'releasing', holder }]);
  } finally {
    end(s);
  }
  const net = config.networks.find((n) => n.name === lease.network);
  const rtnl = Rtnl.open();
  try {
    const seq = rtnl.nextSeq();
    rtnl.batch([{ seq, bytes: nl.delLinkByName(seq, lease.hostVeth) }], `delete ${lease.hostVeth}`);
  } finally {
    rtnl.close();
  }
  const rulesGone = net === undefined || tryDropLeaseRules(tools(config.iptables), net, [lease]);
  const after = begin(config);
  try {
    // Rebuilt without it, under the lock, when the quick deletion did not apply.
    if (!rulesGone && net && after.links.some((k) => k.name === net.bridge)) applyRules(after.tools, net, after.leases);
    after.releasing = after.releasing.filter((l) => l.id !== id);
    save(after, after.leases);
  } finally {
    end(after);
  }
}

export function list(config: Config, caller: Caller): Lease[] {
  const s = begin(config);
  try {
    return s.leases.filter((l) => caller.uid === 0 || l.uid === caller.uid);
  } finally {
    end(s);
  }
}

/** Root: create the bridges, forwarding and rules ahead of time. */
export function setupHost(config: Config, nets: Network[]): void {
  const s = begin(config);
  try {
    for (const net of nets) {
      ensureBridge(s.rtnl, net);
      applyRules(s.tools, net, s.leases);
    }
  } finally {
    end(s);
  }
}

/** Root: delete every lease's veth, the bridges, the rules and the state. */
export function teardown(config: Config, nets: Network[]): number {
  const s = begin(config);
  try {
    const names = new Set(nets.map((n) => n.name));
    const gone = [...s.leases, ...s.releasing].filter((l) => names.has(l.network));
    for (const l of gone) deleteLink(s.rtnl, l.hostIndex, l.hostVeth, true);
    for (const net of nets) {
      removeRules(s.tools, net);
      const br = s.rtnl.link(net.bridge);
      if (br && br.kind === 'bridge') deleteLink(s.rtnl, br.index, net.bridge, false);
    }
    const rest = [...s.leases, ...s.releasing].filter((l) => !names.has(l.network));
    if (rest.length === 0) s.state.removeFiles();
    else s.state.write(rest);
    end(s);
    if (rest.length === 0) s.state.removeDir();
    return gone.length;
  } catch (err) {
    end(s);
    throw err;
  }
}
