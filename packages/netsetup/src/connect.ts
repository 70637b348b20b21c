// netsetup --pid: give a process's network namespace one veth on a network's
// bridge, an address, a default route and, asked for, published ports. The
// record comes first (pending, this process its holder, with the sandbox's MAC
// chosen), then the port's binding in the bridge filter, then the veth, both
// outside the state lock, and the ready record last (records.ts has the
// invariant). Bound before it exists, the port can never send anything its
// lease does not allow; and a bind into a missing table fails (the table is
// then made) before there is a port to filter.
import fs from 'node:fs';
import { NsboxError, sysError } from '@nsbox/shared/error';
import * as nl from '@nsbox/shared/netlink';
import { SANDBOX_IFNAME, type Answer } from '@nsbox/shared/protocol';
import type { PublishSpec } from '@nsbox/shared/publish';
import type { Child } from '@nsbox/shared/spawn';
import { EXIT } from './exit.ts';
import { ensureTable, quietBridge, tableMissing } from './kernel/bridgefilter.ts';
import { ensureBridge, randomMac } from './kernel/host.ts';
import { applyRules, backendIsNft, removeRules, startLeaseRules, startLook, startNatTable, startRestore, type Pending, type RuleState } from './kernel/iptables.ts';
import { rulesChecked } from './kernel/state.ts';
import { randomBytes } from './kernel/random.ts';
import { Rtnl } from './kernel/rtnl.ts';
import { boundSockets } from './kernel/sockets.ts';
import { notYours, pin, type Target } from './kernel/target.ts';
import type { Config, Network } from './policy/config.ts';
import { dnatChain, hasLeaseRules, jumps } from './policy/firewall.ts';
import { oneSince, unchangedSince, type Generation } from './policy/rulecheck.ts';
import { hostForwards } from './policy/hostforwards.ts';
import { allocate, broadcastOf } from './policy/ipam.ts';
import { admit, hostVethName, isoTime, type Caller, type Lease } from './policy/leases.ts';
import { admitPublish, type HostFacts } from './policy/publishing.ts';
import { HOST_SCOPE, type PortBinding } from './policy/bridgerules.ts';
import { begin, deleteLink, deleteVethsNamed, end, leaseBinding, leaseBindings, save, thisProcess, unbindLeases, update, withCall, type Call, type Session } from './records.ts';
import { mark } from './timing.ts';

const LOOPBACK_INDEX = 1;

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
export function connect(config: Config, net: Network, caller: Caller, pid: number, publish: PublishSpec[]): Answer {
  return withCall(config, (call) => connectIn(call, net, caller, pid, publish));
}

function connectIn(call: Call, net: Network, caller: Caller, pid: number, publish: PublishSpec[]): Answer {
  const early = publish.length > 0 ? startRestore(call.tools) : undefined;
  const natTable = publish.length > 0 ? startNatTable(call.tools) : undefined;
  // Whether a firewall reload took the network's rules (with legacy iptables an
  // iptables-save, started now to overlap the rest).
  const nft = backendIsNft(call.config.iptables);
  const looking = startLook({ nft, get save() { return call.tools.save; } }, net);
  let homeFd = -1;
  let target: Target | undefined;
  let lease: Lease | undefined;
  let committing = false;
  try {
    homeFd = fs.openSync('/proc/self/ns/net', 'r');
    const pinned = (target = pin(pid, caller.uid, fs.fstatSync(homeFd)));
    mark('target pinned');
    const reserved = reserve(call, net, caller, pid, publish, natTable, { nft, looking });
    lease = reserved.lease;
    const { mtu } = reserved;
    const hostVeth = lease.hostVeth;
    mark('pending lease recorded');
    const binding = leaseBinding(net, { ...lease, mac: reserved.mac });
    bindPort(call, binding, reserved.bound);
    mark('port bound');
    const sock = call.rtnl;
    const [made, found] = sock.batch(
      [
        (seq: number) =>
          nl.newVeth(seq, { hostName: hostVeth, hostMac: randomMac(0xfe), mtu, master: reserved.bridge, peerName: SANDBOX_IFNAME, peerNetnsFd: pinned.netnsFd, peerMac: reserved.mac }),
        (seq: number) => nl.getLinkByName(seq, hostVeth),
        // The address may have been another sandbox's a moment ago: the host's
        // neighbour entry would still name that MAC, and traffic from the host
        // (a published port) would miss this sandbox for seconds. Usually ENOENT.
        (seq: number) => nl.delNeighbour(seq, reserved.bridge, lease!.address),
      ].map((build) => {
        const seq = sock.nextSeq();
        return { seq, bytes: build(seq) };
      }),
      `create veth ${lease.hostVeth}`,
    ) as [Reply, Reply, Reply];
    if (made.errno !== 0) throw sysError(`create veth ${lease.hostVeth} with ${SANDBOX_IFNAME} in pid ${pid}'s namespace`, made.errno, { detail: made.message });
    const host = found.replies[0] ? nl.parseLink(found.replies[0].payload) : undefined;
    if (!host || host.link === undefined) throw new NsboxError({ exit: EXIT.SYSTEM, what: `create veth ${lease.hostVeth}`, why: 'it vanished right after creation', todo: 'Try again' });
    lease.hostIndex = host.index;
    mark('veth created');
    // Still bound? A teardown elsewhere removes the table only when nothing is
    // bound, and a repair keeps every port's elements; this is the check that
    // no such change came between the bind and the veth. When the ruleset
    // changed by one transaction only since the jumps were seen intact, that
    // one was the bind: still bound, and the jumps still intact at this
    // generation, which the commit records (policy/rulecheck.ts).
    const after = reserved.checked ? call.filter.generation() : undefined;
    if (oneSince(reserved.checked, after)) call.checked = after;
    else if (!call.filter.isBound(binding)) bindPort(call, binding, reserved.bound);
    mark('port bound still');
    configureInside(pinned.netnsFd, homeFd, host.link, net, lease.address, pid);
    if (!pinned.alive()) throw notYours(pid);
    mark('eth0 configured');
    committing = true;
    commit(call, net, lease, early);
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
        deleteVethsNamed(call.rtnl, [lease.hostVeth]);
        unbindLeases(call, [lease]);
        // commit() has dealt with the record (and the rules) itself.
        const id = lease.id;
        if (!committing) update(call, (records, state) => state.write(records.filter((l) => l.id !== id)));
      } catch {
        // Left on record with this process as holder: the next GC finishes it.
      }
    }
    throw err;
  } finally {
    early?.wait();
    natTable?.close();
    looking.close();
    if (homeFd >= 0) fs.closeSync(homeFd);
    target?.close();
  }
}

/**
 * Binds the port of a new lease. A missing table is made (with `others`, the
 * configuration's other leases, which had no filter either), then the port is
 * bound. Once bound, the table stays: teardown removes it only when no port
 * at all is bound (kernel/bridgefilter.ts, removeParts).
 */
function bindPort(call: Call, binding: PortBinding, others: () => PortBinding[]): void {
  const f = call.filter;
  try {
    f.bindReplacing(binding);
  } catch (err) {
    if (!tableMissing(err)) throw err;
    // No table: the first port ever, or bridges left by a version without the
    // filter (an upgrade): those learn nothing from their ports from now on.
    for (const n of call.config.networks) if (fs.existsSync(`/sys/class/net/${n.bridge}/bridge`)) quietBridge(n.bridge);
    ensureTable(HOST_SCOPE, call.config.networks, others());
    f.bindReplacing(binding);
  }
}

interface Reserved {
  lease: Lease;
  /** The MAC of the sandbox's end. */
  mac: string;
  /** The bindings of the configuration's other leases (for a table made anew). */
  bound: () => PortBinding[];
  /** The bridge's ifindex. */
  bridge: number;
  mtu: number;
  /** The generation at which the network's jumps were seen intact (nf_tables), if they were. */
  checked?: Generation;
}

function hostFacts(call: Call, publish: PublishSpec[]): Omit<HostFacts, 'forwards'> {
  const addresses = call.rtnl.addresses().flatMap((a) => (a.family === nl.AF_INET && a.address ? [a.address] : []));
  return { addresses, sockets: boundSockets(publish.map((p) => p.protocol)) };
}

/** Under the lock: GC, quota, published ports, address, the bridge (and the
 *  network's rules with a new one), and the lease recorded as pending. */
function reserve(call: Call, net: Network, caller: Caller, pid: number, publish: PublishSpec[], natTable: Pending<string> | undefined, look: { nft: boolean; looking: Pending<RuleState> }): Reserved {
  // An existing bridge is checked (address, up, forwarding) before the lock,
  // and so are its rules: a firewall reload may have removed them.
  let bridge: nl.Link | undefined;
  let rules: RuleState | undefined;
  let checked: Generation | undefined;
  const holder = thisProcess();
  // The host's addresses, bound sockets and forwards, before the lock: any user
  // can make the socket tables long, and nothing under the lock may take time a
  // user controls (a socket bound after this is shadowed by the DNAT anyway).
  const ours = new Set(call.config.networks.map(dnatChain));
  const forwards = natTable ? hostForwards(natTable.collect(), (chain) => ours.has(chain)) : [];
  const host = publish.length > 0 ? { ...hostFacts(call, publish), forwards } : undefined;
  const s = begin(call, (links) => {
    if (!links.some((k) => k.name === net.bridge)) return;
    bridge = ensureBridge(call.rtnl, net, links);
    ({ rules, checked } = rulesNow(call, net, look));
    mark('rules looked at');
  });
  try {
    mark('locked, GC done');
    if (rules && !rules.intact) applyRules(call.tools, net, s.leases);
    if (rules && !rules.intact) checked = undefined;
    const others = [...s.leases, ...s.busy];
    const groups = admit(net, [...s.leases, ...s.busy.filter((l) => l.state === 'pending')], caller);
    if (host) admitPublish(net, caller, publish, others, host);
    const address = allocate(net, others.filter((l) => l.network === net.name).map((l) => l.address));
    if (!address) {
      throw new NsboxError({ exit: EXIT.QUOTA, what: `network "${net.name}"`, why: `all addresses of ${net.subnet} are leased`, todo: 'Release a lease or ask the administrator for a larger subnet' });
    }
    bridge ??= bridgeOf(s, net);
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
      mac: randomMac(0x02),
    };
    lease.hostVeth = hostVethName(lease.id);
    // Recorded before the veth exists: if this call dies, the next one's GC
    // finds a pending lease of a dead holder and removes the veth by its exact
    // name, then its binding (by port, MAC, address and owner) and its rules
    // (by the lease's tag).
    save(s, [...s.leases, lease]);
    const config = call.config;
    return { lease, mac: lease.mac!, bound: () => leaseBindings(config, others), bridge: bridge.index, mtu: bridge.mtu ?? net.mtu, ...(checked ? { checked } : {}) };
  } finally {
    end(s);
  }
}

/**
 * Whether the network's jumps are intact. With nf_tables, not looked at when
 * the ruleset's generation is still one recorded as checked (one round trip
 * instead of a dump per built-in chain); else looked at, and the generation of
 * before the look is the one checked if they are intact (had anything changed
 * after it, the generation would no longer be that one). With legacy iptables
 * (no generation), always looked at.
 */
function rulesNow(call: Call, net: Network, look: { nft: boolean; looking: Pending<RuleState> }): { rules: RuleState; checked?: Generation } {
  if (!look.nft) return { rules: look.looking.collect() };
  const now = call.filter.generation();
  if (unchangedSince(rulesChecked(call.stateDir), now)) {
    mark('rules known intact (generation unchanged)');
    return { rules: { present: jumps(net).map(() => true), intact: true }, checked: now };
  }
  const rules = look.looking.collect();
  return rules.intact && now.table !== undefined ? { rules, checked: now } : { rules };
}

/** The network's bridge, under the lock. A missing one is made after the
 *  network's rules, so that an existing bridge always has them: killed in
 *  between, the next call makes the rules again. */
function bridgeOf(s: Session, net: Network): nl.Link {
  const { rtnl } = s.call;
  if (rtnl.link(net.bridge)) return ensureBridge(rtnl, net);
  const t = s.call.tools;
  applyRules(t, net, s.leases);
  let made: nl.Link | undefined;
  try {
    made = ensureBridge(rtnl, net);
    // A new bridge learns nothing from its ports, and its network's parts
    // (isolated addresses, the bridge's name) are in the filter: else it goes
    // again, so that an existing bridge always has both.
    quietBridge(net.bridge);
    ensureTable(HOST_SCOPE, s.call.config.networks, leaseBindings(s.call.config, [...s.leases, ...s.busy]));
    return made;
  } catch (err) {
    try {
      if (made) deleteLink(rtnl, made.index, net.bridge);
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
function commit(call: Call, net: Network, lease: Lease, early: Child | undefined): void {
  update(call, (records, state) => {
    if (!records.some((l) => l.id === lease.id)) {
      throw new NsboxError({ exit: EXIT.SYSTEM, what: `lease ${lease.id}`, why: 'its record was removed while it was being set up (netsetup teardown?)', todo: 'Try again' });
    }
    const { holder: _, ...rest } = lease;
    const ready: Lease = { ...rest, state: 'ready' };
    const others = records.filter((l) => l.id !== lease.id);
    if (hasLeaseRules(lease)) {
      const t = call.tools;
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

