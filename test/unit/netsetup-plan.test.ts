import test from 'ava';
import { parseConfig } from '../../packages/netsetup/src/policy/config.ts';
import { NsboxError } from '../../packages/shared/src/error.ts';
import { EXIT } from '../../packages/netsetup/src/exit.ts';
import { addLeaseScript, dropLeasesScript, restoreScript } from '../../packages/netsetup/src/policy/firewall.ts';
import { admit, isoTime, partition, type Lease } from '../../packages/netsetup/src/policy/leases.ts';
import { parsePid } from '../../packages/netsetup/src/kernel/target.ts';

const config = parseConfig(
  JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { users: { '1000': 2, '*': 1 }, groups: { '500': 3 } } }] }),
  'test',
);
const net = config.networks[0]!;
let next = 0;
const lease = (uid: number, extra: Partial<Lease> = {}): Lease => {
  const id = (next++).toString(16).padStart(8, '0');
  return { id, network: 'n', uid, groups: [], address: `10.231.0.${next + 1}`, hostVeth: `nsb${id}`, hostIndex: 100 + next, pid: 1000 + next, state: 'ready', created: '', published: [], ...extra };
};

test('pids are parsed strictly', (t) => {
  t.is(parsePid('1'), 1);
  t.is(parsePid('4194304'), 4194304);
  for (const bad of ['', '0', '-1', '1x', '01', ' 1', '1;id', '4194305', '99999999999999999999', '1e3', '0x10']) t.is(parsePid(bad), undefined, bad);
});

test('quota per user: the exact error at the limit', (t) => {
  t.deepEqual(admit(net, [lease(1000)], { uid: 1000, gids: [1000] }), []);
  const err = t.throws(() => admit(net, [lease(1000), lease(1000)], { uid: 1000, gids: [1000] }), { instanceOf: NsboxError }) as NsboxError;
  t.is(err.exit, EXIT.QUOTA);
  t.is(err.message, 'network "n": uid 1000 already holds 2 of 2 allowed leases. Release one (netsetup list; netsetup release ID) or ask the administrator for a higher quota');
  // "*" applies to others; other users' leases do not count.
  t.notThrows(() => admit(net, [lease(1000), lease(1000)], { uid: 1001, gids: [1001] }));
  t.throws(() => admit(net, [lease(1001)], { uid: 1001, gids: [1001] }), { message: /1 of 1/ });
});

test('quota per group, charged to the groups used', (t) => {
  const onlyGroups = { ...net, quota: { users: {}, groups: { '500': 2 } } };
  t.deepEqual(admit(onlyGroups, [], { uid: 1002, gids: [1002, 500] }), [500]);
  const held = [lease(1003, { groups: [500] }), lease(1004, { groups: [500] })];
  const err = t.throws(() => admit(onlyGroups, held, { uid: 1002, gids: [500] })) as NsboxError;
  t.is(err.exit, EXIT.QUOTA);
  t.regex(err.message, /group 500 already holds 2 of 2/);
  const denied = t.throws(() => admit(onlyGroups, [], { uid: 1002, gids: [1002] })) as NsboxError;
  t.is(denied.exit, EXIT.DENIED);
  t.deepEqual(admit(onlyGroups, held, { uid: 0, gids: [0] }), [], 'root is not limited');
});

test('GC: leases whose veth is gone, renamed or reused, and pending ones without a holder, are stale', (t) => {
  const a = lease(1000);
  const b = lease(1000);
  const c = lease(1000);
  const d = lease(1000, { state: 'pending' });
  const links = [
    { index: a.hostIndex, name: a.hostVeth, kind: 'veth' },
    { index: b.hostIndex + 50, name: b.hostVeth, kind: 'veth' },
    { index: d.hostIndex, name: d.hostVeth, kind: 'veth' },
  ];
  const { live, stale } = partition([a, b, c, d], links, () => true);
  t.deepEqual(live, [a]);
  t.deepEqual(stale, [b, c, d]);
});

test('GC: a lease being set up or released is left to its holder while the holder lives, else it is stale', (t) => {
  for (const state of ['pending', 'releasing'] as const) {
    const mine = lease(1000, { state, holder: { pid: 10, start: 5 } });
    const orphan = lease(1000, { state, holder: { pid: 11, start: 6 } });
    const reused = lease(1000, { state, holder: { pid: 10, start: 4 } });
    const unowned = lease(1000, { state });
    const all = [mine, orphan, reused, unowned];
    const links = all.map((l) => ({ index: l.hostIndex, name: l.hostVeth, kind: 'veth' }));
    const r = partition(all, links, (h) => h.pid === 10 && h.start === 5);
    t.deepEqual(r.busy, [mine], state);
    t.deepEqual(r.stale, [orphan, reused, unowned], state);
    t.deepEqual(r.live, [], state);
  }
});

test('rules: own chains rebuilt whole, MASQUERADE only leaving the subnet, the subnet forwarded; a lease without published ports has none of its own', (t) => {
  const l = lease(1000, { id: 'abcdef01', address: '10.231.0.9' });
  const s = restoreScript(net, [l], true);
  t.is(
    s,
    [
      '*nat',
      ':NSBOX-POST-nstest0 - [0:0]',
      ':NSBOX-DNAT-nstest0 - [0:0]',
      '-A NSBOX-POST-nstest0 -s 10.231.0.0/24 ! -d 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j MASQUERADE',
      '-D POSTROUTING -m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0',
      '-I POSTROUTING 1 -m comment --comment nsbox:nstest0 -j NSBOX-POST-nstest0',
      '-D PREROUTING -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-I PREROUTING 1 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-D OUTPUT ! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      '-I OUTPUT 1 ! -d 127.0.0.0/8 -m comment --comment nsbox:nstest0 -j NSBOX-DNAT-nstest0',
      'COMMIT',
      '*filter',
      ':NSBOX-FWD-nstest0 - [0:0]',
      '-A NSBOX-FWD-nstest0 -i nstest0 -s 10.231.0.0/24 -m comment --comment nsbox:nstest0 -j ACCEPT',
      '-A NSBOX-FWD-nstest0 -o nstest0 -d 10.231.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment nsbox:nstest0 -j ACCEPT',
      '-D FORWARD -m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0',
      '-I FORWARD 1 -m comment --comment nsbox:nstest0 -j NSBOX-FWD-nstest0',
      'COMMIT',
      '',
    ].join('\n'),
  );
  const first = restoreScript({ ...net, nat: false }, [], false);
  t.false(first.includes('MASQUERADE'));
  t.false(first.includes('-D '));
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

test('lease times are ISO 8601 UTC, as Date would print them', (t) => {
  for (const ms of [0, 1, 86_399_999, 951_782_400_000, 951_868_799_999, 1_700_000_000_123, 4_107_542_400_000, 253_402_300_799_999, -1, -62_167_219_200_000]) {
    t.is(isoTime(ms), new Date(ms).toISOString(), String(ms));
  }
});
