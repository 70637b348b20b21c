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
  const m = nl.newVeth(42, { hostName: 'nsb01234567', hostMac: 'fe:01:02:03:04:05', mtu: 1400, master: 7, peerName: 'eth0', peerNetnsFd: 9 });
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

test('a bridge request carries its kind, MTU and fixed MAC', (t) => {
  const m = nl.parseMessages(nl.newBridge(1, 'nstest0', 1400, '02:aa:bb:cc:dd:ee'))[0]!;
  const l = nl.parseLink(m.payload);
  t.like(l, { name: 'nstest0', kind: 'bridge', mtu: 1400, mac: '02:aa:bb:cc:dd:ee' });
});
