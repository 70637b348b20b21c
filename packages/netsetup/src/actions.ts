// Everything netsetup does as root, in one place. Each action takes the state
// lock, garbage-collects, and then does its part; every error path undoes what
// the call created. The lock is held only to read and write records: work that
// waits for the kernel (veths, addresses) is done outside it, on a lease
// recorded as pending or releasing with this process as its holder, so that many
// calls at once wait for each other only briefly.
import fs from 'node:fs';
import { ENODEV } from '@nsbox/shared/errno';
import * as nl from '@nsbox/shared/netlink';
import { SANDBOX_IFNAME, type Answer } from '@nsbox/shared/protocol';
import type { PublishSpec } from '@nsbox/shared/publish';
import type { Config, Network } from './policy/config.ts';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { EXIT } from './exit.ts';
import { ensureBridge, randomMac } from './kernel/host.ts';
import { allocate, broadcastOf } from './policy/ipam.ts';
import { hasLeaseRules } from './policy/firewall.ts';
import { applyRules, dropLeaseRules, removeRules, startDropLeaseRules, startLeaseRules, startRestore, tools, tryDropLeaseRules, type RuleChange } from './kernel/iptables.ts';
import { admit, hostVethName, isLeaseVeth, isoTime, partition, type Caller, type Holder, type Lease } from './policy/leases.ts';
import { randomBytes } from './kernel/random.ts';
import { Rtnl } from './kernel/rtnl.ts';
import type { Child } from '@nsbox/shared/spawn';
import { State } from './kernel/state.ts';
import { admitPublish } from './policy/publishing.ts';
import { boundSockets } from './kernel/sockets.ts';
import { notYours, pin, type Target } from './kernel/target.ts';
import { mark } from './timing.ts';

const LOOPBACK_INDEX = 1;

interface Session {
  state: State;
  rtnl: Rtnl;
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
function save(s: Session, leases: Lease[]): void {
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
const thisProcess = (): Holder => (self ??= { pid: process.pid, start: startTime(process.pid) ?? 0 });

/**
 * Open the host netlink socket, lock, drop stale leases: their veths, their
 * rules (only leases that publish ports have any) and their records. The host's
 * links are listed before the lock is taken: the kernel answers that only when
 * its own lock (rtnl) is free, which can take tens of ms while other calls make
 * veths; a lease that looks stale by that list is looked up again under the lock.
 */
function begin(config: Config, beforeLock?: (rtnl: Rtnl, links: nl.Link[]) => void): Session {
  const rtnl = Rtnl.open();
  let state: State | undefined;
  try {
    const links = rtnl.links();
    mark('links listed');
    beforeLock?.(rtnl, links);
    state = State.lock(config.stateDir);
    const parts = partition(state.read(), links, holderAlive);
    const { busy } = parts;
    const revived = parts.stale.filter((l) => {
      const k = l.state === 'ready' ? rtnl.link(l.hostVeth) : undefined;
      return k !== undefined && isLeaseVeth(l, k);
    });
    const live = [...parts.live, ...revived];
    const stale = parts.stale.filter((l) => !revived.includes(l));
    if (stale.length === 0) return { state, rtnl, leases: live, collected: [], busy };
    // By exact name: our own, made for this lease (perhaps after the list was taken).
    deleteVethsNamed(rtnl, stale.map((l) => l.hostVeth));
    // Rules first, records last: killed in between, the stale leases are still
    // on record and the next call does it all again.
    const ruled = stale.filter(hasLeaseRules);
    for (const name of new Set(ruled.map((l) => l.network))) {
      const net = config.networks.find((n) => n.name === name);
      if (!net || !rtnl.link(net.bridge)) continue;
      const of = (leases: Lease[]): Lease[] => leases.filter((l) => l.network === name);
      dropLeaseRules(tools(config.iptables), net, of(ruled), of(live));
    }
    state.write([...live, ...busy]);
    return { state, rtnl, leases: live, collected: stale, busy };
  } catch (err) {
    rtnl.close();
    state?.unlock();
    throw err;
  }
}

function end(s: Session): void {
  s.rtnl.close();
  s.state.unlock();
}

/** Reads and writes records under the lock, without a GC: for a call's short
 *  updates of the records it holds. */
function update<T>(config: Config, change: (records: Lease[], state: State) => T, onLocked?: () => void): T {
  const state = State.lock(config.stateDir);
  try {
    onLocked?.();
    return change(state.read(), state);
  } finally {
    state.unlock();
  }
}

/** Deletes veths by their exact names, all in one netlink round trip; errors
 *  are ignored (gone already). */
function deleteVethsNamed(rtnl: Rtnl, names: string[]): void {
  if (names.length === 0) return;
  rtnl.batch(
    names.map((name) => {
      const seq = rtnl.nextSeq();
      return { seq, bytes: nl.delLinkByName(seq, name) };
    }),
    'delete stale veths',
  );
}

function deleteLink(rtnl: Rtnl, index: number, name: string, quiet: boolean): void {
  const seq = rtnl.nextSeq();
  const [r] = rtnl.batch([{ seq, bytes: nl.delLink(seq, index) }], `delete ${name}`);
  if (r!.errno !== 0 && r!.errno !== ENODEV && !quiet) throw sysError(`delete ${name}`, r!.errno, { detail: r!.message });
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
 * Three steps. Under the lock, the lease is admitted and recorded as pending,
 * with this process as its holder. Outside it, the veth is created and eth0
 * configured, while other calls go ahead. Under the lock again, the lease's
 * rules (if it publishes ports: iptables-restore, started at the beginning so
 * that its start overlaps the rest) are added and the lease recorded as ready.
 * Killed at any point, the pending lease names a dead holder, and the next
 * call's GC removes its veth (by its exact name) and rules.
 */
export function connect(config: Config, net: Network, caller: Caller, pid: number, publish: PublishSpec[] = []): Answer {
  const early = publish.length > 0 ? startRestore(tools(config.iptables)) : undefined;
  let homeFd = -1;
  let target: Target | undefined;
  let rtnl: Rtnl | undefined;
  let lease: Lease | undefined;
  let committing = false;
  try {
    homeFd = fs.openSync('/proc/self/ns/net', 'r');
    const pinned = (target = pin(pid, caller.uid, fs.fstatSync(homeFd)));
    mark('target pinned');
    const reserved = reserve(config, net, caller, pid, publish);
    lease = reserved.lease;
    const { mtu } = reserved;
    const hostVeth = lease.hostVeth;
    mark('pending lease recorded');
    const sock = (rtnl = Rtnl.open());
    const [made, found] = sock.batch(
      [
        (seq: number) =>
          nl.newVeth(seq, { hostName: hostVeth, hostMac: randomMac(0xfe), mtu, master: reserved.bridge, peerName: SANDBOX_IFNAME, peerNetnsFd: pinned.netnsFd }),
        (seq: number) => nl.getLinkByName(seq, hostVeth),
      ].map((build) => {
        const seq = sock.nextSeq();
        return { seq, bytes: build(seq) };
      }),
      `create veth ${lease.hostVeth}`,
    ) as [Reply, Reply];
    if (made.errno !== 0) throw sysError(`create veth ${lease.hostVeth} with ${SANDBOX_IFNAME} in pid ${pid}'s namespace`, made.errno, { detail: made.message });
    const host = found.replies[0] ? nl.parseLink(found.replies[0].payload) : undefined;
    if (!host || host.link === undefined) throw new NsboxError({ exit: EXIT.SYSTEM, what: `create veth ${lease.hostVeth}`, why: 'it vanished right after creation', todo: 'Try again' });
    lease.hostIndex = host.index;
    mark('veth created');
    configureInside(pinned.netnsFd, homeFd, host.link, net, lease.address, pid);
    if (!pinned.alive()) throw notYours(pid);
    mark('eth0 configured');
    committing = true;
    commit(config, net, lease, early);
    mark('lease recorded ready');
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
  } catch (err) {
    if (lease) {
      try {
        deleteVethsNamed((rtnl ??= Rtnl.open()), [lease.hostVeth]);
        // commit() has dealt with the record (and the rules) itself.
        const id = lease.id;
        if (!committing) update(config, (records, state) => state.write(records.filter((l) => l.id !== id)));
      } catch {
        // Left on record with this process as holder: the next GC finishes it.
      }
    }
    throw err;
  } finally {
    early?.wait();
    if (homeFd >= 0) fs.closeSync(homeFd);
    rtnl?.close();
    target?.close();
  }
}

interface Reserved {
  lease: Lease;
  /** The bridge's ifindex. */
  bridge: number;
  mtu: number;
}

/** Under the lock: GC, quota, published ports, address, the bridge (and the
 *  network's rules with a new one), and the lease recorded as pending. */
function reserve(config: Config, net: Network, caller: Caller, pid: number, publish: PublishSpec[]): Reserved {
  // An existing bridge is checked (address, up, forwarding) before the lock.
  let bridge: nl.Link | undefined;
  const holder = thisProcess();
  const s = begin(config, (rtnl, links) => {
    if (links.some((k) => k.name === net.bridge)) bridge = ensureBridge(rtnl, net, links);
  });
  try {
    mark('locked, GC done');
    const others = [...s.leases, ...s.busy];
    const groups = admit(net, [...s.leases, ...s.busy.filter((l) => l.state === 'pending')], caller);
    if (publish.length > 0) {
      const addresses = s.rtnl.addresses().flatMap((a) => (a.family === nl.AF_INET && a.address ? [a.address] : []));
      admitPublish(net, caller, publish, others, { addresses, sockets: boundSockets(publish.map((p) => p.protocol)) });
    }
    const address = allocate(net, others.filter((l) => l.network === net.name).map((l) => l.address));
    if (!address) {
      throw new NsboxError({ exit: EXIT.QUOTA, what: `network "${net.name}"`, why: `all addresses of ${net.subnet} are leased`, todo: 'Release a lease or ask the administrator for a larger subnet' });
    }
    bridge ??= bridgeOf(s, net, config);
    mark('bridge checked');
    const taken = new Set(others.map((l) => l.id));
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
      holder,
      created: isoTime(Date.now()),
      published: publish,
    };
    lease.hostVeth = hostVethName(lease.id);
    // Recorded before the veth exists: if this call dies, the next one's GC
    // finds a pending lease of a dead holder and removes the veth by its exact
    // name (and the rules by the lease's tag).
    save(s, [...s.leases, lease]);
    return { lease, bridge: bridge.index, mtu: bridge.mtu ?? net.mtu };
  } finally {
    end(s);
  }
}

/** The network's bridge, under the lock. A missing one is made after the
 *  network's rules, so that an existing bridge always has them: killed in
 *  between, the next call makes the rules again. */
function bridgeOf(s: Session, net: Network, config: Config): nl.Link {
  if (s.rtnl.link(net.bridge)) return ensureBridge(s.rtnl, net);
  const t = tools(config.iptables);
  applyRules(t, net, s.leases);
  try {
    return ensureBridge(s.rtnl, net);
  } catch (err) {
    try {
      removeRules(t, net);
    } catch {
      // The next call makes them again anyway.
    }
    throw err;
  }
}

/** Under the lock: the lease's own rules, if it publishes ports, and the lease
 *  recorded as ready. On failure its rules are gone and its record too (or,
 *  when the rules could not be put right, left for the GC after this process). */
function commit(config: Config, net: Network, lease: Lease, early: Child | undefined): void {
  update(config, (records, state) => {
    if (!records.some((l) => l.id === lease.id)) {
      throw new NsboxError({ exit: EXIT.SYSTEM, what: `lease ${lease.id}`, why: 'its record was removed while it was being set up (netsetup teardown?)', todo: 'Try again' });
    }
    const { holder: _, ...rest } = lease;
    const ready: Lease = { ...rest, state: 'ready' };
    const others = records.filter((l) => l.id !== lease.id);
    if (hasLeaseRules(lease)) {
      const t = tools(config.iptables);
      const live = others.filter((l) => l.state === 'ready' && l.network === net.name);
      try {
        startLeaseRules(t, net, ready, early).finish([...live, ready]);
      } catch (err) {
        applyRules(t, net, live);
        state.write(others);
        throw err;
      }
      mark('rules in place');
    }
    state.write([...others, ready]);
  });
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
      if (r.errno !== 0) throw sysError(`${steps[i]!.what} in pid ${pid}'s namespace`, r.errno, { detail: r.message });
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
 * next call's GC deletes whatever is left of them.
 */
export function release(config: Config, caller: Caller, by: { id: string } | { pid: number }): Lease[] {
  const s = begin(config);
  let change: RuleChange | undefined;
  try {
    const mine = (l: Lease): boolean => caller.uid === 0 || l.uid === caller.uid;
    const wanted = (l: Lease): boolean => mine(l) && ('id' in by ? l.id === by.id : l.pid === by.pid);
    const chosen = s.leases.filter(wanted);
    // A lease whose sandbox is gone was just collected by this very call: released.
    const gone = [...s.collected, ...s.busy.filter((l) => l.state === 'releasing')].filter(wanted);
    if (chosen.length === 0 && gone.length > 0) return gone;
    if (chosen.length === 0) {
      throw new NsboxError({ exit: EXIT.DENIED, what: 'id' in by ? `lease ${by.id}` : `pid ${by.pid}`, why: 'no such lease of yours', todo: 'See your leases with netsetup list' });
    }
    const rest = s.leases.filter((l) => !chosen.includes(l));
    save(s, [...rest, ...chosen.map((l): Lease => ({ ...l, state: 'pending' }))]);
    const of = (leases: Lease[], net: Network): Lease[] => leases.filter((l) => l.network === net.name);
    const ruled = chosen.filter(hasLeaseRules);
    const nets = config.networks.filter((n) => ruled.some((l) => l.network === n.name));
    // One iptables-restore at a time: the first network's in the background, any others after.
    const [first, ...others] = nets;
    const t = nets.length > 0 ? tools(config.iptables) : undefined;
    if (first) change = startDropLeaseRules(t!, first, of(ruled, first));
    for (const l of chosen) deleteLink(s.rtnl, l.hostIndex, l.hostVeth, false);
    const started = change;
    change = undefined;
    started?.finish(of(rest, first!));
    for (const net of others) dropLeaseRules(t!, net, of(ruled, net), of(rest, net));
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
  const lease = update(
    config,
    (records, state) => {
      const l = records.find((r) => r.id === id && r.state === 'ready' && (caller.uid === 0 || r.uid === caller.uid));
      if (l) state.write(records.map((r) => (r === l ? { ...l, state: 'releasing', holder: thisProcess() } : r)));
      return l;
    },
    onLocked,
  );
  if (!lease) return;
  const net = config.networks.find((n) => n.name === lease.network);
  const rtnl = Rtnl.open();
  try {
    deleteVethsNamed(rtnl, [lease.hostVeth]);
    const rulesGone = net === undefined || !hasLeaseRules(lease) || tryDropLeaseRules(tools(config.iptables), net, [lease]);
    update(config, (records, state) => {
      const rest = records.filter((l) => l.id !== id);
      // Rebuilt without it, under the lock, when the quick deletion did not apply.
      if (!rulesGone && net && rtnl.link(net.bridge)) {
        applyRules(tools(config.iptables), net, rest.filter((l) => l.state === 'ready' && l.network === net.name));
      }
      state.write(rest);
    });
  } finally {
    rtnl.close();
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
    const t = tools(config.iptables);
    for (const net of nets) {
      applyRules(t, net, s.leases);
      ensureBridge(s.rtnl, net);
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
    const gone = [...s.leases, ...s.busy].filter((l) => names.has(l.network));
    deleteVethsNamed(s.rtnl, gone.map((l) => l.hostVeth));
    const t = tools(config.iptables);
    for (const net of nets) {
      removeRules(t, net);
      const br = s.rtnl.link(net.bridge);
      if (br && br.kind === 'bridge') deleteLink(s.rtnl, br.index, net.bridge, false);
    }
    const rest = [...s.leases, ...s.busy].filter((l) => !names.has(l.network));
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
