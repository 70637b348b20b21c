import test from 'ava';
import { parsePublish } from '../../packages/shared/src/publish.ts';
import { DEFAULT_CONFIG_TEXT, parseConfig } from '../../packages/netsetup/src/policy/config.ts';
import { NsboxError } from '../../packages/shared/src/error.ts';
import { EXIT } from '../../packages/netsetup/src/exit.ts';
import { addLeaseScript, dropLeasesScript, restoreScript } from '../../packages/netsetup/src/policy/firewall.ts';
import type { Lease } from '../../packages/netsetup/src/policy/leases.ts';
import { admitPublish, type HostFacts } from '../../packages/netsetup/src/policy/publishing.ts';
import { parseProcNet } from '../../packages/netsetup/src/kernel/sockets.ts';

const config = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', publish: { minPort: 2000, maxPerLease: 3 } }] }), 'test');
const net = config.networks[0]!;
const lease = (id: string, address: string, published: string[], uid = 1000): Lease => ({
  id,
  network: 'n',
  uid,
  groups: [],
  address,
  hostVeth: `nsb${id}`,
  hostIndex: 7,
  pid: 99,
  state: 'ready',
  created: '',
  published: published.map(parsePublish),
});
const user = { uid: 1000, gids: [1000] };
const root = { uid: 0, gids: [0] };
const host: HostFacts = { addresses: ['127.0.0.1', '192.0.2.5', '10.231.0.1'], sockets: [] };
const specs = (...s: string[]) => s.map(parsePublish);
const refusal = (t: import('ava').ExecutionContext, f: () => void): NsboxError => {
  const err = t.throws(f, { instanceOf: NsboxError }) as NsboxError;
  t.false(err.message.includes('\n'));
  return err;
};

test('configuration: publish policy defaults, limits and unknown keys', (t) => {
  const d = parseConfig(DEFAULT_CONFIG_TEXT, 'default').networks[0]!;
  t.deepEqual(d.publish, { minPort: 1024, maxPerLease: 16 });
  const implicit = parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24' }] }), 't').networks[0]!;
  t.deepEqual(implicit.publish, { minPort: 1024, maxPerLease: 16 });
  t.deepEqual(net.publish, { minPort: 2000, maxPerLease: 3 });
  const partial = parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', publish: { minPort: 80 } }] }), 't').networks[0]!;
  t.deepEqual(partial.publish, { minPort: 80, maxPerLease: 16 });
  for (const [publish, re] of [
    [{ minPort: 0 }, /publish\.minPort must be an integer from 1 to 65535/],
    [{ minPort: 1024.5 }, /minPort/],
    [{ maxPerLease: -1 }, /publish\.maxPerLease must be an integer from 0 to 65535/],
    [{ ports: 1 }, /publish: unknown key "ports"/],
    [[], /publish must be an object/],
  ] as const) {
    const err = t.throws(() => parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', publish }] }), 't.conf'), { message: re }) as NsboxError;
    t.is(err.exit, EXIT.CONFIG);
  }
});

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

test('/proc/net parsing: listening TCP, unconnected UDP, IPv4, dual-stack and v4-mapped IPv6', (t) => {
  const tcp = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0',
    '   1: 0500000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0',
    '   2: 0500000A:D2F0 0100000A:0016 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 100 0 0 10 0',
    '',
  ].join('\n');
  t.deepEqual(parseProcNet(tcp, 'tcp'), [
    { protocol: 'tcp', address: '127.0.0.1', port: 3306 },
    { protocol: 'tcp', address: '10.0.0.5', port: 8080 },
  ]);
  const tcp6 = [
    '  sl  local_address                         remote_address                        st',
    '   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0',
    '   1: 0000000000000000FFFF00000500000A:0050 00000000000000000000000000000000:0000 0A 0',
    '   2: 000080FE00000000FF005002020000FE:0051 00000000000000000000000000000000:0000 0A 0',
    '   3: 00000000000000000000000001000000:0052 00000000000000000000000000000000:0000 0A 0',
  ].join('\n');
  t.deepEqual(parseProcNet(tcp6, 'tcp'), [
    { protocol: 'tcp', address: '0.0.0.0', port: 22 },
    { protocol: 'tcp', address: '10.0.0.5', port: 80 },
  ]);
  const udp = [
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
    '  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0',
    '  101: 0500000A:A000 0100000A:0035 01 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0',
  ].join('\n');
  t.deepEqual(parseProcNet(udp, 'udp'), [{ protocol: 'udp', address: '0.0.0.0', port: 53 }]);
  t.deepEqual(parseProcNet('', 'tcp'), []);
});

test('rules: DNAT on every local address or one address, FORWARD for the DNAT, hairpin MASQUERADE, all tagged', (t) => {
  const l = lease('abcdef01', '10.231.0.9', ['8080:80', '192.0.2.5:5353:53/udp']);
  const s = restoreScript(net, [l], false);
  const tag = '-m comment --comment nsbox:lease:abcdef01';
  const expected = [
    `-A NSBOX-DNAT-nstest0 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 ${tag} -j DNAT --to-destination 10.231.0.9:80`,
    `-A NSBOX-DNAT-nstest0 -d 192.0.2.5/32 -p udp -m udp --dport 5353 ${tag} -j DNAT --to-destination 10.231.0.9:53`,
    `-A NSBOX-POST-nstest0 -s 10.231.0.0/24 -d 10.231.0.9/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT ${tag} -j MASQUERADE`,
    `-A NSBOX-POST-nstest0 -s 10.231.0.0/24 -d 10.231.0.9/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT ${tag} -j MASQUERADE`,
    `-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.9/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.9/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT ${tag} -j ACCEPT`,
  ];
  const lines = s.split('\n');
  for (const e of expected) t.true(lines.includes(e), e);
  // nat rules in the nat table, filter rules in the filter table.
  const filterAt = lines.indexOf('*filter');
  t.true(lines.findIndex((x) => x.startsWith('-A NSBOX-DNAT-')) < filterAt);
  t.true(lines.findIndex((x) => x.startsWith('-A NSBOX-FWD-')) > filterAt);
  // Every lease rule carries the tag; without publications there is nothing in the DNAT chain.
  t.true(lines.filter((x) => x.includes('10.231.0.9')).every((x) => x.includes(tag)));
  t.false(restoreScript(net, [lease('abcdef01', '10.231.0.9', [])], false).includes('-A NSBOX-DNAT-'));
  // Released: the rebuild without the lease has none of its rules, but keeps the chains and jumps.
  const rebuilt = restoreScript(net, [], true);
  t.false(rebuilt.includes('abcdef01'));
  t.true(rebuilt.includes(':NSBOX-DNAT-nstest0 - [0:0]'));
  t.true(rebuilt.includes('-I PREROUTING 1 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0'));
});

test('rules fast path: the publications are appended in the same transaction as the lease', (t) => {
  const l = lease('abcdef02', '10.231.0.10', ['8080:80']);
  const s = addLeaseScript(net, l).split('\n');
  const filterAt = s.indexOf('*filter');
  const dnat = s.indexOf('-A NSBOX-DNAT-nstest0 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment nsbox:lease:abcdef02 -j DNAT --to-destination 10.231.0.10:80');
  t.true(dnat > 0 && dnat < filterAt);
  t.true(s.indexOf('-C PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0') < dnat);
  t.true(s.some((x, i) => i > filterAt && x.includes('--ctstate DNAT') && x.includes('-j ACCEPT')));
  t.is(s.filter((x) => x === 'COMMIT').length, 2);
});

test('a released or stale lease loses its published-port rules too: -D of exactly what was added, nat and filter', (t) => {
  const l = lease('0000000a', '10.231.0.7', ['8080:80', '5353:53/udp']);
  const added = addLeaseScript(net, l).split('\n').filter((x) => x.startsWith('-A ') && x.includes('nsbox:lease:0000000a'));
  const deleted = dropLeasesScript(net, [l]).split('\n');
  t.deepEqual(deleted.filter((x) => x.startsWith('-D ')), added.map((x) => x.replace(/^-A /, '-D ')));
  t.true(deleted.indexOf('*nat') < deleted.indexOf('*filter'));
  t.true(added.some((x) => x.includes('-j DNAT')));
});
