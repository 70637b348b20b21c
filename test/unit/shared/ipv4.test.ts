import test from 'ava';
import IPCIDR from 'ip-cidr';
import { bytesToIpv4, cidrRange, intToIpv4, ipv4Bytes, ipv4ToInt, isIPv4, isIPv6, overlaps } from '../../../packages/shared/src/ipv4.ts';

test('conversions round-trip', (t) => {
  for (const a of ['0.0.0.0', '10.231.0.1', '255.255.255.255', '192.168.1.254']) t.is(intToIpv4(ipv4ToInt(a)), a);
  t.throws(() => ipv4ToInt('1.2.3'));
});

test('overlap of CIDRs', (t) => {
  t.true(overlaps('10.0.0.0/8', '10.231.0.0/24'));
  t.true(overlaps('10.231.0.0/24', '10.231.0.128/25'));
  t.false(overlaps('10.231.0.0/24', '10.231.1.0/24'));
  t.true(overlaps('0.0.0.0/0', '192.168.0.0/16'));
});

test('addresses: IPv4 dotted quads and IPv6 text forms', (t) => {
  for (const a of ['1.2.3.4', '0.0.0.0', '255.255.255.255']) t.true(isIPv4(a), a);
  for (const a of ['1.2.3', '01.2.3.4', '256.1.1.1', '1.2.3.4.5', '', 'a.b.c.d', '1.2.3.-4']) t.false(isIPv4(a), a);
  for (const a of ['::', '::1', '1::', 'fe80::1', '2001:db8::8a2e:370:7334', '1:2:3:4:5:6:7:8', '::ffff:1.2.3.4', '1:2:3:4:5:6:1.2.3.4']) t.true(isIPv6(a), a);
  for (const a of ['', ':', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::', '1.2.3.4::', '1:2:3:4:5:6:7:1.2.3.4', 'fe80::1%eth0', '1:2:3:4:5:6:7']) t.false(isIPv6(a), a);
});

test('CIDR ranges: host bits ignored, /32 and /0; overlap at a single shared address', (t) => {
  t.deepEqual(cidrRange('10.231.0.77/24'), { network: ipv4ToInt('10.231.0.0'), broadcast: ipv4ToInt('10.231.0.255') });
  t.deepEqual(cidrRange('10.231.0.77/32'), { network: ipv4ToInt('10.231.0.77'), broadcast: ipv4ToInt('10.231.0.77') });
  t.deepEqual(cidrRange('10.231.0.77/0'), { network: 0, broadcast: 0xffffffff });
  t.deepEqual(cidrRange('255.255.255.255/1'), { network: 0x80000000, broadcast: 0xffffffff });
  t.true(overlaps('10.0.0.0/24', '10.0.0.255/32'));
  t.true(overlaps('10.0.0.255/32', '10.0.0.0/24'));
  t.true(overlaps('10.0.0.0/32', '10.0.0.0/24'));
  t.false(overlaps('10.0.0.0/24', '10.0.1.0/32'));
  t.false(overlaps('10.0.1.0/32', '10.0.0.0/24'));
});

test('bytes in network order', (t) => {
  t.deepEqual([...ipv4Bytes('10.231.0.254')], [10, 231, 0, 254]);
  t.deepEqual([...ipv4Bytes('255.0.0.1')], [255, 0, 0, 1]);
  t.is(bytesToIpv4(Uint8Array.from([192, 0, 2, 1, 9, 9])), '192.0.2.1');
  t.is(ipv4ToInt('255.255.255.255'), 0xffffffff);
  t.is(ipv4ToInt('128.0.0.1'), 0x80000001);
  t.is(intToIpv4(0x80000001), '128.0.0.1');
  t.throws(() => ipv4ToInt('1.2.3.4 '), { message: 'not an IPv4 address: 1.2.3.4 ' });
});

test('IPv6 text forms: edge cases', (t) => {
  for (const a of ['::1.2.3.4', '1::1.2.3.4', '1:2:3:4:5:6::', '::2:3:4:5:6:7:8', 'ABCD:ef01::', '0:0:0:0:0:0:0:0']) t.true(isIPv6(a), a);
  for (const a of ['1:2:3:4:5:6:7::8', '::1.2.3', '::1.2.3.04', '1.2.3.4', '1:2:3:4:5:6:7:8::', ':1:2:3:4:5:6:7', '1:2:3:4:5:6:7:', '::12345', 'x::']) t.false(isIPv6(a), a);
});

// ip-cidr (a devDependency: too slow to load on the programs' per-sandbox path,
// README "Dependencies") is the independent reference for the IPv4 math here.
test('ranges, overlaps and address syntax agree with ip-cidr on 2000 seeded random cases', (t) => {
  let seed = 0x2026_1126;
  const rand = (n: number): number => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return seed % n;
  };
  const randomCidr = (): string => `${intToIpv4(((rand(0x10000) << 16) | rand(0x10000)) >>> 0)}/${rand(33)}`;
  for (let i = 0; i < 2000; i++) {
    const a = randomCidr();
    const b = i % 2 ? randomCidr() : `${intToIpv4((cidrRange(a).network + rand(256)) >>> 0)}/${rand(33)}`;
    const ra = new IPCIDR(a);
    const rb = new IPCIDR(b);
    const ours = cidrRange(a);
    t.is(intToIpv4(ours.network), String(ra.start()), a);
    t.is(intToIpv4(ours.broadcast), String(ra.end()), a);
    t.is(overlaps(a, b), ra.contains(String(rb.start())) || rb.contains(String(ra.start())), `${a} ${b}`);
  }
  for (const text of ['10.0.0.1', '10.0.0.01', '1.2.3', '256.1.1.1', '0.0.0.0', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.-1']) {
    t.is(isIPv4(text), IPCIDR.isValidAddress(text) && text.includes('.') && !text.includes(':'), text);
  }
});
