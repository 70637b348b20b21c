// Everything netsetup does as root, in one place. Each action takes the state
// lock, garbage-collects, and then does its part; every error path undoes what
// the call created.
import crypto from 'node:crypto';
import fs from 'node:fs';
import * as nl from '@nsbox/shared/netlink';
import type { PublishSpec } from '@nsbox/shared/publish';
import type { Config, Network } from './config.ts';
import { EXIT, NetsetupError, SysError } from './errors.ts';
import { ensureBridge, randomMac } from './host.ts';
import { allocate, broadcastOf } from './ipam.ts';
import { addLeaseRules, applyRules, removeRules, tools, type Tools } from './iptables.ts';
import { admit, hostVethName, partition, type Caller, type Lease } from './leases.ts';
import { Rtnl } from './rtnl.ts';
import { State } from './state.ts';
import { admitPublish } from './publishing.ts';
import { boundSockets } from './sockets.ts';
import { notYours, pin } from './target.ts';

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
  /** Live leases after GC. */
  leases: Lease[];
  /** Leases this session's GC dropped. */
  collected: Lease[];
}

/** Lock, open the host netlink socket, drop stale leases (their veths and rules). */
function begin(config: Config): Session {
  const state = State.lock(config.stateDir);
  let rtnl: Rtnl | undefined;
  try {
    rtnl = Rtnl.open();
    const t = tools(config.iptables);
    const all = state.read();
    const links = rtnl.links();
    const { live, stale } = partition(all, links);
    if (stale.length > 0) {
      for (const l of stale) {
        // Only a veth with exactly the recorded name: our own, made for this lease.
        const link = links.find((k) => k.name === l.hostVeth && k.kind === 'veth');
        if (link) deleteLink(rtnl, link.index, l.hostVeth, true);
      }
      // Rules first, records last: killed in between, the stale leases are still
      // on record and the next call does it all again.
      for (const name of new Set(stale.map((l) => l.network))) {
        const net = config.networks.find((n) => n.name === name);
        if (net && links.some((k) => k.name === net.bridge)) applyRules(t, net, live);
      }
      state.write(live);
    }
    return { state, rtnl, tools: t, leases: live, collected: stale };
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

function deleteLink(rtnl: Rtnl, index: number, name: string, quiet: boolean): void {
  const seq = rtnl.nextSeq();
  const [r] = rtnl.batch([{ seq, bytes: nl.delLink(seq, index) }], `delete ${name}`);
  if (r!.errno !== 0 && r!.errno !== 19 && !quiet) throw new SysError(`delete ${name}`, r!.errno, r!.message);
}

function newLeaseId(taken: Set<string>): string {
  for (;;) {
    const id = crypto.randomBytes(4).toString('hex');
    if (!taken.has(id)) return id;
  }
}

/** Gives the network namespace of `pid` one veth on the network's bridge, and
 *  publishes the host ports `publish` to it (all of them or, refused, nothing). */
export function connect(config: Config, net: Network, caller: Caller, pid: number, publish: PublishSpec[] = []): Connection {
  const homeNetns = fs.statSync('/proc/self/ns/net');
  const target = pin(pid, caller.uid, homeNetns);
  let s: Session | undefined;
  let homeFd = -1;
  try {
    s = begin(config);
    const groups = admit(net, s.leases, caller);
    if (publish.length > 0) {
      const addresses = s.rtnl.addresses().flatMap((a) => (a.family === nl.AF_INET && a.address ? [a.address] : []));
      admitPublish(net, caller, publish, s.leases, { addresses, sockets: boundSockets(publish.map((p) => p.protocol)) });
    }
    const address = allocate(net, s.leases.filter((l) => l.network === net.name).map((l) => l.address));
    if (!address) {
      throw new NetsetupError(EXIT.QUOTA, `network "${net.name}"`, `all addresses of ${net.subnet} are leased`, 'Release a lease or ask the administrator for a larger subnet');
    }
    const bridge = ensureBridge(s.rtnl, net);
    const mtu = bridge.mtu ?? net.mtu;
    homeFd = fs.openSync('/proc/self/ns/net', 'r');
    const lease: Lease = {
      id: newLeaseId(new Set(s.leases.map((l) => l.id))),
      network: net.name,
      uid: caller.uid,
      groups,
      address,
      hostVeth: '',
      hostIndex: 0,
      pid,
      state: 'pending',
      created: new Date().toISOString(),
      published: publish,
    };
    lease.hostVeth = hostVethName(lease.id);
    // Recorded before the veth exists: if this call dies, the next one's GC
    // finds a pending lease and deletes the veth by its exact name.
    s.state.write([...s.leases, lease]);
    let rulesAdded = false;
    try {
      s.rtnl.do(`create veth ${lease.hostVeth} with ${SANDBOX_IFNAME} in pid ${pid}'s namespace`, (seq) =>
        nl.newVeth(seq, {
          hostName: lease.hostVeth,
          hostMac: randomMac(0xfe),
          mtu,
          master: bridge.index,
          peerName: SANDBOX_IFNAME,
          peerNetnsFd: target.netnsFd,
        }),
      );
      const host = s.rtnl.link(lease.hostVeth);
      if (!host) throw new NetsetupError(EXIT.SYSTEM, `create veth ${lease.hostVeth}`, 'it vanished right after creation', 'Try again');
      lease.hostIndex = host.index;
      configureInside(target.netnsFd, homeFd, net, address, pid);
      if (!target.alive()) throw notYours(pid);
      // Rules before "ready": a call killed in between leaves a pending lease,
      // and the next GC removes its veth and rebuilds the chains without it.
      const leases = [...s.leases, lease];
      rulesAdded = true;
      addLeaseRules(s.tools, net, lease, leases);
      lease.state = 'ready';
      s.state.write(leases);
    } catch (err) {
      const host = s.rtnl.link(lease.hostVeth);
      if (host && host.kind === 'veth') deleteLink(s.rtnl, host.index, lease.hostVeth, true);
      let clean = true;
      if (rulesAdded) {
        try {
          applyRules(s.tools, net, s.leases);
        } catch {
          clean = false;
        }
      }
      // Without the rules removed, the pending lease stays on record for the next GC.
      if (clean) s.state.write(s.leases);
      throw err;
    }
    return {
      lease: lease.id,
      network: net.name,
      pid,
      interface: SANDBOX_IFNAME,
      address,
      prefix: net.prefix,
      cidr: `${address}/${net.prefix}`,
      gateway: net.gateway,
      mtu,
      dns: net.dns,
      bridge: net.bridge,
      hostVeth: lease.hostVeth,
      published: publish,
    };
  } finally {
    if (homeFd >= 0) fs.closeSync(homeFd);
    if (s) end(s);
    target.close();
  }
}

/** Address, eth0 up, lo up and the default route, through a socket inside the target's namespace. */
function configureInside(netnsFd: number, homeFd: number, net: Network, address: string, pid: number): void {
  const inside = Rtnl.openIn(netnsFd, homeFd);
  try {
    const eth = inside.link(SANDBOX_IFNAME);
    if (!eth) throw new NetsetupError(EXIT.SYSTEM, `configure ${SANDBOX_IFNAME} in pid ${pid}`, 'it is not there after creation', 'Try again');
    const steps: { what: string; build: (seq: number) => Buffer }[] = [
      { what: `add ${address}/${net.prefix} to ${SANDBOX_IFNAME}`, build: (seq) => nl.newAddress(seq, eth.index, address, net.prefix, broadcastOf(net)) },
      { what: `bring ${SANDBOX_IFNAME} up`, build: (seq) => nl.setLinkUp(seq, eth.index) },
      { what: 'bring lo up', build: (seq) => nl.setLinkUp(seq, LOOPBACK_INDEX) },
      { what: `add the default route via ${net.gateway}`, build: (seq) => nl.newDefaultRoute(seq, eth.index, net.gateway) },
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

/** Frees leases of the caller (root: anyone's) by id or by pid. */
export function release(config: Config, caller: Caller, by: { id: string } | { pid: number }): Lease[] {
  const s = begin(config);
  try {
    const mine = (l: Lease): boolean => caller.uid === 0 || l.uid === caller.uid;
    const wanted = (l: Lease): boolean => mine(l) && ('id' in by ? l.id === by.id : l.pid === by.pid);
    const chosen = s.leases.filter(wanted);
    // A lease whose sandbox is gone was just collected by this very call: released.
    const collected = s.collected.filter(wanted);
    if (chosen.length === 0 && collected.length > 0) return collected;
    if (chosen.length === 0) {
      throw new NetsetupError(EXIT.DENIED, 'id' in by ? `lease ${by.id}` : `pid ${by.pid}`, 'no such lease of yours', 'See your leases with netsetup list');
    }
    for (const l of chosen) deleteLink(s.rtnl, l.hostIndex, l.hostVeth, false);
    const rest = s.leases.filter((l) => !chosen.includes(l));
    for (const name of new Set(chosen.map((l) => l.network))) {
      const net = config.networks.find((n) => n.name === name);
      if (net) applyRules(s.tools, net, rest);
    }
    s.state.write(rest);
    return chosen;
  } finally {
    end(s);
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
    const gone = s.leases.filter((l) => names.has(l.network));
    for (const l of gone) deleteLink(s.rtnl, l.hostIndex, l.hostVeth, true);
    for (const net of nets) {
      removeRules(s.tools, net);
      const br = s.rtnl.link(net.bridge);
      if (br && br.kind === 'bridge') deleteLink(s.rtnl, br.index, net.bridge, false);
    }
    const rest = s.leases.filter((l) => !names.has(l.network));
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
