import test from 'ava';
import { lease, quotaConfig, quotaNet } from './_fixtures.ts';
import { NsboxError } from '../../../../packages/shared/src/error.ts';
import { EXIT } from '../../../../packages/netsetup/src/exit.ts';
import { admit, hostVethName, isoTime, LEASE_ID, parseLeaseFile, partition, type Lease } from '../../../../packages/netsetup/src/policy/leases.ts';

const config = quotaConfig;
const net = quotaNet;

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

test('GC: a ready lease recorded without a MAC (made before the bridge filter) is stale, its veth alive or not', (t) => {
  const bound = lease(1000);
  const { mac: _, ...old } = lease(1000);
  const links = [bound, old].map((l) => ({ index: l.hostIndex, name: l.hostVeth, kind: 'veth' }));
  const { live, stale } = partition([bound, old], links, () => true);
  t.deepEqual(live, [bound]);
  t.deepEqual(stale, [old]);
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

test('lease times are ISO 8601 UTC, as Date would print them', (t) => {
  for (const ms of [0, 1, 86_399_999, 951_782_400_000, 951_868_799_999, 1_700_000_000_123, 4_107_542_400_000, 253_402_300_799_999, -1, -62_167_219_200_000]) {
    t.is(isoTime(ms), new Date(ms).toISOString(), String(ms));
  }
});

test('quotas count the leases of their own network only', (t) => {
  const other = { network: 'other' };
  // Two leases of uid 1000 elsewhere: still 0 of 2 here.
  t.deepEqual(admit(net, [lease(1000, other), lease(1000, other)], { uid: 1000, gids: [1000] }), []);
  const onlyGroups = { ...net, quota: { users: {}, groups: { '500': 1 } } };
  t.deepEqual(admit(onlyGroups, [lease(1003, { ...other, groups: [500] })], { uid: 1002, gids: [500] }), [500]);
  t.throws(() => admit(onlyGroups, [lease(1003, { groups: [500] })], { uid: 1002, gids: [500] }), { message: /group 500 already holds 1 of 1/ });
});

test("a group quota counts the caller's own leases charged to the group too", (t) => {
  const onlyGroups = { ...net, quota: { users: {}, groups: { '500': 2 } } };
  const mine = [lease(1002, { groups: [500] }), lease(1002, { groups: [500] })];
  const err = t.throws(() => admit(onlyGroups, mine, { uid: 1002, gids: [1002, 500] })) as NsboxError;
  t.is(err.exit, EXIT.QUOTA);
  t.regex(err.message, /group 500 already holds 2 of 2/);
  // Leases of the caller not charged to the group do not count for it.
  t.deepEqual(admit(onlyGroups, [lease(1002), lease(1002)], { uid: 1002, gids: [500] }), [500]);
});

test('GC: a link with the lease veth\'s name and ifindex that is not a veth is not the lease\'s', (t) => {
  const a = lease(1000);
  for (const kind of ['dummy', 'bridge', undefined]) {
    const { live, stale } = partition([a], [{ index: a.hostIndex, name: a.hostVeth, ...(kind ? { kind } : {}) }], () => true);
    t.deepEqual(live, [], String(kind));
    t.deepEqual(stale, [a], String(kind));
  }
});

test('admission: the caller\'s own quota entry wins over "*"; a user in no table is not allowed; each group is charged once', (t) => {
  const q = (users: Record<string, number>, groups: Record<string, number> = {}) => ({ ...net, quota: { users, groups } });
  t.deepEqual(admit(q({ '1000': 2, '*': 0 }), [lease(1000)], { uid: 1000, gids: [] }), []);
  const denied = t.throws(() => admit(q({ '1000': 2 }), [], { uid: 1001, gids: [1001] }), { instanceOf: NsboxError }) as NsboxError;
  t.is(denied.exit, EXIT.DENIED);
  t.is(denied.message, 'network "n": uid 1001 is not allowed to use it. Ask the administrator to add you to its quota');
  t.deepEqual(admit(q({}, { '500': 1, '600': 1 }), [], { uid: 1001, gids: [600, 500, 600, 700, 500] }), [600, 500]);
  // A user quota of 0 with a group that allows one: the user quota applies too.
  t.throws(() => admit(q({ '1001': 0 }, { '500': 1 }), [], { uid: 1001, gids: [500] }), { message: /uid 1001 already holds 0 of 0/ });
  const group = t.throws(() => admit(q({ '*': 5 }, { '500': 1 }), [lease(1002, { groups: [500] })], { uid: 1001, gids: [500] })) as NsboxError;
  t.is(group.message, 'network "n": group 500 already holds 1 of 1 allowed leases. Release one or ask the administrator for a higher quota');
});

test('lease records: ids, veth names, the file format', (t) => {
  t.is(hostVethName('0123abcd'), 'nsb0123abcd');
  t.true(LEASE_ID.test('0123abcd'));
  for (const bad of ['0123ABCD', '0123abc', '0123abcde', 'x0123abcd', '../../etc']) t.false(LEASE_ID.test(bad), bad);
  const old = { id: '0123abcd', network: 'n', uid: 1, groups: [], address: '10.0.0.2', hostVeth: 'nsb0123abcd', hostIndex: 3, pid: 4, state: 'ready', created: '' };
  t.deepEqual(parseLeaseFile(JSON.stringify({ version: 1, leases: [old] })), { version: 1, leases: [{ ...old, published: [] }] }, 'records from before publishing');
  const withPorts = { ...old, published: [{ hostAddress: '0.0.0.0', hostPort: 1, port: 2, protocol: 'tcp' }] };
  t.deepEqual(parseLeaseFile(JSON.stringify({ version: 1, leases: [withPorts] })).leases[0], withPorts);
  for (const bad of ['null', '{}', '{"version":2,"leases":[]}', '{"version":1}', '{"version":1,"leases":{}}']) {
    t.throws(() => parseLeaseFile(bad), { message: 'unknown lease file format' }, bad);
  }
});

test('GC: a ready lease is live by its veth\'s name, ifindex and kind together; holders are asked only about leases not ready', (t) => {
  const a = lease(1000);
  const asked: number[] = [];
  const alive = (h: { pid: number }): boolean => {
    asked.push(h.pid);
    return true;
  };
  t.deepEqual(partition([{ ...a, holder: { pid: 1, start: 1 } }], [{ index: a.hostIndex, name: a.hostVeth, kind: 'veth' }], alive).live.length, 1);
  t.deepEqual(asked, []);
  t.deepEqual(partition([a], [{ index: a.hostIndex, name: `${a.hostVeth}x`, kind: 'veth' }], alive).stale, [a]);
  t.deepEqual(partition([a], [], alive), { live: [], stale: [a], busy: [] });
});
