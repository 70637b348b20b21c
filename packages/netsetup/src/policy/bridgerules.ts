// The bridge filter, planned: which frames a sandbox's host veth (a "port") may
// send, as one nftables bridge-family table for the whole host, and the set
// elements that bind one port to its lease. Pure: data in, `nft -f` text and
// element bytes out; kernel work is kernel/bridgefilter.ts.
//
// Invariant: a port (a host veth whose name starts with the table's prefix) can
// send only what its elements allow, and a port with no elements sends nothing.
// Its frames must come from the MAC netsetup gave the sandbox; IPv4 and ARP
// only from the leased address; every other ethertype (IPv6, 802.1Q, 802.1ad,
// LLC...) is dropped. The table has drop rules only: no accept verdict anywhere,
// so nothing placed before a drop can let a frame through it.
//
// One table for the host, keyed by port name, not one per bridge: this kernel
// has no bridge meta expressions (`meta ibrname`, CONFIG_NFT_BRIDGE_META), so a
// rule cannot tell which bridge a frame is on, only which port. Port names are
// unique on the host, so that is enough; the per-network parts (which subnets
// are isolated) are elements too.
//
// Isolation between owners: every port belongs to a group (its owner's uid on an
// `isolation: "user"` network; one shared group on an `isolation: "none"` one).
// Frames go from port to port (bridge forward) only within a group; and IPv4
// to a sandbox address of an isolated network only from a port of that
// address's group, whichever way it travels (bridged, or routed back out by the
// host), checked before the host's DNAT. Published ports are still reached:
// they are addressed to the host, and DNAT'ed after that check.
import { NsboxError } from '@nsbox/shared/error';
import { ipv4Bytes, ipv4ToInt } from '@nsbox/shared/ipv4';
import { macBytes } from '@nsbox/shared/netlink';
import type { SetElement } from '@nsbox/shared/nfnetlink';

export type Isolation = 'user' | 'none';
export const ISOLATIONS: readonly Isolation[] = ['user', 'none'];
export const DEFAULT_ISOLATION: Isolation = 'user';

/** Where the filter lives: the table's name and the prefix of the ports it binds. */
export interface FilterScope {
  table: string;
  /** Host veths whose name starts with this are filtered (netsetup's "nsb"). */
  portPrefix: string;
}

export const HOST_SCOPE: FilterScope = { table: 'nsbox', portPrefix: 'nsb' };

/** What the filter needs to know of a network. */
export interface FilteredNetwork {
  bridge: string;
  /** Canonical "a.b.c.d/len". */
  subnet: string;
  gateway: string;
  isolation: Isolation;
}

/** One lease, as the filter binds it. */
export interface PortLease {
  /** Host veth name. */
  port: string;
  /** The MAC of the sandbox's end (assigned by netsetup). */
  mac: string;
  address: string;
  uid: number;
}

/** The elements of one port: the same on every network except for `group`. */
export interface PortBinding {
  port: string;
  mac: string;
  address: string;
  group: number;
}

export const SETS = {
  /** ifname . ether_addr: the MAC each port may send from. */
  mac: 'port_mac',
  /** ifname . ipv4_addr: the IPv4 address each port may send from. */
  ip: 'port_ip',
  /** ifname : mark: each port's group. */
  group: 'port_group',
  /** ifname . mark: the same pairs, to check the group of the output port. */
  inGroup: 'port_in_group',
  /** mark . ipv4_addr: each group's addresses, to check the group of an IPv4 destination. */
  groupIp: 'group_ip',
  /** ipv4_addr intervals: sandbox addresses of isolated networks (not their gateways). */
  isolated: 'isolated',
} as const;

/** The group of every port of an `isolation: "none"` network. uid 4294967294
 *  could collide with it only on such a network, where groups do not matter. */
export const OPEN_GROUP = 0xfffffffe;
/** The mark a frame carries while its input port's group is looked up: no port
 *  is in it, so a port without a group reaches nobody. */
const NO_GROUP = 0xffffffff;
/** The mark of a published port's DNAT between two ports (see rulesetText). */
export const DNAT_MARK = 0xfffffffd;

const IFNAMSIZ = 16;

function invalid(what: string, why: string): never {
  throw new NsboxError({ what, why, todo: 'This is a bug in netsetup: report it' });
}

const ipv4Int = (a: string): number => ipv4ToInt(a);
const intIpv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** First and last address of a canonical CIDR. */
function range(subnet: string): [number, number] {
  const [base, len] = subnet.split('/') as [string, string | undefined];
  const prefix = Number(len);
  if (len === undefined || !Number.isInteger(prefix) || prefix < 1 || prefix > 30) invalid(`subnet ${subnet}`, 'not an IPv4 CIDR with a prefix of 1 to 30');
  const mask = (~0 << (32 - prefix)) >>> 0;
  const start = (ipv4Int(base) & mask) >>> 0;
  return [start, (start | (~mask >>> 0)) >>> 0];
}

/** The elements binding `lease`'s port on `net`; refuses anything the filter
 *  could not enforce (a name outside the scope, a multicast MAC, an address
 *  outside the subnet or not a sandbox's). */
export function portBinding(scope: FilterScope, net: FilteredNetwork, lease: PortLease): PortBinding {
  const what = `bind port ${lease.port}`;
  if (!lease.port.startsWith(scope.portPrefix) || lease.port.length >= IFNAMSIZ || !/^[A-Za-z0-9_-]+$/.test(lease.port)) {
    invalid(what, `not a port name of the form ${scope.portPrefix}... (at most ${IFNAMSIZ - 1} characters)`);
  }
  let mac: Buffer;
  try {
    mac = macBytes(lease.mac);
  } catch {
    invalid(what, `${lease.mac} is not a MAC address`);
  }
  if (mac[0]! & 1 || mac.every((b) => b === 0)) invalid(what, `${lease.mac} is not a unicast MAC address`);
  let address: number;
  try {
    address = ipv4Int(lease.address);
  } catch {
    invalid(what, `${lease.address} is not an IPv4 address`);
  }
  const [first, last] = range(net.subnet);
  if (address <= first || address >= last || address === ipv4Int(net.gateway)) {
    invalid(what, `${lease.address} is not a sandbox address of ${net.subnet}`);
  }
  if (!Number.isInteger(lease.uid) || lease.uid < 0 || lease.uid >= OPEN_GROUP) invalid(what, `uid ${lease.uid} is out of range`);
  return { port: lease.port, mac: lease.mac.toLowerCase(), address: lease.address, group: net.isolation === 'user' ? lease.uid : OPEN_GROUP };
}

/** Address ranges [first, last] a port must not reach through the host: every
 *  address of an isolated network's subnet but its gateway and broadcast. */
export function isolatedRanges(net: FilteredNetwork): [string, string][] {
  if (net.isolation !== 'user') return [];
  const [first, last] = range(net.subnet);
  const gw = ipv4Int(net.gateway);
  const out: [number, number][] = [];
  if (gw > first) out.push([first, gw - 1]);
  if (gw + 1 <= last - 1) out.push([gw + 1, last - 1]);
  return out.map(([a, b]) => [intIpv4(a), intIpv4(b)]);
}

const quote = (name: string): string => `"${name}"`;
const elements = (items: string[]): string => (items.length > 0 ? ` elements = { ${items.join(', ')} };` : '');
const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/**
 * `nft -f` input that replaces the tables, atomically, with ones holding
 * `bound` (the live leases' bindings) and the networks' isolated ranges and
 * bridges: each is first made sure to exist so that deleting it cannot fail.
 *
 * Two tables of the same name: the bridge family's does the filtering; the ip
 * family's only marks the host's DNAT of one sandbox's connection to another's
 * published port. With br_netfilter (bridge-nf-call-iptables), that DNAT turns
 * the connection into frames bridged between the two ports; the bridge family
 * here has no conntrack (no nf_conntrack_bridge) to recognise them, so the ip
 * FORWARD hook, which br_netfilter runs for bridged IPv4 at bridge-forward
 * priority 0, marks them last, and the bridge's forward chain (priority 100,
 * after it) lets that mark through and clears it. A sandbox cannot set a mark:
 * the kernel clears it when a frame leaves the sandbox's namespace.
 */
export function rulesetText(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[]): string {
  const t = scope.table;
  const ports = quote(`${scope.portPrefix}*`);
  const ranges = networks.flatMap(isolatedRanges).map(([a, b]) => (a === b ? a : `${a}-${b}`));
  const bridges = [...new Set(networks.map((n) => n.bridge))].sort();
  for (const br of bridges) if (!/^[A-Za-z0-9_-]{1,15}$/.test(br)) invalid(`bridge ${br}`, 'not an interface name');
  return [
    `table bridge ${t} {}`,
    `delete table bridge ${t}`,
    `table ip ${t} {}`,
    `delete table ip ${t}`,
    `table bridge ${t} {`,
    `  set ${SETS.mac} { type ifname . ether_addr;${elements(bound.map((b) => `${quote(b.port)} . ${b.mac}`))} }`,
    `  set ${SETS.ip} { type ifname . ipv4_addr;${elements(bound.map((b) => `${quote(b.port)} . ${b.address}`))} }`,
    `  map ${SETS.group} { type ifname : mark;${elements(bound.map((b) => `${quote(b.port)} : ${hex32(b.group)}`))} }`,
    `  set ${SETS.inGroup} { type ifname . mark;${elements(bound.map((b) => `${quote(b.port)} . ${hex32(b.group)}`))} }`,
    `  set ${SETS.groupIp} { type mark . ipv4_addr;${elements(bound.map((b) => `${hex32(b.group)} . ${b.address}`))} }`,
    `  set ${SETS.isolated} { type ipv4_addr; flags interval;${elements(ranges)} }`,
    // What a port may send at all, to other ports or to the host.
    '  chain from_port {',
    `    iifname . ether saddr != @${SETS.mac} drop`,
    '    ether type != { ip, arp } drop',
    '    ether type arp arp htype != 1 drop',
    '    ether type arp arp ptype != ip drop',
    '    ether type arp arp hlen != 6 drop',
    '    ether type arp arp plen != 4 drop',
    '    ether type arp arp operation != { request, reply } drop',
    `    ether type arp iifname . arp saddr ether != @${SETS.mac} drop`,
    `    ether type arp iifname . arp saddr ip != @${SETS.ip} drop`,
    `    ether type ip iifname . ip saddr != @${SETS.ip} drop`,
    '  }',
    // IPv4 to an isolated network's sandbox address: only from its group. Run
    // in prerouting, before br_netfilter's DNAT: a published port's connection
    // is still addressed to the host there.
    '  chain to_sandbox {',
    `    meta mark set ${hex32(NO_GROUP)}`,
    `    meta mark set iifname map @${SETS.group}`,
    `    meta mark . ip daddr != @${SETS.groupIp} drop`,
    '    meta mark set 0x00000000',
    '  }',
    // From port to port: within the input port's group only (or a published
    // port's DNAT, see above). The group travels in the mark for one lookup and
    // is cleared after.
    '  chain between_ports {',
    `    meta mark ${hex32(DNAT_MARK)} meta mark set 0x00000000 return`,
    `    meta mark set ${hex32(NO_GROUP)}`,
    `    meta mark set iifname map @${SETS.group}`,
    `    oifname . meta mark != @${SETS.inGroup} drop`,
    '    meta mark set 0x00000000',
    '  }',
    // Priority -300, the bridge family's earliest named one: before any other
    // table's rules on the hook (a drop is final whatever comes after).
    '  chain prerouting {',
    '    type filter hook prerouting priority -300; policy accept;',
    `    iifname ${ports} jump from_port`,
    `    iifname ${ports} ether type ip ip daddr @${SETS.isolated} jump to_sandbox`,
    '  }',
    // Frames to the host. Those to link-local group addresses the bridge may
    // not forward (01:80:c2:00:00:0X, X < 3) skip prerouting and come straight
    // here: the same port checks again.
    '  chain input {',
    '    type filter hook input priority -300; policy accept;',
    `    iifname ${ports} jump from_port`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority 100; policy accept;',
    `    iifname ${ports} jump between_ports`,
    '  }',
    '}',
    `table ip ${t} {`,
    `  set bridges { type ifname;${elements(bridges.map(quote))} }`,
    // Last in FORWARD, so no other rule there sees the mark; cleared first in
    // POSTROUTING, for a hairpin the host routes (no br_netfilter) rather than bridges.
    '  chain forward {',
    '    type filter hook forward priority 1000; policy accept;',
    `    iifname @bridges oifname @bridges ct status dnat meta mark set ${hex32(DNAT_MARK)}`,
    '  }',
    '  chain postrouting {',
    '    type filter hook postrouting priority -1000; policy accept;',
    `    oifname @bridges meta mark ${hex32(DNAT_MARK)} meta mark set 0x00000000`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** `nft -f` input that removes the table (the caller ignores "no such table"). */
export const removalText = (scope: FilterScope, family: 'bridge' | 'ip'): string => `delete table ${family} ${scope.table}\n`;

// ---------------------------------------------------------------- element bytes
// As the kernel stores them: an ifname is 16 bytes, NUL-padded; each part of a
// concatenation is padded to 4 bytes (a MAC to 8); an IPv4 address in network
// order; a mark in the host's order (little-endian on x86_64 and arm64).

function ifname(name: string): Buffer {
  const b = Buffer.alloc(IFNAMSIZ);
  b.write(name, 'latin1');
  return b;
}

function mark(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

const macPadded = (mac: string): Buffer => Buffer.concat([macBytes(mac), Buffer.alloc(2)]);

/** Per set, the elements of one binding, for NEWSETELEM / DELSETELEM. */
export function bindingElements(b: PortBinding): { set: string; element: SetElement }[] {
  const port = ifname(b.port);
  return [
    { set: SETS.mac, element: { key: Buffer.concat([port, macPadded(b.mac)]) } },
    { set: SETS.ip, element: { key: Buffer.concat([port, ipv4Bytes(b.address)]) } },
    { set: SETS.group, element: { key: port, data: mark(b.group) } },
    { set: SETS.inGroup, element: { key: Buffer.concat([port, mark(b.group)]) } },
    { set: SETS.groupIp, element: { key: Buffer.concat([mark(b.group), ipv4Bytes(b.address)]) } },
  ];
}

/** What the kernel holds for one port: normally exactly one of each. */
export interface PortElements {
  port: string;
  macs: string[];
  addresses: string[];
  groups: number[];
  /** port_in_group pairs (may differ from `groups` only after tampering). */
  inGroups: number[];
  /** group_ip pairs for the port's addresses. */
  groupAddresses: { group: number; address: string }[];
}

const portName = (key: Buffer): string => key.toString('latin1', 0, IFNAMSIZ).replace(/\0.*$/s, '');

/** Joins the dumped elements of the five port sets by port name. */
export function decodeBound(dumped: Record<(typeof SETS)['mac' | 'ip' | 'group' | 'inGroup' | 'groupIp'], SetElement[]>): PortElements[] {
  const ports = new Map<string, PortElements>();
  const of = (key: Uint8Array): PortElements => {
    const name = portName(Buffer.from(key));
    let p = ports.get(name);
    if (!p) ports.set(name, (p = { port: name, macs: [], addresses: [], groups: [], inGroups: [], groupAddresses: [] }));
    return p;
  };
  for (const e of dumped.port_mac) {
    const k = Buffer.from(e.key);
    of(k).macs.push(Array.from(k.subarray(IFNAMSIZ, IFNAMSIZ + 6), (x) => x.toString(16).padStart(2, '0')).join(':'));
  }
  for (const e of dumped.port_ip) {
    const k = Buffer.from(e.key);
    of(k).addresses.push(Array.from(k.subarray(IFNAMSIZ, IFNAMSIZ + 4)).join('.'));
  }
  for (const e of dumped.port_group) if (e.data) of(e.key).groups.push(Buffer.from(e.data).readUInt32LE(0));
  for (const e of dumped.port_in_group) {
    const k = Buffer.from(e.key);
    of(k).inGroups.push(k.readUInt32LE(IFNAMSIZ));
  }
  // Keyed by address, not port: given to the port(s) holding the address.
  for (const e of dumped.group_ip) {
    const k = Buffer.from(e.key);
    const address = Array.from(k.subarray(4, 8)).join('.');
    for (const p of ports.values()) if (p.addresses.includes(address)) p.groupAddresses.push({ group: k.readUInt32LE(0), address });
  }
  return [...ports.values()].sort((a, b) => a.port.localeCompare(b.port));
}

/** Every element found for a port, as DELSETELEM input (to sweep a stale port). */
export function portElements(p: PortElements): { set: string; element: SetElement }[] {
  const port = ifname(p.port);
  return [
    ...p.macs.map((m) => ({ set: SETS.mac, element: { key: Buffer.concat([port, macPadded(m)]) } })),
    ...p.addresses.map((a) => ({ set: SETS.ip, element: { key: Buffer.concat([port, ipv4Bytes(a)]) } })),
    ...(p.groups.length > 0 ? [{ set: SETS.group, element: { key: port } }] : []),
    ...p.inGroups.map((g) => ({ set: SETS.inGroup, element: { key: Buffer.concat([port, mark(g)]) } })),
    ...p.groupAddresses.map((ga) => ({ set: SETS.groupIp, element: { key: Buffer.concat([mark(ga.group), ipv4Bytes(ga.address)]) } })),
  ];
}

// ---------------------------------------------------------------- checking (netsetup check)

/** What a table must have: per "family chain", its hook (if a base chain) and
 *  number of rules; its sets and maps. Read from rulesetText's own output. */
export interface TableShape {
  chains: Record<string, { hook?: string; rules: number }>;
  sets: string[];
}

/** The shape of the tables rulesetText() writes. */
export function expectedShape(text: string): TableShape {
  const shape: TableShape = { chains: {}, sets: [] };
  let family = '';
  let chain: string | undefined;
  for (const line of text.split('\n')) {
    const table = /^table (\w+) \S+ \{$/.exec(line);
    if (table) family = table[1]!;
    const set = /^ {2}(?:set|map) (\w+) \{/.exec(line);
    if (set) shape.sets.push(`${family} ${set[1]}`);
    const open = /^ {2}chain (\w+) \{$/.exec(line);
    if (open) {
      chain = `${family} ${open[1]}`;
      shape.chains[chain] = { rules: 0 };
    } else if (chain && line === '  }') chain = undefined;
    else if (chain) {
      const hook = /^\s+type filter hook (\w+) /.exec(line);
      if (hook) shape.chains[chain]!.hook = hook[1]!;
      else if (line.trim()) shape.chains[chain]!.rules++;
    }
  }
  shape.sets.sort();
  return shape;
}

interface NftJsonItem {
  chain?: { family: string; name: string; hook?: string };
  rule?: { family: string; chain: string; expr?: unknown[] };
  set?: { family: string; name: string };
  map?: { family: string; name: string };
}

/** What differs between the tables as listed (`nft -j -t list table`, the
 *  items of both families) and `expected`, in words; empty when they match.
 *  An accept verdict anywhere is a difference too. */
export function shapeProblems(expected: TableShape, listed: NftJsonItem[]): string[] {
  const problems: string[] = [];
  const chains = new Map<string, { hook?: string; rules: number; accept: boolean }>();
  const sets: string[] = [];
  for (const item of listed) {
    if (item.chain) chains.set(`${item.chain.family} ${item.chain.name}`, { hook: item.chain.hook, rules: 0, accept: false });
    const s = item.set ?? item.map;
    if (s) sets.push(`${s.family} ${s.name}`);
  }
  for (const item of listed) {
    if (!item.rule) continue;
    const c = chains.get(`${item.rule.family} ${item.rule.chain}`);
    if (!c) continue;
    c.rules++;
    if (JSON.stringify(item.rule.expr ?? []).includes('"accept"')) c.accept = true;
  }
  for (const [name, want] of Object.entries(expected.chains)) {
    const got = chains.get(name);
    if (!got) problems.push(`chain ${name} is missing`);
    else {
      if (got.hook !== want.hook) problems.push(`chain ${name} is on hook ${got.hook ?? 'none'}, not ${want.hook ?? 'none'}`);
      if (got.rules !== want.rules) problems.push(`chain ${name} has ${got.rules} rules, not ${want.rules}`);
    }
  }
  for (const [name, got] of chains) {
    if (!(name in expected.chains)) problems.push(`chain ${name} is not ours`);
    if (got.accept) problems.push(`chain ${name} has an accept rule`);
  }
  for (const s of expected.sets) if (!sets.includes(s)) problems.push(`set ${s} is missing`);
  return problems;
}
