// The host side of a network: the bridge with its gateway address, IPv4
// forwarding. Created once and then only checked.
import crypto from 'node:crypto';
import fs from 'node:fs';
import * as nl from '@nsbox/shared/netlink';
import { overlaps, type Network } from './config.ts';
import { EXIT, NetsetupError } from './errors.ts';
import { broadcastOf } from './ipam.ts';
import type { Rtnl } from './rtnl.ts';

/** A random locally administered unicast MAC with the given first byte. */
export function randomMac(first: number): string {
  const b = crypto.randomBytes(6);
  b[0] = first;
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Makes sure the bridge exists, is up and has the gateway address; returns it. */
export function ensureBridge(rtnl: Rtnl, net: Network): nl.Link {
  let bridge = rtnl.link(net.bridge);
  if (bridge && bridge.kind !== 'bridge') {
    throw new NetsetupError(EXIT.CONFIG, `network "${net.name}"`, `device ${net.bridge} exists and is not a bridge`, 'Choose another bridge name in the configuration');
  }
  if (!bridge) {
    const clash = rtnl
      .routes()
      .filter((r) => r.family === nl.AF_INET && r.table !== 255 && r.type === nl.RTN_UNICAST)
      .find((r) => overlaps(`${r.dst ?? '0.0.0.0'}/${r.dstLen}`, net.subnet) && r.dstLen > 0);
    if (clash) {
      throw new NetsetupError(
        EXIT.CONFIG,
        `network "${net.name}"`,
        `its subnet ${net.subnet} overlaps the host route ${clash.dst}/${clash.dstLen}`,
        'Choose a subnet the host does not use in the configuration',
      );
    }
    rtnl.do(`create bridge ${net.bridge}`, (seq) => nl.newBridge(seq, net.bridge, net.mtu, randomMac(0x02)));
    bridge = rtnl.link(net.bridge);
    if (!bridge) throw new NetsetupError(EXIT.SYSTEM, `create bridge ${net.bridge}`, 'it vanished right after creation', 'Try again');
  }
  const index = bridge.index;
  const has = rtnl.addresses().some((a) => a.index === index && a.address === net.gateway && a.prefixlen === net.prefix);
  if (!has) rtnl.do(`add ${net.gateway}/${net.prefix} to ${net.bridge}`, (seq) => nl.newAddress(seq, index, net.gateway, net.prefix, broadcastOf(net)));
  if (!(bridge.flags & nl.IFF_UP)) rtnl.do(`bring ${net.bridge} up`, (seq) => nl.setLinkUp(seq, index));
  enableForwarding();
  return bridge;
}

const IP_FORWARD = '/proc/sys/net/ipv4/ip_forward';

export function enableForwarding(): void {
  if (fs.readFileSync(IP_FORWARD, 'utf8').trim() !== '1') fs.writeFileSync(IP_FORWARD, '1\n');
}
