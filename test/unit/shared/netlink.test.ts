import test from 'ava';
import * as nl from '../../../packages/shared/src/netlink.ts';
import { bytesToIpv4, ipv4Bytes } from '../../../packages/shared/src/ipv4.ts';

function errorMessage(errno: number, flags: number, tlvs: Buffer[] = []): nl.Message {
  const orig = nl.setLinkUp(9, 3);
  const body = Buffer.alloc(4);
  body.writeInt32LE(-errno);
  const hdrOnly = orig.subarray(0, nl.NLMSG_HDRLEN);
  const payload = Buffer.concat([body, flags & nl.NLM_F_CAPPED ? hdrOnly : orig, ...tlvs]);
  return { type: nl.NLMSG_ERROR, flags, seq: 9, pid: 0, payload };
}

test('attributes are padded to 4 bytes and carry their unpadded length', (t) => {
  const a = nl.attrStr(nl.IFLA_IFNAME, 'eth0');
  t.is(a.length, 12);
  t.is(a.readUInt16LE(0), 9);
  t.is(a.readUInt16LE(2), nl.IFLA_IFNAME);
  t.deepEqual([...a.subarray(4, 9)], [...Buffer.from('eth0\0')]);
  t.deepEqual([...a.subarray(9)], [0, 0, 0]);
});

test('nested attributes set NLA_F_NESTED and parse back', (t) => {
  const n = nl.attrNested(nl.IFLA_LINKINFO, [nl.attrStr(nl.IFLA_INFO_KIND, 'veth')]);
  t.is(n.readUInt16LE(2), nl.IFLA_LINKINFO | nl.NLA_F_NESTED);
  const [outer] = nl.parseAttrs(n);
  t.is(outer!.type, nl.IFLA_LINKINFO);
  t.true(outer!.nested);
  const [kind] = nl.parseAttrs(outer!.value);
  t.is(kind!.value.toString('utf8', 0, 4), 'veth');
});

test('a veth request has the header, host attributes and the peer inside IFLA_INFO_DATA', (t) => {
  const m = nl.newVeth(42, { hostName: 'nsb01234567', hostMac: 'fe:01:02:03:04:05', mtu: 1400, master: 7, peerName: 'eth0', peerNetnsFd: 9, peerMac: '02:0a:0b:0c:0d:0e' });
  t.is(m.readUInt32LE(0), m.length);
  t.is(m.readUInt16LE(4), nl.RTM_NEWLINK);
  t.is(m.readUInt16LE(6), nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL);
  t.is(m.readUInt32LE(8), 42);
  const [msg] = nl.parseMessages(m);
  const host = nl.parseLink(msg!.payload);
  t.is(host.name, 'nsb01234567');
  t.is(host.mtu, 1400);
  t.is(host.master, 7);
  t.is(host.kind, 'veth');
  t.is(host.mac, 'fe:01:02:03:04:05');
  t.is(host.flags & nl.IFF_UP, nl.IFF_UP);
  // Walk down to the peer: IFLA_LINKINFO > IFLA_INFO_DATA > VETH_INFO_PEER.
  const attrs = nl.parseAttrs(msg!.payload.subarray(nl.IFINFOMSG_LEN));
  const linkinfo = nl.parseAttrs(attrs.find((a) => a.type === nl.IFLA_LINKINFO)!.value);
  const data = nl.parseAttrs(linkinfo.find((a) => a.type === nl.IFLA_INFO_DATA)!.value);
  const peerBytes = data.find((a) => a.type === nl.VETH_INFO_PEER)!.value;
  const peer = nl.parseLink(peerBytes);
  t.is(peer.name, 'eth0');
  t.is(peer.mtu, 1400);
  t.is(peer.mac, '02:0a:0b:0c:0d:0e', 'the sandbox end gets the MAC the caller chose (and binds)');
  t.is(peer.flags, 0, 'the kernel refuses to bring a veth end up before the pair exists');
  const nsfd = nl.parseAttrs(peerBytes.subarray(nl.IFINFOMSG_LEN)).find((a) => a.type === nl.IFLA_NET_NS_FD)!;
  t.is(nsfd.value.readUInt32LE(0), 9);
});

test('address and route requests encode IPv4 and the interface', (t) => {
  const a = nl.parseMessages(nl.newAddress(1, 5, '10.231.0.2', 24, '10.231.0.255'))[0]!;
  t.is(a.type, nl.RTM_NEWADDR);
  const addr = nl.parseAddress(a.payload);
  t.deepEqual(addr, { family: nl.AF_INET, prefixlen: 24, index: 5, address: '10.231.0.2' });
  const bcast = nl.parseAttrs(a.payload.subarray(nl.IFADDRMSG_LEN)).find((x) => x.type === nl.IFA_BROADCAST)!;
  t.is(bytesToIpv4(bcast.value), '10.231.0.255');

  const r = nl.parseMessages(nl.newDefaultRoute(2, 5, '10.231.0.1'))[0]!;
  t.is(r.type, nl.RTM_NEWROUTE);
  const route = nl.parseRoute(r.payload);
  t.is(route.dstLen, 0);
  t.is(route.gateway, '10.231.0.1');
  t.is(route.oif, 5);
  t.is(route.table, nl.RT_TABLE_MAIN);
  t.is(route.type, nl.RTN_UNICAST);
});

test('several messages in one buffer parse in order, with 4-byte alignment', (t) => {
  const buf = Buffer.concat([nl.setLinkUp(1, 1), nl.getLinkByName(2, 'abcde'), nl.delLink(3, 4)]);
  const ms = nl.parseMessages(buf);
  t.deepEqual(ms.map((m) => [m.type, m.seq]), [[nl.RTM_NEWLINK, 1], [nl.RTM_GETLINK, 2], [nl.RTM_DELLINK, 3]]);
  t.is(nl.parseLink(ms[2]!.payload).index, 4);
});

test('errors: plain, acks, and extended-ack messages', (t) => {
  t.deepEqual(nl.parseError(errorMessage(0, 0)), { errno: 0 });
  t.deepEqual(nl.parseError(errorMessage(17, 0)), { errno: 17 });
  const tlv = nl.attrStr(nl.NLMSGERR_ATTR_MSG, 'Unknown device type');
  t.deepEqual(nl.parseError(errorMessage(95, nl.NLM_F_ACK_TLVS | nl.NLM_F_CAPPED, [tlv])), { errno: 95, message: 'Unknown device type' });
  t.deepEqual(nl.parseError(errorMessage(95, nl.NLM_F_ACK_TLVS, [tlv])), { errno: 95, message: 'Unknown device type' });
});

test('malformed input is rejected, not misread', (t) => {
  const m = nl.setLinkUp(1, 1);
  m.writeUInt32LE(m.length + 8, 0);
  t.throws(() => nl.parseMessages(m), { message: /malformed/ });
  const a = nl.attrU32(1, 5);
  a.writeUInt16LE(2, 0);
  t.throws(() => nl.parseAttrs(a), { message: /malformed/ });
  t.throws(() => ipv4Bytes('10.0.0'), { message: /IPv4/ });
  t.throws(() => ipv4Bytes('10.0.0.256'));
  t.throws(() => nl.macBytes('fe:01:02:03:04'));
});

test('dump requests ask for NLM_F_DUMP', (t) => {
  for (const build of [nl.dumpLinks, nl.dumpAddresses, nl.dumpRoutes]) {
    const m = nl.parseMessages(build(5))[0]!;
    t.is(m.flags & nl.NLM_F_DUMP, nl.NLM_F_DUMP);
  }
});

test('a bridge request carries its kind and fixed MAC, and no MTU (one given at creation is not kept)', (t) => {
  const m = nl.parseMessages(nl.newBridge(1, 'nstest0', '02:aa:bb:cc:dd:ee'))[0]!;
  const l = nl.parseLink(m.payload);
  t.like(l, { name: 'nstest0', kind: 'bridge', mac: '02:aa:bb:cc:dd:ee' });
  t.is(l.mtu, undefined);
});

test('an MTU change names the link by index and carries only the MTU', (t) => {
  const m = nl.parseMessages(nl.setLinkMtu(4, 17, 65520))[0]!;
  t.like(m, { type: nl.RTM_NEWLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq: 4 });
  t.like(nl.parseLink(m.payload), { index: 17, flags: 0, mtu: 65520 });
  t.deepEqual(nl.parseAttrs(m.payload.subarray(nl.IFINFOMSG_LEN)).map((a) => a.type), [nl.IFLA_MTU]);
  t.deepEqual([...m.payload.subarray(8, 16)], Array(8).fill(0), 'flags and change 0: nothing else is changed');
});

/** An RTM_NEWLINK-style payload: ifinfomsg then the attributes. */
const linkPayload = (info: nl.IfInfo, attrs: Buffer[]): Buffer => Buffer.concat([nl.ifinfomsg(info), ...attrs]);

test('fixed headers: ifinfomsg, ifaddrmsg and rtmsg byte by byte', (t) => {
  t.deepEqual([...nl.ifinfomsg({ family: 7, type: 0x0102, index: -2, flags: 0x80000001, change: 0xffffffff })],
    [7, 0, 2, 1, 0xfe, 0xff, 0xff, 0xff, 1, 0, 0, 0x80, 0xff, 0xff, 0xff, 0xff]);
  t.deepEqual([...nl.ifinfomsg()], Array(16).fill(0));
  t.deepEqual([...nl.ifaddrmsg(24, 0x01020304, 253)], [nl.AF_INET, 24, 0, 253, 4, 3, 2, 1]);
  t.deepEqual([...nl.ifaddrmsg(8, 1)], [nl.AF_INET, 8, 0, nl.RT_SCOPE_UNIVERSE, 1, 0, 0, 0]);
  t.deepEqual([...nl.rtmsg()], [nl.AF_INET, 0, 0, 0, nl.RT_TABLE_MAIN, nl.RTPROT_BOOT, nl.RT_SCOPE_UNIVERSE, nl.RTN_UNICAST, 0, 0, 0, 0]);
  t.deepEqual([...nl.rtmsg({ family: 10, dstLen: 64, table: 0, protocol: 0, scope: 200, type: 0 })], [10, 64, 0, 0, 0, 0, 200, 0, 0, 0, 0, 0]);
});

test('a message: length without padding, flags with NLM_F_REQUEST, the sequence number, pid 0, padded body', (t) => {
  const m = nl.message(nl.RTM_GETLINK, nl.NLM_F_DUMP, 0x1_0000_0005, [Buffer.from([1, 2, 3, 4, 5])]);
  t.is(m.length, 24);
  t.is(m.readUInt32LE(0), 21);
  t.is(m.readUInt16LE(4), nl.RTM_GETLINK);
  t.is(m.readUInt16LE(6), nl.NLM_F_DUMP | nl.NLM_F_REQUEST);
  t.is(m.readUInt32LE(8), 5);
  t.is(m.readUInt32LE(12), 0);
  t.deepEqual([...m.subarray(16)], [1, 2, 3, 4, 5, 0, 0, 0]);
  t.deepEqual([...nl.attrI32(1, -1)], [8, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]);
  t.deepEqual([...nl.attrU32(2, -1)], [8, 0, 2, 0, 0xff, 0xff, 0xff, 0xff]);
  t.deepEqual([...nl.attrIPv4(3, '10.0.0.1')], [8, 0, 3, 0, 10, 0, 0, 1]);
  t.deepEqual([...nl.attr(4, new Uint8Array(0))], [4, 0, 4, 0]);
});

test('MAC addresses: six hex pairs, either case', (t) => {
  t.deepEqual([...nl.macBytes('FE:0a:Bb:00:ff:10')], [0xfe, 0x0a, 0xbb, 0x00, 0xff, 0x10]);
  for (const bad of ['fe:01:02:03:04:05:06', 'fe-01-02-03-04-05', 'fe:01:02:03:04:5', 'fe:01:02:03:04:0g', ' fe:01:02:03:04:05']) {
    t.throws(() => nl.macBytes(bad), { message: `not a MAC address: ${bad}` }, bad);
  }
});

test('the other requests: their types, flags and contents', (t) => {
  const one = (b: Buffer): nl.Message => {
    const ms = nl.parseMessages(b);
    t.is(ms.length, 1);
    return ms[0]!;
  };
  const up = one(nl.setLinkUp(1, 9));
  t.like(up, { type: nl.RTM_NEWLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK });
  t.like(nl.parseLink(up.payload), { index: 9, flags: nl.IFF_UP });
  t.is(up.payload.readUInt32LE(12), nl.IFF_UP, 'change mask');
  const del = one(nl.delLinkByName(2, 'nsb01234567'));
  t.like(del, { type: nl.RTM_DELLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK, seq: 2 });
  t.like(nl.parseLink(del.payload), { index: 0, name: 'nsb01234567' });
  t.like(one(nl.delLink(3, 4)), { type: nl.RTM_DELLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK });
  const get = one(nl.getLinkByName(4, 'eth0'));
  t.like(get, { type: nl.RTM_GETLINK, flags: nl.NLM_F_REQUEST });
  t.is(nl.parseLink(get.payload).name, 'eth0');
  const links = one(nl.dumpLinks(5));
  t.like(links, { type: nl.RTM_GETLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_DUMP });
  const mask = nl.parseAttrs(links.payload.subarray(nl.IFINFOMSG_LEN));
  t.deepEqual(mask.map((a) => [a.type, a.value.readUInt32LE(0)]), [[nl.IFLA_EXT_MASK, nl.RTEXT_FILTER_SKIP_STATS]]);
  t.like(one(nl.dumpAddresses(6)), { type: nl.RTM_GETADDR });
  const routes = one(nl.dumpRoutes(7));
  t.like(routes, { type: nl.RTM_GETROUTE });
  t.deepEqual([...routes.payload], [nl.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  const conf = one(nl.getNetconf(8, nl.AF_INET));
  t.like(conf, { type: nl.RTM_GETNETCONF, flags: nl.NLM_F_REQUEST });
  t.deepEqual([...conf.payload.subarray(0, 4)], [nl.AF_INET, 0, 0, 0]);
  t.deepEqual(nl.parseAttrs(conf.payload.subarray(4)).map((a) => [a.type, a.value.readInt32LE(0)]), [[nl.NETCONFA_IFINDEX, -1]]);
  const addr = one(nl.newAddress(9, 5, '10.0.0.2', 24));
  t.like(addr, { type: nl.RTM_NEWADDR, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL });
  t.deepEqual(nl.parseAttrs(addr.payload.subarray(nl.IFADDRMSG_LEN)).map((a) => a.type), [nl.IFA_LOCAL, nl.IFA_ADDRESS], 'no broadcast unless given');
  t.like(one(nl.newDefaultRoute(10, 5, '10.0.0.1')), { flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL });
  const bridge = one(nl.newBridge(11, 'br0', '02:00:00:00:00:01'));
  t.like(bridge, { type: nl.RTM_NEWLINK, flags: nl.NLM_F_REQUEST | nl.NLM_F_ACK | nl.NLM_F_CREATE | nl.NLM_F_EXCL });
  t.is(nl.parseLink(bridge.payload).flags, 0);
});

test('links: the attributes decoded, odd ones ignored', (t) => {
  const full = linkPayload({ index: 12, flags: 0x1003 }, [
    nl.attrStr(nl.IFLA_IFNAME, 'veth0'),
    nl.attrU32(nl.IFLA_MTU, 9000),
    nl.attrU32(nl.IFLA_MASTER, 3),
    nl.attrI32(nl.IFLA_LINK, 44),
    nl.attr(nl.IFLA_ADDRESS, Buffer.from([0xfe, 1, 2, 3, 4, 0x0a])),
    nl.attrNested(nl.IFLA_LINKINFO, [nl.attrStr(nl.IFLA_INFO_KIND, 'veth')]),
  ]);
  t.deepEqual(nl.parseLink(full), { index: 12, flags: 0x1003, name: 'veth0', mtu: 9000, master: 3, link: 44, mac: 'fe:01:02:03:04:0a', kind: 'veth' });
  const odd = linkPayload({ index: 1 }, [
    nl.attr(nl.IFLA_IFNAME, Buffer.from('lo')),
    nl.attr(nl.IFLA_MTU, Buffer.from([1, 2])),
    nl.attr(nl.IFLA_MASTER, Buffer.from([1, 2])),
    nl.attrI32(nl.IFLA_LINK, 0),
    nl.attr(nl.IFLA_ADDRESS, Buffer.alloc(16)),
    nl.attrNested(nl.IFLA_LINKINFO, [nl.attrStr(nl.IFLA_INFO_DATA, 'x')]),
  ]);
  t.deepEqual(nl.parseLink(odd), { index: 1, flags: 0, name: 'lo' }, 'a name without NUL, short numbers, link 0, a long address, no kind');
  const bad = linkPayload({}, [nl.attrStr(nl.IFLA_IFNAME, 'x')]);
  bad.writeUInt16LE(3, nl.IFINFOMSG_LEN);
  t.throws(() => nl.parseLink(bad), { message: `malformed netlink attribute (length 3 at ${nl.IFINFOMSG_LEN})` });
  const long = linkPayload({}, [nl.attrStr(nl.IFLA_IFNAME, 'x')]);
  long.writeUInt16LE(9, nl.IFINFOMSG_LEN);
  t.throws(() => nl.parseLink(long), { message: /malformed/ });
  t.deepEqual(nl.parseLink(Buffer.concat([linkPayload({ index: 2 }, []), Buffer.from([1, 2, 3])])), { index: 2, flags: 0, name: '' }, 'a tail shorter than an attribute header is ignored');
});

test('addresses, routes and netconf replies', (t) => {
  const v4 = Buffer.concat([nl.ifaddrmsg(16, 7), nl.attrIPv4(nl.IFA_ADDRESS, '10.1.2.3')]);
  t.deepEqual(nl.parseAddress(v4), { family: nl.AF_INET, prefixlen: 16, index: 7, address: '10.1.2.3' }, 'IFA_ADDRESS without IFA_LOCAL');
  const both = Buffer.concat([nl.ifaddrmsg(16, 7), nl.attrIPv4(nl.IFA_ADDRESS, '10.9.9.9'), nl.attrIPv4(nl.IFA_LOCAL, '10.1.2.3')]);
  t.is(nl.parseAddress(both).address, '10.1.2.3', 'IFA_LOCAL first');
  const v6 = Buffer.from(v4);
  v6.writeUInt8(10, 0);
  t.deepEqual(nl.parseAddress(v6), { family: 10, prefixlen: 16, index: 7 });
  t.deepEqual(nl.parseAddress(nl.ifaddrmsg(8, 1)), { family: nl.AF_INET, prefixlen: 8, index: 1 });

  const route = Buffer.concat([nl.rtmsg({ dstLen: 24, table: 5, type: 2 }), nl.attrIPv4(nl.RTA_DST, '10.2.0.0'), nl.attrU32(nl.RTA_TABLE, 1000), nl.attrU32(nl.RTA_OIF, 3)]);
  t.deepEqual(nl.parseRoute(route), { family: nl.AF_INET, dstLen: 24, table: 1000, type: 2, dst: '10.2.0.0', oif: 3 });
  t.deepEqual(nl.parseRoute(nl.rtmsg({ table: 5 })), { family: nl.AF_INET, dstLen: 0, table: 5, type: nl.RTN_UNICAST });
  const r6 = Buffer.concat([nl.rtmsg({ family: 10 }), nl.attrIPv4(nl.RTA_DST, '10.2.0.0'), nl.attrIPv4(nl.RTA_GATEWAY, '10.2.0.1')]);
  t.deepEqual(nl.parseRoute(r6), { family: 10, dstLen: 0, table: nl.RT_TABLE_MAIN, type: nl.RTN_UNICAST });

  const conf = Buffer.concat([Buffer.from([nl.AF_INET, 0, 0, 0]), nl.attrI32(nl.NETCONFA_IFINDEX, -1), nl.attrI32(nl.NETCONFA_FORWARDING, 1)]);
  t.is(nl.parseNetconfForwarding(conf), 1);
  t.is(nl.parseNetconfForwarding(Buffer.from([nl.AF_INET, 0, 0, 0])), undefined);
});

test('messages and attributes: exact bounds', (t) => {
  const m = nl.setLinkUp(1, 1);
  t.is(nl.parseMessages(Buffer.concat([m, Buffer.alloc(15)])).length, 1, 'a tail shorter than a header is ignored');
  const short = Buffer.from(m);
  short.writeUInt32LE(15, 0);
  t.throws(() => nl.parseMessages(short), { message: 'malformed netlink message (length 15 at 0)' });
  const exact = Buffer.from(m);
  t.is(nl.parseMessages(exact)[0]!.payload.length, m.length - 16);
  const a = Buffer.concat([nl.attrU32(1, 5), nl.attrU32(2, 6)]);
  t.deepEqual(nl.parseAttrs(a).map((x) => [x.type, x.nested, x.value.readUInt32LE(0)]), [[1, false, 5], [2, false, 6]]);
  t.deepEqual(nl.parseAttrs(Buffer.concat([a, Buffer.alloc(3)])).length, 2);
  const over = nl.attrU32(1, 5);
  over.writeUInt16LE(9, 0);
  t.throws(() => nl.parseAttrs(over), { message: 'malformed netlink attribute (length 9 at 0)' });
  t.deepEqual(nl.parseAttrs(nl.attr(1 | nl.NLA_F_NESTED | 0x4000, Buffer.alloc(0))), [{ type: 1, nested: true, value: Buffer.alloc(0) }]);
});

test('errors: an extended ack without a message, a capped original, a truncated payload', (t) => {
  t.deepEqual(nl.parseError(errorMessage(22, nl.NLM_F_ACK_TLVS)), { errno: 22 }, 'TLV flag but no TLVs');
  t.deepEqual(nl.parseError(errorMessage(22, nl.NLM_F_ACK_TLVS, [nl.attrU32(2, 1)])), { errno: 22 }, 'other TLVs only');
  const tlv = nl.attrStr(nl.NLMSGERR_ATTR_MSG, 'bad');
  t.deepEqual(nl.parseError(errorMessage(1, 0, [tlv])), { errno: 1 }, 'TLVs without the flag are not read');
  const short = { flags: nl.NLM_F_ACK_TLVS, payload: Buffer.from([0xfe, 0xff, 0xff, 0xff, 1, 2, 3]) };
  t.deepEqual(nl.parseError(short), { errno: 2 });
  const cut = errorMessage(5, nl.NLM_F_ACK_TLVS);
  cut.payload.writeUInt32LE(4096, 4);
  t.deepEqual(nl.parseError(cut), { errno: 5 }, 'an original longer than the payload');
  const noNul = { flags: nl.NLM_F_ACK_TLVS | nl.NLM_F_CAPPED, payload: Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), Buffer.alloc(16), nl.attr(nl.NLMSGERR_ATTR_MSG, Buffer.from('oops'))]) };
  t.deepEqual(nl.parseError(noNul), { errno: 1, message: 'oops' });
});

test('decoding edges: a header-only message, a 3-byte attribute, an empty attribute, a name that is only NUL, short IFLA_LINK, 6 bytes of another type', (t) => {
  const hdr = nl.message(nl.NLMSG_DONE, 0, 1, []);
  t.is(hdr.length, 16);
  t.deepEqual(nl.parseMessages(hdr).map((m) => [m.type, m.payload.length]), [[nl.NLMSG_DONE, 0]]);
  t.throws(() => nl.parseAttrs(Buffer.concat([Buffer.from([3, 0, 1, 0]), nl.attrU32(2, 7)])), { message: 'malformed netlink attribute (length 3 at 0)' });
  const p = linkPayload({ index: 3 }, [
    nl.attrU32(nl.IFLA_MTU, 0x01000000),
    nl.attr(99, new Uint8Array(0)),
    nl.attr(nl.IFLA_LINK, Buffer.from([1, 2])),
    nl.attr(98, Buffer.from([1, 2, 3, 4, 5, 6])),
    nl.attr(nl.IFLA_IFNAME, Buffer.from([0, 0x41])),
  ]);
  t.deepEqual(nl.parseLink(p), { index: 3, flags: 0, name: '', mtu: 0x01000000 });
  t.is(nl.parseMessages(nl.dumpAddresses(1))[0]!.payload.length, nl.IFADDRMSG_LEN);
});

test('links: the first kind in IFLA_LINKINFO counts, after other attributes; a malformed one inside is refused', (t) => {
  const two = linkPayload({ index: 2 }, [
    nl.attrNested(nl.IFLA_LINKINFO, [nl.attrStr(nl.IFLA_INFO_DATA, 'data'), nl.attrStr(nl.IFLA_INFO_KIND, 'bridge'), nl.attrStr(nl.IFLA_INFO_KIND, 'veth')]),
    nl.attr(nl.IFLA_ADDRESS, Buffer.from([0, 0x10, 0xab, 0xff, 0x0f, 1])),
  ]);
  t.deepEqual(nl.parseLink(two), { index: 2, flags: 0, name: '', kind: 'bridge', mac: '00:10:ab:ff:0f:01' });
  const info = nl.attrNested(nl.IFLA_LINKINFO, [nl.attrStr(nl.IFLA_INFO_KIND, 'veth')]);
  info.writeUInt16LE(200, 4); // the nested attribute claims more than its parent holds
  t.throws(() => nl.parseLink(linkPayload({}, [info])), { message: 'malformed netlink attribute (length 200 at 0)' });
});
