import test from 'ava';
import { pubConfig, pubLease, pubNet } from './_fixtures.ts';
import { parsePublish } from '../../../../packages/shared/src/publish.ts';
import { parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
import { NsboxError } from '../../../../packages/shared/src/error.ts';
import { EXIT } from '../../../../packages/netsetup/src/exit.ts';
import type { Lease } from '../../../../packages/netsetup/src/policy/leases.ts';
import { admitPublish, type HostFacts } from '../../../../packages/netsetup/src/policy/publishing.ts';

const config = pubConfig;
const net = pubNet;
const lease = pubLease;

const user = { uid: 1000, gids: [1000] };

const root = { uid: 0, gids: [0] };

const host: HostFacts = { addresses: ['127.0.0.1', '192.0.2.5', '10.231.0.1'], sockets: [], forwards: [] };

const specs = (...s: string[]) => s.map(parsePublish);

const refusal = (t: import('ava').ExecutionContext, f: () => void): NsboxError => {
  const err = t.throws(f, { instanceOf: NsboxError }) as NsboxError;
  t.false(err.message.includes('\n'));
  return err;
};

test('policy: allowed requests pass, root is not limited by minPort or maxPerLease', (t) => {
  t.notThrows(() => admitPublish(net, user, specs('2000:80', '192.0.2.5:8080:80', '10.231.0.1:8080:81/udp'), [], host));
  t.notThrows(() => admitPublish(net, root, specs('80:80', '1:1', '53:53/udp', '192.0.2.5:443:443'), [], host));
  t.notThrows(() => admitPublish(net, user, [], [], host));
});

test('policy: a host port below minPort is refused for non-root, naming the port and the setting', (t) => {
  const err = refusal(t, () => admitPublish(net, user, specs('8080:80', '1999:80'), [], host));
  t.is(err.exit, EXIT.DENIED);
  t.is(
    err.message,
    'publish 1999:80/tcp: host port 1999 is below 2000, the lowest port network "n" lets users other than root publish. Publish a host port from 2000 up, or ask the administrator to lower publish.minPort of network "n" in the configuration',
  );
});

test('policy: maxPerLease, and 0 turns publishing off for non-root', (t) => {
  const many = refusal(t, () => admitPublish(net, user, specs('2001:1', '2002:1', '2003:1', '2004:1'), [], host));
  t.is(many.exit, EXIT.QUOTA);
  t.regex(many.message, /4 ports requested, a sandbox may publish at most 3/);
  const off = { ...net, publish: { minPort: 1024, maxPerLease: 0 } };
  const err = refusal(t, () => admitPublish(off, user, specs('8080:80'), [], host));
  t.is(err.exit, EXIT.DENIED);
  t.regex(err.message, /only root may publish|lets only root publish/);
  t.notThrows(() => admitPublish(off, root, specs('8080:80'), [], host));
});

test('policy: the host address must be one of the host, and not loopback', (t) => {
  const foreign = refusal(t, () => admitPublish(net, root, specs('198.51.100.7:8080:80'), [], host));
  t.is(foreign.exit, EXIT.DENIED);
  t.is(foreign.message, "publish 198.51.100.7:8080:80/tcp: 198.51.100.7 is not an address of this host. Give one of the host's addresses (ip -4 addr), or none for all of them");
  const lo = refusal(t, () => admitPublish(net, root, specs('127.0.0.1:8080:80'), [], host));
  t.is(lo.exit, EXIT.DENIED);
  t.regex(lo.message, /loopback \(127\.0\.0\.0\/8\) is not supported/);
});

test('policy: a port published by any lease conflicts; 0.0.0.0 conflicts with every address; protocols are apart', (t) => {
  const leases = [lease('0000000a', '10.231.0.2', ['8080:80']), lease('0000000b', '10.231.0.3', ['192.0.2.5:9090:90/udp'], 1001)];
  const same = refusal(t, () => admitPublish(net, user, specs('8080:8080'), leases, host));
  t.is(same.exit, EXIT.CONFLICT);
  t.is(same.message, 'publish 8080:8080/tcp: host port 8080/tcp is already published by your lease 0000000a (8080:80/tcp). Choose another host port');
  const specific = refusal(t, () => admitPublish(net, root, specs('192.0.2.5:8080:80'), leases, host));
  t.is(specific.exit, EXIT.CONFLICT);
  const any = refusal(t, () => admitPublish(net, user, specs('9090:90/udp'), leases, host));
  t.is(any.exit, EXIT.CONFLICT);
  t.regex(any.message, /9090\/udp is already published by another sandbox/);
  t.notThrows(() => admitPublish(net, user, specs('8080:80/udp', '9090:90', '10.231.0.1:9090:90/udp'), leases, host));
});

test('policy: the same host port twice in one request is a usage error', (t) => {
  const err = refusal(t, () => admitPublish(net, user, specs('8080:80', '192.0.2.5:8080:81'), [], host));
  t.is(err.exit, EXIT.USAGE);
  t.regex(err.message, /8080\/tcp is also in publish 8080:80\/tcp/);
  t.notThrows(() => admitPublish(net, user, specs('8080:80', '8080:80/udp', '8081:80'), [], host));
});

test('policy: a port bound by a host socket conflicts unless the socket is on loopback or another address', (t) => {
  const sockets = [
    { protocol: 'tcp' as const, address: '0.0.0.0', port: 3000 },
    { protocol: 'tcp' as const, address: '192.0.2.5', port: 3001 },
    { protocol: 'tcp' as const, address: '127.0.0.1', port: 3002 },
    { protocol: 'udp' as const, address: '0.0.0.0', port: 3003 },
  ];
  const h = { ...host, sockets };
  const err = refusal(t, () => admitPublish(net, user, specs('10.231.0.1:3000:80'), [], h));
  t.is(err.exit, EXIT.CONFLICT);
  t.is(err.message, 'publish 10.231.0.1:3000:80/tcp: host port 3000/tcp is in use on the host (a socket is bound to 0.0.0.0:3000). Choose another host port');
  t.is(refusal(t, () => admitPublish(net, user, specs('3001:80'), [], h)).exit, EXIT.CONFLICT);
  t.is(refusal(t, () => admitPublish(net, user, specs('3003:80/udp'), [], h)).exit, EXIT.CONFLICT);
  t.notThrows(() => admitPublish(net, root, specs('3002:80', '10.231.0.1:3001:80', '3000:80/udp', '3003:80'), [], h));
});

test('policy: publish.ports limits non-root callers to the ranges (exit 3, naming them); root is not limited', (t) => {
  const ranged = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', publish: { minPort: 2000, ports: ['8000-8999', '443'] } }] }), 'test').networks[0]!;
  admitPublish(ranged, user, specs('8000:80', '8999:80'), [], host);
  const err = refusal(t, () => admitPublish(ranged, user, specs('9000:80'), [], host));
  t.is(err.exit, EXIT.DENIED);
  t.regex(err.message, /^publish 9000:80\/tcp: host port 9000 is outside the ports network "n" lets users other than root publish \(8000-8999, 443\)\. .*publish\.ports/);
  // minPort still applies inside a range.
  t.is(refusal(t, () => admitPublish(ranged, user, specs('443:80'), [], host)).exit, EXIT.DENIED);
  admitPublish(ranged, root, specs('9000:80', '443:80'), [], host);
});

test("policy: a port the host's own nat table forwards is refused for everyone (exit 8), naming the rule", (t) => {
  const forwards = [{ protocol: 'tcp', ports: [[9000, 9000]] as [number, number][], rule: '-A DOCKER -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.3:80' }];
  const facts = { ...host, forwards };
  for (const who of [user, root]) {
    const err = refusal(t, () => admitPublish(net, who, specs('9000:80'), [], facts));
    t.is(err.exit, EXIT.CONFLICT);
    t.regex(err.message, /host port 9000\/tcp is forwarded by the host's own firewall \(nat rule "-A DOCKER .*"\)\. Choose another host port/);
  }
  admitPublish(net, user, specs('9000:80/udp', '9001:80'), [], facts);
  // Only for addresses the forward takes: one limited to another address does not clash.
  admitPublish(net, user, specs('10.231.0.1:9002:80'), [], { ...host, forwards: [{ ...forwards[0]!, ports: [[9002, 9002]], destinations: ['192.0.2.5/32'] }] });
  t.is(refusal(t, () => admitPublish(net, user, specs('9002:80'), [], { ...host, forwards: [{ ...forwards[0]!, ports: [[9002, 9002]], destinations: ['192.0.2.5/32'] }] })).exit, EXIT.CONFLICT);
});

test('policy: all of 127.0.0.0/8 is loopback, for the address asked for and for the host sockets', (t) => {
  const h: HostFacts = { addresses: ['127.0.0.1', '127.1.2.3', '192.0.2.5'], sockets: [{ protocol: 'tcp', address: '127.0.0.53', port: 5300 }, { protocol: 'tcp', address: '127.255.255.254', port: 5301 }], forwards: [] };
  for (const a of ['127.1.2.3', '127.0.0.1']) {
    const lo = refusal(t, () => admitPublish(net, root, specs(`${a}:8080:80`), [], h));
    t.is(lo.exit, EXIT.DENIED);
    t.regex(lo.message, /loopback \(127\.0\.0\.0\/8\) is not supported/);
  }
  // Sockets on loopback addresses do not take the port on the host's other addresses.
  t.notThrows(() => admitPublish(net, user, specs('5300:80', '5301:81'), [], h));
});

test('policy: with publishing off, a request without ports still passes', (t) => {
  const off = { ...net, publish: { minPort: 1024, maxPerLease: 0 } };
  t.notThrows(() => admitPublish(off, user, [], [], host));
  const err = refusal(t, () => admitPublish(off, user, specs('8080:80'), [], host));
  t.is(err.message, 'network "n": it lets only root publish ports (publish.maxPerLease is 0). Ask the administrator to raise publish.maxPerLease in the configuration');
  const many = refusal(t, () => admitPublish(net, user, specs('2001:1', '2002:1', '2003:1', '2004:1'), [], host));
  t.is(many.message, 'network "n": 4 ports requested, a sandbox may publish at most 3. Publish fewer ports or ask the administrator to raise publish.maxPerLease');
  t.notThrows(() => admitPublish(net, user, specs('2001:1', '2002:1', '2003:1'), [], host));
});

test('policy: the exact messages for a repeated port and loopback; clashes either way round', (t) => {
  const twice = refusal(t, () => admitPublish(net, user, specs('192.0.2.5:8080:80', '8080:81'), [], host));
  t.is(twice.message, 'publish 8080:81/tcp: host port 8080/tcp is also in publish 192.0.2.5:8080:80/tcp. Give each host port once');
  const lo = refusal(t, () => admitPublish(net, root, specs('127.0.0.1:8080:80'), [], host));
  t.is(lo.message, "publish 127.0.0.1:8080:80/tcp: publishing on the host's loopback (127.0.0.0/8) is not supported. Leave the address out (every address of the host) or give another address of the host");
  const leases = [lease('0000000a', '10.231.0.2', ['192.0.2.5:8080:80'], 1001)];
  t.is(refusal(t, () => admitPublish(net, user, specs('8080:80'), leases, host)).exit, EXIT.CONFLICT, 'any address against one address');
  t.notThrows(() => admitPublish(net, user, specs('10.231.0.1:8080:80'), leases, host), 'two different addresses');
  const bound = { ...host, sockets: [{ protocol: 'tcp' as const, address: '192.0.2.5', port: 3001 }] };
  t.is(refusal(t, () => admitPublish(net, user, specs('192.0.2.5:3001:80'), [], bound)).exit, EXIT.CONFLICT, 'the same address');
});
