// The host side of a network: the bridge with its gateway address, IPv4
// forwarding. Created once and then only checked.
import fs from 'node:fs';
import { EEXIST } from '@nsbox/shared/errno';
import * as nl from '@nsbox/shared/netlink';
import { overlaps } from '@nsbox/shared/ipv4';
import type { Network } from '../policy/config.ts';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { broadcastOf } from '../policy/ipam.ts';
import { randomBytes } from './random.ts';
import type { Rtnl } from './rtnl.ts';

/** A random locally administered unicast MAC with the given first byte. */
export function randomMac(first: number): string {
  const b = randomBytes(6);
  b[0] = first;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Makes sure the bridge exists, is up and has the gateway address; returns it.
 *  `links` is a fresh dump of the host's links, when the caller has one. */
export function ensureBridge(rtnl: Rtnl, net: Network, links?: nl.Link[]): nl.Link {
  let bridge = links ? links.find((l) => l.name === net.bridge) : rtnl.link(net.bridge);
  if (bridge && bridge.kind !== 'bridge') {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `network "${net.name}"`, why: `device ${net.bridge} exists and is not a bridge`, todo: 'Choose another bridge name in the configuration' });
  }
  if (!bridge) {
    const clash = rtnl
      .routes()
      .filter((r) => r.family === nl.AF_INET && r.table !== 255 && r.type === nl.RTN_UNICAST)
      .find((r) => overlaps(`${r.dst ?? '0.0.0.0'}/${r.dstLen}`, net.subnet) && r.dstLen > 0);
    if (clash) {
      throw new NsboxError({ exit: EXIT.CONFIG, what: `network "${net.name}"`, why: `its subnet ${net.subnet} overlaps the host route ${clash.dst}/${clash.dstLen}`, todo: 'Choose a subnet the host does not use in the configuration' });
    }
    rtnl.do(`create bridge ${net.bridge}`, (seq) => nl.newBridge(seq, net.bridge, randomMac(0x02)));
    bridge = rtnl.link(net.bridge);
    if (!bridge) throw new NsboxError({ exit: EXIT.SYSTEM, what: `create bridge ${net.bridge}`, why: 'it vanished right after creation', todo: 'Try again' });
  }
  const index = bridge.index;
  // Adding the gateway address exclusively is the check: EEXIST means it is there
  // (same address and prefix); one round trip, where a dump of all addresses is
  // two. IPv4 forwarding is read in the same round trip (reading ip_forward from
  // /proc costs more than the whole netlink exchange).
  const steps = [
    { what: `add ${net.gateway}/${net.prefix} to ${net.bridge}`, build: (seq: number) => nl.newAddress(seq, index, net.gateway, net.prefix, broadcastOf(net)), ok: [0, EEXIST] },
    { what: 'read net.ipv4.ip_forward', build: (seq: number) => nl.getNetconf(seq, nl.AF_INET), ok: [0] },
  ];
  // The network's MTU, set as a change (not at creation), which the kernel
  // keeps: a bridge whose MTU it manages falls to 1500 when its last port goes,
  // and the next sandbox's veth would get that, not the configured MTU (at
  // 65520, a third less throughput). This also puts back an MTU changed by hand.
  // At 1500, the default, a new bridge needs no change: the kernel's choice is
  // 1500 while its ports are netsetup's veths.
  if (bridge.mtu !== net.mtu) steps.push({ what: `set the MTU of ${net.bridge} to ${net.mtu}`, build: (seq) => nl.setLinkMtu(seq, index, net.mtu), ok: [0] });
  if (!(bridge.flags & nl.IFF_UP)) steps.push({ what: `bring ${net.bridge} up`, build: (seq) => nl.setLinkUp(seq, index), ok: [0] });
  const requests = steps.map((st) => {
    const seq = rtnl.nextSeq();
    return { seq, bytes: st.build(seq) };
  });
  const results = rtnl.batch(requests, `set up ${net.bridge}`);
  results.forEach((r, i) => {
    if (!steps[i]!.ok.includes(r.errno)) throw sysError(steps[i]!.what, r.errno, { detail: r.message });
  });
  const netconf = results[1]!.replies.find((m) => m.type === nl.RTM_NEWNETCONF);
  if (!netconf || nl.parseNetconfForwarding(netconf.payload) !== 1) enableForwarding();
  return { ...bridge, mtu: net.mtu };
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

function enableForwarding(): void {
  if (fs.readFileSync(IP_FORWARD, 'utf8').trim() !== '1') fs.writeFileSync(IP_FORWARD, '1\n');
}
