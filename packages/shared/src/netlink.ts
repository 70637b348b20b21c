// rtnetlink codec: builds request messages and decodes replies. Pure (bytes in,
// bytes out); the socket lives in the program that uses it. Only what nsbox
// needs: links (veth, bridge), IPv4 addresses and routes, acks and errors.
// Layouts follow <linux/netlink.h>, <linux/rtnetlink.h>, <linux/if_link.h>.
import { bytesToIpv4, ipv4Bytes } from './ipv4.ts';

export const NETLINK_ROUTE = 0;
export const AF_NETLINK = 16;
export const AF_UNSPEC = 0;
export const AF_INET = 2;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP = 0x300;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_GETROUTE = 26;
export const RTM_DELNEIGH = 29;
const NDA_DST = 1;
export const RTM_NEWNETCONF = 80;
export const RTM_GETNETCONF = 82;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_LINK = 5;
export const IFLA_MTU = 4;
export const IFLA_MASTER = 10;
export const IFLA_LINKINFO = 18;
export const IFLA_NET_NS_FD = 28;
export const IFLA_EXT_MASK = 29;
/** IFLA_EXT_MASK bit: leave the counters (IFLA_STATS, IFLA_STATS64) out of replies. */
export const RTEXT_FILTER_SKIP_STATS = 1 << 3;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const VETH_INFO_PEER = 1;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
export const IFA_BROADCAST = 4;

export const RTA_DST = 1;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_TABLE = 15;

/** netconf (<linux/netconf.h>): per-family switches such as forwarding. */
export const NETCONFA_IFINDEX = 1;
export const NETCONFA_FORWARDING = 2;
export const NETCONFA_IFINDEX_ALL = -1;

export const RT_TABLE_MAIN = 254;
export const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RTN_UNICAST = 1;

export const IFF_UP = 0x1;
export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

export const NLMSG_HDRLEN = 16;
export const IFINFOMSG_LEN = 16;
export const IFADDRMSG_LEN = 8;
export const RTMSG_LEN = 12;

const align4 = (n: number): number => (n + 3) & ~3;

// ---------------------------------------------------------------- encoding

/** One attribute (type + payload), padded to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  out.set(payload, 4);
  return out;
}

export const attrU32 = (type: number, value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return attr(type, b);
};
export const attrI32 = (type: number, value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return attr(type, b);
};
export const attrStr = (type: number, value: string): Buffer => attr(type, Buffer.from(`${value}\0`, 'utf8'));
export const attrNested = (type: number, children: Uint8Array[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(children));
export const attrIPv4 = (type: number, address: string): Buffer => attr(type, ipv4Bytes(address));

export interface IfInfo {
  family?: number;
  type?: number;
  index?: number;
  flags?: number;
  change?: number;
}

export function ifinfomsg(info: IfInfo = {}): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b.writeUInt8(info.family ?? AF_UNSPEC, 0);
  b.writeUInt16LE(info.type ?? 0, 2);
  b.writeInt32LE(info.index ?? 0, 4);
  b.writeUInt32LE((info.flags ?? 0) >>> 0, 8);
  b.writeUInt32LE((info.change ?? 0) >>> 0, 12);
  return b;
}

export function ifaddrmsg(prefixlen: number, index: number, scope = RT_SCOPE_UNIVERSE): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b.writeUInt8(AF_INET, 0);
  b.writeUInt8(prefixlen, 1);
  b.writeUInt8(0, 2);
  b.writeUInt8(scope, 3);
  b.writeUInt32LE(index, 4);
  return b;
}

export interface RtMsg {
  family?: number;
  dstLen?: number;
  table?: number;
  protocol?: number;
  scope?: number;
  type?: number;
}

export function rtmsg(m: RtMsg = {}): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b.writeUInt8(m.family ?? AF_INET, 0);
  b.writeUInt8(m.dstLen ?? 0, 1);
  b.writeUInt8(m.table ?? RT_TABLE_MAIN, 4);
  b.writeUInt8(m.protocol ?? RTPROT_BOOT, 5);
  b.writeUInt8(m.scope ?? RT_SCOPE_UNIVERSE, 6);
  b.writeUInt8(m.type ?? RTN_UNICAST, 7);
  return b;
}

/** A whole message: nlmsghdr + fixed header + attributes. */
export function message(type: number, flags: number, seq: number, body: Uint8Array[]): Buffer {
  const payload = Buffer.concat(body);
  const len = NLMSG_HDRLEN + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags | NLM_F_REQUEST, 6);
  out.writeUInt32LE(seq >>> 0, 8);
  out.writeUInt32LE(0, 12);
  out.set(payload, NLMSG_HDRLEN);
  return out;
}

export function macBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`not a MAC address: ${mac}`);
  return Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

// ---------------------------------------------------------------- requests
// Each builder returns one message; the caller picks the sequence number.

export interface VethRequest {
  /** Host-side name (generated by the caller, < IFNAMSIZ). */
  hostName: string;
  hostMac: string;
  mtu: number;
  /** Bridge index for the host end. */
  master: number;
  /** Name of the peer inside the target namespace. */
  peerName: string;
  /** An fd of the target network namespace: the peer is created there. */
  peerNetnsFd: number;
  /** The peer's MAC: chosen by the caller, so that it is known (and can be
   *  bound by a filter) before the veth exists. */
  peerMac: string;
}

/** RTM_NEWLINK creating a veth pair, the host end up and on the bridge, the peer
 *  created directly in the namespace of peerNetnsFd (down: the kernel refuses to
 *  open a veth end before the pair is linked, ENOTCONN). Exclusive: fails with
 *  EEXIST instead of touching an existing device. */
export function newVeth(seq: number, r: VethRequest): Buffer {
  const peer = Buffer.concat([
    ifinfomsg(),
    attrStr(IFLA_IFNAME, r.peerName),
    attr(IFLA_ADDRESS, macBytes(r.peerMac)),
    attrU32(IFLA_MTU, r.mtu),
    attrU32(IFLA_NET_NS_FD, r.peerNetnsFd),
  ]);
  return message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [
    ifinfomsg({ flags: IFF_UP, change: IFF_UP }),
    attrStr(IFLA_IFNAME, r.hostName),
    attr(IFLA_ADDRESS, macBytes(r.hostMac)),
    attrU32(IFLA_MTU, r.mtu),
    attrU32(IFLA_MASTER, r.master),
    attrNested(IFLA_LINKINFO, [
      attrStr(IFLA_INFO_KIND, 'veth'),
      attrNested(IFLA_INFO_DATA, [attr(VETH_INFO_PEER, peer)]),
    ]),
  ]);
}

/** A bridge with a fixed MAC (so it does not follow its ports' addresses), at
 *  the kernel's default MTU: an MTU given at creation is not kept (the bridge
 *  follows its ports' smallest MTU, and falls to 1500 when its last port goes);
 *  one set afterwards with setLinkMtu() is. */
export function newBridge(seq: number, name: string, mac: string): Buffer {
  return message(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [
    ifinfomsg(),
    attrStr(IFLA_IFNAME, name),
    attr(IFLA_ADDRESS, macBytes(mac)),
    attrNested(IFLA_LINKINFO, [attrStr(IFLA_INFO_KIND, 'bridge')]),
  ]);
}

export function setLinkUp(seq: number, index: number): Buffer {
  return message(RTM_NEWLINK, NLM_F_ACK, seq, [ifinfomsg({ index, flags: IFF_UP, change: IFF_UP })]);
}

/** RTM_NEWLINK changing the MTU of an existing link. On a bridge the change
 *  counts as the administrator's, so the kernel no longer lowers it to its
 *  ports' minimum (1500 with no ports). */
export function setLinkMtu(seq: number, index: number, mtu: number): Buffer {
  return message(RTM_NEWLINK, NLM_F_ACK, seq, [ifinfomsg({ index }), attrU32(IFLA_MTU, mtu)]);
}

export function delLink(seq: number, index: number): Buffer {
  return message(RTM_DELLINK, NLM_F_ACK, seq, [ifinfomsg({ index })]);
}

/** RTM_DELLINK by name only: no ifindex that could have been reused meanwhile. */
export function delLinkByName(seq: number, name: string): Buffer {
  return message(RTM_DELLINK, NLM_F_ACK, seq, [ifinfomsg(), attrStr(IFLA_IFNAME, name)]);
}

/** RTM_DELNEIGH: forget the host's neighbour entry for `address` on device
 *  `index` (ENOENT when there is none). */
export function delNeighbour(seq: number, index: number, address: string): Buffer {
  const ndmsg = Buffer.alloc(12); // ndm_family, pads, ndm_ifindex, state, flags, type
  ndmsg.writeUInt8(AF_INET, 0);
  ndmsg.writeInt32LE(index, 4);
  return message(RTM_DELNEIGH, NLM_F_ACK, seq, [ndmsg, attrIPv4(NDA_DST, address)]);
}

/** RTM_GETLINK for one device by name (answered with one RTM_NEWLINK or ENODEV). */
export function getLinkByName(seq: number, name: string): Buffer {
  return message(RTM_GETLINK, 0, seq, [ifinfomsg(), attrStr(IFLA_IFNAME, name)]);
}

/** All links, without their counters (a fifth of each reply, unused here). */
export function dumpLinks(seq: number): Buffer {
  return message(RTM_GETLINK, NLM_F_DUMP, seq, [ifinfomsg(), attrU32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)]);
}

export function dumpAddresses(seq: number): Buffer {
  return message(RTM_GETADDR, NLM_F_DUMP, seq, [ifaddrmsg(0, 0)]);
}

export function dumpRoutes(seq: number): Buffer {
  return message(RTM_GETROUTE, NLM_F_DUMP, seq, [rtmsg({ table: 0, protocol: 0, type: 0 })]);
}

/** An address family's settings for all devices (answered with RTM_NEWNETCONF);
 *  for AF_INET, NETCONFA_FORWARDING is net.ipv4.ip_forward. */
export function getNetconf(seq: number, family: number): Buffer {
  const ncm = Buffer.alloc(4);
  ncm.writeUInt8(family, 0);
  return message(RTM_GETNETCONF, 0, seq, [ncm, attrI32(NETCONFA_IFINDEX, NETCONFA_IFINDEX_ALL)]);
}

export function newAddress(seq: number, index: number, address: string, prefixlen: number, broadcast?: string): Buffer {
  const attrs = [attrIPv4(IFA_LOCAL, address), attrIPv4(IFA_ADDRESS, address)];
  if (broadcast) attrs.push(attrIPv4(IFA_BROADCAST, broadcast));
  return message(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [ifaddrmsg(prefixlen, index), ...attrs]);
}

/** A default route via `gateway` out of device `index`. */
export function newDefaultRoute(seq: number, index: number, gateway: string): Buffer {
  return message(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, [
    rtmsg(),
    attrIPv4(RTA_GATEWAY, gateway),
    attrU32(RTA_OIF, index),
  ]);
}

// ---------------------------------------------------------------- decoding

export interface Message {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Payload after the 16-byte header. */
  payload: Buffer;
}

export function parseMessages(buf: Buffer): Message[] {
  const out: Message[] = [];
  let at = 0;
  while (at + NLMSG_HDRLEN <= buf.length) {
    const len = buf.readUInt32LE(at);
    if (len < NLMSG_HDRLEN || at + len > buf.length) throw new Error(`malformed netlink message (length ${len} at ${at})`);
    out.push({
      type: buf.readUInt16LE(at + 4),
      flags: buf.readUInt16LE(at + 6),
      seq: buf.readUInt32LE(at + 8),
      pid: buf.readUInt32LE(at + 12),
      payload: buf.subarray(at + NLMSG_HDRLEN, at + len),
    });
    at += align4(len);
  }
  return out;
}

export interface Attr {
  type: number;
  nested: boolean;
  value: Buffer;
}

export function parseAttrs(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const len = buf.readUInt16LE(at);
    const type = buf.readUInt16LE(at + 2);
    if (len < 4 || at + len > buf.length) throw new Error(`malformed netlink attribute (length ${len} at ${at})`);
    out.push({ type: type & NLA_TYPE_MASK, nested: (type & NLA_F_NESTED) !== 0, value: buf.subarray(at + 4, at + len) });
    at += align4(len);
  }
  return out;
}

const findAttr = (attrs: Attr[], type: number): Buffer | undefined => attrs.find((a) => a.type === type)?.value;
const cString = (b: Buffer): string => {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
};

export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;
export const NLMSGERR_ATTR_MSG = 1;

/** The errno of an NLMSG_ERROR message (0 = ack) and the extended-ack text, if any.
 *  Layout: int error; the original nlmsghdr (with its payload unless NLM_F_CAPPED);
 *  then NLMSGERR_ATTR_* attributes when NLM_F_ACK_TLVS is set. */
export function parseError(m: Pick<Message, 'flags' | 'payload'>): { errno: number; message?: string } {
  const errno = 0 - m.payload.readInt32LE(0);
  if (!(m.flags & NLM_F_ACK_TLVS) || m.payload.length < 4 + NLMSG_HDRLEN) return { errno };
  const origLen = m.payload.readUInt32LE(4);
  const tlvAt = 4 + (m.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(origLen));
  if (tlvAt > m.payload.length) return { errno };
  const text = findAttr(parseAttrs(m.payload.subarray(tlvAt)), NLMSGERR_ATTR_MSG);
  return text ? { errno, message: cString(text) } : { errno };
}

export interface Link {
  index: number;
  flags: number;
  name: string;
  mtu?: number;
  master?: number;
  kind?: string;
  mac?: string;
  /** IFLA_LINK: for a veth, its peer's ifindex (in the peer's namespace). */
  link?: number;
}

/** Decodes an RTM_NEWLINK payload (ifinfomsg + attributes). Reads only the
 *  attributes it reports, without an object per attribute: a link carries ~50
 *  of them (~1.5 KB), and GC decodes every link of the host on each call. */
export function parseLink(payload: Buffer): Link {
  // Read in place, without a parsed attribute list or a Buffer per value: a
  // connect parses every link on the host once, cold (interpreted), and this
  // halves that cost per link.
  const link: Link = { index: payload.readInt32LE(4), flags: payload.readUInt32LE(8), name: '' };
  const end = payload.length;
  for (let at = IFINFOMSG_LEN; at + 4 <= end; ) {
    const len = payload[at]! | (payload[at + 1]! << 8);
    if (len < 4 || at + len > end) throw new Error(`malformed netlink attribute (length ${len} at ${at})`);
    const type = (payload[at + 2]! | (payload[at + 3]! << 8)) & NLA_TYPE_MASK;
    const v = at + 4;
    const vlen = len - 4;
    if (type === IFLA_IFNAME) link.name = cStringAt(payload, v, v + vlen);
    else if (type === IFLA_MTU && vlen >= 4) link.mtu = payload.readUInt32LE(v);
    else if (type === IFLA_MASTER && vlen >= 4) link.master = payload.readUInt32LE(v);
    else if (type === IFLA_LINK && vlen >= 4 && payload.readInt32LE(v) !== 0) link.link = payload.readInt32LE(v);
    else if (type === IFLA_ADDRESS && vlen === 6) link.mac = `${hex2(payload[v]!)}:${hex2(payload[v + 1]!)}:${hex2(payload[v + 2]!)}:${hex2(payload[v + 3]!)}:${hex2(payload[v + 4]!)}:${hex2(payload[v + 5]!)}`;
    else if (type === IFLA_LINKINFO) {
      const kind = kindAt(payload, v, v + vlen);
      if (kind !== undefined) link.kind = kind;
    }
    at += (len + 3) & ~3;
  }
  return link;
}

const hex2 = (b: number): string => (b < 16 ? '0' : '') + b.toString(16);

/** The string in [from, to) up to its first NUL. */
function cStringAt(b: Buffer, from: number, to: number): string {
  let nul = from;
  while (nul < to && b[nul] !== 0) nul++;
  return b.toString('utf8', from, nul);
}

/** IFLA_INFO_KIND among the attributes in [from, to) (an IFLA_LINKINFO's), the first one. */
function kindAt(b: Buffer, from: number, to: number): string | undefined {
  for (let at = from; at + 4 <= to; ) {
    const len = b[at]! | (b[at + 1]! << 8);
    if (len < 4 || at + len > to) throw new Error(`malformed netlink attribute (length ${len} at ${at - from})`);
    if (((b[at + 2]! | (b[at + 3]! << 8)) & NLA_TYPE_MASK) === IFLA_INFO_KIND) return cStringAt(b, at + 4, at + len);
    at += (len + 3) & ~3;
  }
  return undefined;
}

/** NETCONFA_FORWARDING of an RTM_NEWNETCONF payload (netconfmsg, padded to 4, then attributes). */
export function parseNetconfForwarding(payload: Buffer): number | undefined {
  return findAttr(parseAttrs(payload.subarray(4)), NETCONFA_FORWARDING)?.readInt32LE(0);
}

export interface Address {
  index: number;
  family: number;
  prefixlen: number;
  address?: string;
}

export function parseAddress(payload: Buffer): Address {
  const family = payload.readUInt8(0);
  const attrs = parseAttrs(payload.subarray(IFADDRMSG_LEN));
  const local = findAttr(attrs, IFA_LOCAL) ?? findAttr(attrs, IFA_ADDRESS);
  return {
    family,
    prefixlen: payload.readUInt8(1),
    index: payload.readUInt32LE(4),
    ...(family === AF_INET && local ? { address: bytesToIpv4(local) } : {}),
  };
}

export interface Route {
  family: number;
  dstLen: number;
  table: number;
  type: number;
  dst?: string;
  gateway?: string;
  oif?: number;
}

export function parseRoute(payload: Buffer): Route {
  const family = payload.readUInt8(0);
  const attrs = parseAttrs(payload.subarray(RTMSG_LEN));
  const table = findAttr(attrs, RTA_TABLE);
  const dst = findAttr(attrs, RTA_DST);
  const gw = findAttr(attrs, RTA_GATEWAY);
  const oif = findAttr(attrs, RTA_OIF);
  return {
    family,
    dstLen: payload.readUInt8(1),
    table: table ? table.readUInt32LE(0) : payload.readUInt8(4),
    type: payload.readUInt8(7),
    ...(family === AF_INET && dst ? { dst: bytesToIpv4(dst) } : {}),
    ...(family === AF_INET && gw ? { gateway: bytesToIpv4(gw) } : {}),
    ...(oif ? { oif: oif.readUInt32LE(0) } : {}),
  };
}
