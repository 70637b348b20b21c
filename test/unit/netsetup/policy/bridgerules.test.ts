import test from 'ava';
import { NsboxError } from '../../../../packages/shared/src/error.ts';
import {
  bindingElements,
  decodeBound,
  DNAT_MARK,
  expectedShape,
  HOST_SCOPE,
  isolatedRanges,
  OPEN_GROUP,
  portBinding,
  portElements,
  rulesetText,
  SETS,
  shapeProblems,
  type FilteredNetwork,
  type PortLease,
} from '../../../../packages/netsetup/src/policy/bridgerules.ts';

const user: FilteredNetwork = { bridge: 'nsbox0', subnet: '10.200.200.0/24', gateway: '10.200.200.1', isolation: 'user' };
const none: FilteredNetwork = { ...user, isolation: 'none' };
const lease: PortLease = { port: 'nsb0a1b2c3d', mac: '02:AB:00:00:00:01', address: '10.200.200.7', uid: 1000 };

test('a binding: the lease as given, the MAC lowercased, the uid as group under isolation user', (t) => {
  t.deepEqual(portBinding(HOST_SCOPE, user, lease), { port: 'nsb0a1b2c3d', mac: '02:ab:00:00:00:01', address: '10.200.200.7', group: 1000 });
  t.is(portBinding(HOST_SCOPE, none, lease).group, OPEN_GROUP, 'one shared group under isolation none');
});

test('a binding the filter could not enforce is refused', (t) => {
  const bad: [Partial<PortLease>, RegExp][] = [
    [{ port: 'eth0' }, /not a port name/],
    [{ port: 'nsb0123456789abc' }, /not a port name/],
    [{ port: 'nsb"x' }, /not a port name/],
    [{ mac: '03:00:00:00:00:01' }, /not a unicast MAC/],
    [{ mac: '00:00:00:00:00:00' }, /not a unicast MAC/],
    [{ mac: 'zz' }, /not a MAC address/],
    [{ address: '10.200.201.7' }, /not a sandbox address/],
    [{ address: '10.200.200.0' }, /not a sandbox address/],
    [{ address: '10.200.200.255' }, /not a sandbox address/],
    [{ address: '10.200.200.1' }, /not a sandbox address/],
    [{ address: '10.200.200' }, /not an IPv4 address/],
    [{ uid: -1 }, /out of range/],
    [{ uid: OPEN_GROUP }, /out of range/],
    [{ uid: 1.5 }, /out of range/],
  ];
  for (const [change, why] of bad) {
    const err = t.throws(() => portBinding(HOST_SCOPE, user, { ...lease, ...change }), { instanceOf: NsboxError }, JSON.stringify(change));
    t.regex(err!.message, why);
  }
});

test('isolated ranges: every sandbox address of the subnet, not the gateway; none under isolation none', (t) => {
  t.deepEqual(isolatedRanges(user), [
    ['10.200.200.0', '10.200.200.0'],
    ['10.200.200.2', '10.200.200.254'],
  ]);
  t.deepEqual(isolatedRanges({ ...user, subnet: '10.9.0.0/16', gateway: '10.9.1.0' }), [
    ['10.9.0.0', '10.9.0.255'],
    ['10.9.1.1', '10.9.255.254'],
  ]);
  t.deepEqual(isolatedRanges({ ...user, subnet: '10.9.0.0/29', gateway: '10.9.0.6' }), [['10.9.0.0', '10.9.0.5']]);
  t.deepEqual(isolatedRanges(none), []);
});

test('the ruleset replaces both tables atomically and holds the bindings and ranges', (t) => {
  const b = portBinding(HOST_SCOPE, user, lease);
  const text = rulesetText(HOST_SCOPE, [user, { ...none, bridge: 'nsbox1', subnet: '10.9.0.0/24', gateway: '10.9.0.1' }], [b]);
  const lines = text.split('\n');
  t.deepEqual(lines.slice(0, 4), ['table bridge nsbox {}', 'delete table bridge nsbox', 'table ip nsbox {}', 'delete table ip nsbox']);
  t.true(lines.includes('  set port_mac { type ifname . ether_addr; elements = { "nsb0a1b2c3d" . 02:ab:00:00:00:01 }; }'));
  t.true(lines.includes('  set port_ip { type ifname . ipv4_addr; elements = { "nsb0a1b2c3d" . 10.200.200.7 }; }'));
  t.true(lines.includes('  map port_group { type ifname : mark; elements = { "nsb0a1b2c3d" : 0x000003e8 }; }'));
  t.true(lines.includes('  set port_in_group { type ifname . mark; elements = { "nsb0a1b2c3d" . 0x000003e8 }; }'));
  t.true(lines.includes('  set group_ip { type mark . ipv4_addr; elements = { 0x000003e8 . 10.200.200.7 }; }'));
  t.true(lines.includes('    iifname "nsb*" ether type ip ip daddr @isolated jump to_sandbox'), 'checked in prerouting, before DNAT');
  t.true(lines.includes('  set isolated { type ipv4_addr; flags interval; elements = { 10.200.200.0, 10.200.200.2-10.200.200.254 }; }'), 'only the isolated network');
  t.true(lines.includes('  set bridges { type ifname; elements = { "nsbox0", "nsbox1" }; }'));
  t.true(lines.includes('    iifname "nsb*" jump from_port'));
  t.true(text.includes(`meta mark set 0x${DNAT_MARK.toString(16)}`));
});

test('the ruleset has no accept verdict and every port check drops', (t) => {
  const text = rulesetText(HOST_SCOPE, [user], []);
  for (const line of text.split('\n')) {
    if (/\baccept\b/.test(line)) t.regex(line, /^\s+type filter hook \w+ priority -?\d+; policy accept;$/, 'accept only as a base chain policy');
  }
  const start = text.indexOf('chain from_port {');
  const fromPort = text.slice(start, text.indexOf('\n  }\n', start));
  const rules = fromPort.split('\n').slice(1).filter((l) => l.trim());
  t.true(rules.length >= 9);
  for (const r of rules) t.regex(r, / drop$/);
  t.regex(fromPort, /ether type != \{ ip, arp \} drop/, 'IPv6, VLAN tags and the rest');
  t.notRegex(text, /elements = \{ \}/, 'empty sets have no element list');
});

test('element bytes: 16-byte NUL-padded names, a MAC padded to 8, IPv4 in network order, a host-order mark', (t) => {
  const els = bindingElements(portBinding(HOST_SCOPE, user, lease));
  const name = Buffer.concat([Buffer.from('nsb0a1b2c3d'), Buffer.alloc(5)]);
  t.deepEqual(
    els.map((e) => e.set),
    [SETS.mac, SETS.ip, SETS.group, SETS.inGroup, SETS.groupIp],
  );
  t.deepEqual(els[0]!.element, { key: Buffer.concat([name, Buffer.from([2, 0xab, 0, 0, 0, 1, 0, 0])]) });
  t.deepEqual(els[1]!.element, { key: Buffer.concat([name, Buffer.from([10, 200, 200, 7])]) });
  t.deepEqual(els[2]!.element, { key: name, data: Buffer.from([0xe8, 3, 0, 0]) });
  t.deepEqual(els[3]!.element, { key: Buffer.concat([name, Buffer.from([0xe8, 3, 0, 0])]) });
  t.deepEqual(els[4]!.element, { key: Buffer.from([0xe8, 3, 0, 0, 10, 200, 200, 7]) });
});

test('dumped elements decode by port, and a port sweeps exactly what it has', (t) => {
  const a = portBinding(HOST_SCOPE, user, lease);
  const b = portBinding(HOST_SCOPE, none, { port: 'nsbffff0000', mac: '02:00:00:00:00:02', address: '10.200.200.8', uid: 0 });
  const dumped = { port_mac: [], port_ip: [], port_group: [], port_in_group: [], group_ip: [] } as unknown as Parameters<typeof decodeBound>[0];
  for (const e of [...bindingElements(a), ...bindingElements(b)]) dumped[e.set as keyof typeof dumped].push(e.element);
  // A tampered extra MAC for the first port.
  dumped.port_mac.push({ key: Buffer.concat([Buffer.from('nsb0a1b2c3d\0\0\0\0\0'), Buffer.from([2, 0, 0, 0, 0, 9, 0, 0])]) });
  const found = decodeBound(dumped);
  t.deepEqual(found, [
    {
      port: 'nsb0a1b2c3d',
      macs: ['02:ab:00:00:00:01', '02:00:00:00:00:09'],
      addresses: ['10.200.200.7'],
      groups: [1000],
      inGroups: [1000],
      groupAddresses: [{ group: 1000, address: '10.200.200.7' }],
    },
    {
      port: 'nsbffff0000',
      macs: ['02:00:00:00:00:02'],
      addresses: ['10.200.200.8'],
      groups: [OPEN_GROUP],
      inGroups: [OPEN_GROUP],
      groupAddresses: [{ group: OPEN_GROUP, address: '10.200.200.8' }],
    },
  ]);
  const sweep = portElements(found[1]!);
  t.deepEqual(
    sweep,
    bindingElements(b).map((e) => ({ set: e.set, element: { key: e.element.key } })),
  );
  t.is(portElements(found[0]!).length, 6);
});

test('the expected shape counts each chain\'s rules and names its hook; a listing is compared with it', (t) => {
  const shape = expectedShape(rulesetText(HOST_SCOPE, [user], []));
  t.deepEqual(shape.chains['bridge from_port'], { rules: 10 });
  t.deepEqual(shape.chains['bridge prerouting'], { hook: 'prerouting', rules: 2 });
  t.deepEqual(shape.chains['bridge forward'], { hook: 'forward', rules: 1 });
  t.deepEqual(shape.chains['ip postrouting'], { hook: 'postrouting', rules: 1 });
  t.deepEqual(shape.sets, ['bridge group_ip', 'bridge isolated', 'bridge port_group', 'bridge port_in_group', 'bridge port_ip', 'bridge port_mac', 'ip bridges']);
  // A listing that matches, made from the shape itself.
  const listed = [
    ...Object.entries(shape.chains).flatMap(([name, c]) => {
      const [family, chain] = name.split(' ') as [string, string];
      return [{ chain: { family, name: chain, ...(c.hook ? { hook: c.hook } : {}) } }, ...Array.from({ length: c.rules }, () => ({ rule: { family, chain, expr: [{ drop: null }] } }))];
    }),
    ...shape.sets.map((s) => ({ set: { family: s.split(' ')[0]!, name: s.split(' ')[1]! } })),
  ];
  t.deepEqual(shapeProblems(shape, listed), []);
  const tampered = [...listed, { rule: { family: 'bridge', chain: 'prerouting', expr: [{ accept: null }] } }, { chain: { family: 'bridge', name: 'extra' } }];
  t.deepEqual(shapeProblems(shape, tampered.filter((i) => !('set' in i && i.set.name === 'port_mac'))), [
    'chain bridge prerouting has 3 rules, not 2',
    'chain bridge prerouting has an accept rule',
    'chain bridge extra is not ours',
    'set bridge port_mac is missing',
  ]);
});
