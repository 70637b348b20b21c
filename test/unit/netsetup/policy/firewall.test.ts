import test from 'ava';
import { lease, pubLease, pubNet, quotaNet } from './_fixtures.ts';
import { parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
import { addLeaseScript, dnatChain, dropLeasesScript, forwardRules, fwdChain, hasLeaseRules, jumps, natChain, presentInSave, restoreScript } from '../../../../packages/netsetup/src/policy/firewall.ts';
import type { Lease } from '../../../../packages/netsetup/src/policy/leases.ts';

const net = quotaNet;

const NONE = [false, false, false, false];
const ALL = [true, true, true, true];

test('rules: own chains rebuilt whole, MASQUERADE only leaving the subnet, the subnet forwarded; a lease without published ports has none of its own; missing jumps: POSTROUTING and FORWARD first, the DNAT jumps after the host\'s rules', (t) => {
  const l = lease(1000, { id: 'abcdef01', address: '10.231.0.9' });
  const s = restoreScript(net, [l], NONE);
  t.is(
    s,
    [
      '*nat',
      ':NSBOX-POST-nstest0 - [0:0]',
      ':NSBOX-DNAT-nstest0 - [0:0]',
      '-A NSBOX-POST-nstest0 -s 10.231.0.0/24 ! -d 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j MASQUERADE',
      '-I POSTROUTING 1 -m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0',
      '-A PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-A OUTPUT ! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      'COMMIT',
      '*filter',
      ':NSBOX-FWD-nstest0 - [0:0]',
      '-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j ACCEPT',
      '-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsbox:nstest0 -j ACCEPT',
      '-I FORWARD 1 -m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const first = restoreScript({ ...net, nat: false }, [], NONE);
  t.false(first.includes('MASQUERADE'));
  t.false(first.includes('-D '));
  // Jumps that are there stay where they are: checked, never deleted, inserted or appended again.
  const kept = restoreScript(net, [], [true, false, true, true]).split('\n');
  t.deepEqual(kept.filter((x) => /^-[ACDI] (POSTROUTING|PREROUTING|OUTPUT|FORWARD) /.test(x)), [
    '-C POSTROUTING -m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0',
    '-C PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
    '-C OUTPUT ! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
    '-I FORWARD 1 -m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0',
  ]);
});

test('rules fast path: checks the network rules and appends the lease\'s published ports, one transaction per table', (t) => {
  const l = lease(1000, { id: 'abcdef02', address: '10.231.0.10', published: [{ hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' }] });
  const tag = '-m comment --comment nsbox:lease:abcdef02';
  t.is(
    addLeaseScript(net, l),
    [
      '*nat',
      '-C POSTROUTING -m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0',
      '-C PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-C OUTPUT ! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-C NSBOX-POST-nstest0 -s 10.231.0.0/24 ! -d 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j MASQUERADE',
      `-A NSBOX-DNAT-nstest0 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 ${tag} -j DNAT --to-destination 10.231.0.10:80`,
      `-A NSBOX-POST-nstest0 -s 10.231.0.0/24 -d 10.231.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT ${tag} -j MASQUERADE`,
      'COMMIT',
      '*filter',
      '-C FORWARD -m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0',
      '-C NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j ACCEPT',
      '-C NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsbox:nstest0 -j ACCEPT',
      `-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.10/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT ${tag} -j ACCEPT`,
      'COMMIT',
      '',
    ].join('\n'),
  );
});

test('release: a lease\'s rules are deleted one by one, each exactly as it was added', (t) => {
  const a = lease(1000, { id: 'abcdef05', address: '10.231.0.13', published: [{ hostAddress: '0.0.0.0', hostPort: 8081, port: 80, protocol: 'udp' }] });
  const added = addLeaseScript(net, a).split('\n').filter((l) => l.startsWith('-A '));
  const deleted = dropLeasesScript(net, [a]).split('\n').filter((l) => l.startsWith('-D '));
  t.deepEqual(deleted, added.map((l) => l.replace(/^-A /, '-D ')));
  t.is(added.length, 3);
});

test('rules: DNAT on every local address or one address, FORWARD for the DNAT, hairpin MASQUERADE, all tagged', (t) => {
  const l = pubLease('abcdef01', '10.231.0.9', ['8080:80', '192.0.2.5:5353:53/udp']);
  const s = restoreScript(pubNet, [l], NONE);
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
  t.false(restoreScript(pubNet, [pubLease('abcdef01', '10.231.0.9', [])], NONE).includes('-A NSBOX-DNAT-'));
  // Released: the rebuild without the lease has none of its rules, but keeps the chains and jumps.
  const rebuilt = restoreScript(pubNet, [], NONE);
  t.false(rebuilt.includes('abcdef01'));
  t.true(rebuilt.includes(':NSBOX-DNAT-nstest0 - [0:0]'));
  t.true(rebuilt.includes('-A PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0'));
  t.true(restoreScript(pubNet, [], ALL).includes('-C PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0'));
});

test('rules fast path: the publications are appended in the same transaction as the lease', (t) => {
  const l = pubLease('abcdef02', '10.231.0.10', ['8080:80']);
  const s = addLeaseScript(pubNet, l).split('\n');
  const filterAt = s.indexOf('*filter');
  const dnat = s.indexOf('-A NSBOX-DNAT-nstest0 -m addrtype --dst-type LOCAL -p tcp -m tcp --dport 8080 -m comment --comment nsbox:lease:abcdef02 -j DNAT --to-destination 10.231.0.10:80');
  t.true(dnat > 0 && dnat < filterAt);
  t.true(s.indexOf('-C PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0') < dnat);
  t.true(s.some((x, i) => i > filterAt && x.includes('--ctstate DNAT') && x.includes('-j ACCEPT')));
  t.is(s.filter((x) => x === 'COMMIT').length, 2);
});

test('a released or stale lease loses its published-port rules too: -D of exactly what was added, nat and filter', (t) => {
  const l = pubLease('0000000a', '10.231.0.7', ['8080:80', '5353:53/udp']);
  const added = addLeaseScript(pubNet, l).split('\n').filter((x) => x.startsWith('-A ') && x.includes('nsbox:lease:0000000a'));
  const deleted = dropLeasesScript(pubNet, [l]).split('\n');
  t.deepEqual(deleted.filter((x) => x.startsWith('-D ')), added.map((x) => x.replace(/^-A /, '-D ')));
  t.true(deleted.indexOf('*nat') < deleted.indexOf('*filter'));
  t.true(added.some((x) => x.includes('-j DNAT')));
});

test('egress: compiled into the network\'s FORWARD chain, most specific first, replies and traffic back to the bridge before it, a default at the end', (t) => {
  const c = parseConfig(
    JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', egress: { default: 'deny', deny: ['10.0.0.0/8'], allow: ['10.0.0.2:53/udp', '0.0.0.0/0:80,443,8000-8100/tcp'] } }] }),
    'test',
  ).networks[0]!;
  const tag = '-m comment --comment nsbox:nstest0';
  const reject = 'REJECT --reject-with icmp-admin-prohibited';
  t.deepEqual(forwardRules(c), [
    `-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -i nstest0 -o nstest0 -s 10.231.0.0/24 ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -d 10.0.0.2/32 -p udp -m multiport --dports 53 ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -i nstest0 -d 10.0.0.0/8 ${tag} -j ${reject}`,
    `-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -p tcp -m multiport --dports 80,443,8000:8100 ${tag} -j ACCEPT`,
    `-A NSBOX-FWD-nstest0 -i nstest0 ${tag} -j ${reject}`,
  ]);
  // Default allow: the denials, then the subnet's accept.
  const open = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', egress: { deny: ['192.0.2.0/24'] } }] }), 'test').networks[0]!;
  t.deepEqual(forwardRules(open).slice(-2), [`-A NSBOX-FWD-nstest0 -i nstest0 -d 192.0.2.0/24 ${tag} -j ${reject}`, `-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 ${tag} -j ACCEPT`]);
  // Every rule is in the rebuild and checked by the fast path; a published port's accept comes after them all
  // (it matches traffic into the bridge, which the egress rules never take).
  const l = pubLease('abcdef09', '10.231.0.9', ['8080:80']);
  const script = restoreScript({ ...c, publish: pubNet.publish }, [l], NONE).split('\n');
  for (const r of forwardRules(c)) t.true(script.includes(r), r);
  const fast = addLeaseScript(c, l).split('\n');
  for (const r of forwardRules(c)) t.true(fast.includes(r.replace(/^-A /, '-C ')), r);
  t.true(script.findIndex((x) => x.includes('nsbox:lease:abcdef09') && x.startsWith('-A NSBOX-FWD')) > script.indexOf(`-A NSBOX-FWD-nstest0 -i nstest0 ${tag} -j ${reject}`));
});

test('jumps: presence read from iptables-save, exact chain and target', (t) => {
  const save = [
    '*nat',
    '-A POSTROUTING -m comment --comment "nsbox:nstest0" -j NSBOX-POST-nstest0',
    '-A PREROUTING -m comment --comment "nsbox:nstest0" -j NSBOX-DNAT-nstest01',
    '-A OUTPUT -m comment --comment "nsbox:nstest0" -j NSBOX-DNAT-nstest0',
    'COMMIT',
    '*filter',
    '-A FORWARD -m comment --comment "nsbox:nstest0" -j NSBOX-FWD-nstest0',
    'COMMIT',
  ].join('\n');
  // PREROUTING jumps to another bridge's chain; OUTPUT lacks the loopback exception.
  t.deepEqual(presentInSave(net, save), [true, true, false, false]);
  t.deepEqual(jumps(net).map((j) => `${j.chain} ${j.position}`), ['POSTROUTING first', 'FORWARD first', 'PREROUTING last', 'OUTPUT last']);
});

test('hairpin MASQUERADE covers every subnet of the configuration: a sandbox of another (isolated) network reaching a published port gets its replies through the host', (t) => {
  const two = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24' }, { name: 'm', bridge: 'nstest1', subnet: '10.231.1.0/24' }] }), 'test');
  const l: Lease = { ...pubLease('0000000e', '10.231.0.9', ['8080:80']) };
  const script = addLeaseScript(two.networks[0]!, l);
  t.true(script.includes('-A NSBOX-POST-nstest0 -s 10.231.0.0/24,10.231.1.0/24 -d 10.231.0.9/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT'), script);
  t.true(dropLeasesScript(two.networks[0]!, [l]).includes('-D NSBOX-POST-nstest0 -s 10.231.0.0/24,10.231.1.0/24 -d 10.231.0.9/32'), 'removed exactly as added');
});

test('rules: a rebuild of one network has its own leases only, not those of another network', (t) => {
  const mine = pubLease('0000000c', '10.231.0.12', ['8080:80']);
  const theirs = { ...pubLease('0000000d', '10.231.1.13', ['8081:80']), network: 'other' };
  const s = restoreScript(pubNet, [theirs, mine], NONE);
  t.true(s.includes('nsbox:lease:0000000c'));
  t.false(s.includes('0000000d'));
  t.false(s.includes('10.231.1.13'));
  t.deepEqual(restoreScript(pubNet, [theirs], NONE), restoreScript(pubNet, [], NONE));
});

test('rules: a release of leases without published ports deletes nothing and touches no nat rule', (t) => {
  const plain = lease(1000, { id: 'abcdef09' });
  t.is(dropLeasesScript(net, [plain]), '*filter\nCOMMIT\n');
  t.false(hasLeaseRules(plain));
  t.true(hasLeaseRules(pubLease('abcdef0a', '10.231.0.3', ['8080:80'])));
  const both = dropLeasesScript(pubNet, [plain, pubLease('abcdef0a', '10.231.0.3', ['8080:80'])]).split('\n');
  t.deepEqual(both.filter((l) => !l.startsWith('-D ')), ['*nat', 'COMMIT', '*filter', 'COMMIT', '']);
});

test('rules: the chain names and the jumps of a network', (t) => {
  t.is(natChain(net), 'NSBOX-POST-nstest0');
  t.is(fwdChain(net), 'NSBOX-FWD-nstest0');
  t.is(dnatChain(net), 'NSBOX-DNAT-nstest0');
  t.deepEqual(jumps(net).map((j) => [j.table, j.chain, j.rule.join(' ')]), [
    ['nat', 'POSTROUTING', '-m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0'],
    ['filter', 'FORWARD', '-m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0'],
    ['nat', 'PREROUTING', '-m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0'],
    ['nat', 'OUTPUT', '! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0'],
  ]);
  // Without NAT the fast path does not check the MASQUERADE rule either.
  const l = pubLease('abcdef0b', '10.231.0.4', ['8080:80']);
  t.false(addLeaseScript({ ...pubNet, nat: false }, l).includes('-C NSBOX-POST-nstest0 -s'));
  t.true(addLeaseScript(pubNet, l).includes('-C NSBOX-POST-nstest0 -s'));
});

test('rules: a rebuild lists the leases in id order', (t) => {
  const a = pubLease('0000000b', '10.231.0.11', ['8082:80']);
  const b = pubLease('0000000a', '10.231.0.10', ['8081:80']);
  const s = restoreScript(pubNet, [a, b], NONE);
  t.true(s.indexOf('nsbox:lease:0000000a') < s.indexOf('nsbox:lease:0000000b'));
  t.is(s, restoreScript(pubNet, [b, a], NONE));
});
