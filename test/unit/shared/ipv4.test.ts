import test from 'ava';
import { intToIpv4, ipv4ToInt, isIPv4, isIPv6, overlaps } from '../../../packages/shared/src/ipv4.ts';

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
