import test from 'ava';
import { OPEN_EGRESS } from '../../../../packages/netsetup/src/policy/egress.ts';
import { DEFAULT_CONFIG_TEXT, findNetwork, parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
import { NsboxError } from '../../../../packages/shared/src/error.ts';
import { EXIT } from '../../../../packages/netsetup/src/exit.ts';

const base = { stateDir: '/run/x', networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24' }] };

const parse = (o: unknown): ReturnType<typeof parseConfig> => parseConfig(JSON.stringify(o), 'test.conf');

const refused = (t: import('ava').ExecutionContext, o: unknown, re: RegExp): void => {
  const err = t.throws(() => parse(o), { instanceOf: NsboxError, message: re }) as NsboxError;
  t.is(err.exit, EXIT.CONFIG);
};

const pubConfig = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', publish: { minPort: 2000, maxPerLease: 3 } }] }), 'test');

const pubNet = pubConfig.networks[0]!;

test('the built-in default parses', (t) => {
  const c = parseConfig(DEFAULT_CONFIG_TEXT, 'default');
  t.is(c.stateDir, '/run/nsbox');
  t.is(c.networks[0]!.bridge, 'nsbox0');
  t.is(c.networks[0]!.quota.users['*'], 8);
});

test('defaults fill in gateway, mtu, nat, name and quota; the subnet is canonical', (t) => {
  const c = parse({ ...base, networks: [{ bridge: 'nstest0', subnet: '10.231.0.77/24' }] });
  t.like(c.networks[0], { name: 'default', subnet: '10.231.0.0/24', gateway: '10.231.0.1', prefix: 24, mtu: 1500, nat: true, dns: [] });
  t.is(c.iptables, 'auto');
});

test('full network entry', (t) => {
  const c = parse({
    stateDir: '/run/t/',
    iptables: 'legacy',
    networks: [{ name: 'lab', bridge: 'br-lab', subnet: '10.231.4.0/22', gateway: '10.231.7.254', mtu: 1400, nat: false, dns: ['10.231.4.1'], quota: { users: { '1000': 2, '*': 1 }, groups: { '100': 5 } } }],
  });
  t.is(c.stateDir, '/run/t');
  t.like(c.networks[0], { name: 'lab', gateway: '10.231.7.254', prefix: 22, mtu: 1400, nat: false });
  t.deepEqual(c.networks[0]!.quota, { users: { '1000': 2, '*': 1 }, groups: { '100': 5 } });
});

test('invalid configurations are refused with the reason', (t) => {
  t.throws(() => parseConfig('[', 'test.conf'), { message: /not valid JSON/ });
  refused(t, [], /top level/);
  refused(t, { ...base, extra: 1 }, /unknown key "extra"/);
  refused(t, { ...base, stateDir: 'run/x' }, /stateDir/);
  refused(t, { ...base, stateDir: '/run/../etc' }, /stateDir/);
  refused(t, { ...base, iptables: 'pf' }, /iptables/);
  refused(t, { ...base, networks: [] }, /non-empty/);
  refused(t, { networks: [{ bridge: 'a-very-long-bridge-name', subnet: '10.231.0.0/24' }] }, /bridge/);
  refused(t, { networks: [{ bridge: 'br;rm', subnet: '10.231.0.0/24' }] }, /bridge/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/33' }] }, /subnet/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/30' }] }, /prefix length/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: 'fd00::/64' }] }, /IPv4 CIDR/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', gateway: '10.231.1.1' }] }, /gateway/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', gateway: '10.231.0.255' }] }, /gateway/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', mtu: 100 }] }, /mtu/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', dns: ['x'] }] }, /dns/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { users: { alice: 1 } } }] }, /numeric uid/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { groups: { '*': 1 } } }] }, /numeric gid/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { users: { '1': -1 } } }] }, /integer/);
  refused(t, { networks: [{ bridge: 'a0', subnet: '10.231.0.0/24' }, { name: 'b', bridge: 'a1', subnet: '10.231.0.128/25' }] }, /overlap/);
  refused(t, { networks: [{ bridge: 'a0', subnet: '10.231.0.0/24' }, { name: 'b', bridge: 'a0', subnet: '10.231.1.0/24' }] }, /same bridge/);
  refused(t, { networks: [{ bridge: 'a0', subnet: '10.231.0.0/24' }, { bridge: 'a1', subnet: '10.231.1.0/24' }] }, /named "default"/);
});

test('configuration: publish policy defaults, limits and unknown keys', (t) => {
  const d = parseConfig(DEFAULT_CONFIG_TEXT, 'default').networks[0]!;
  t.deepEqual(d.publish, { minPort: 1024, maxPerLease: 16 });
  const implicit = parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24' }] }), 't').networks[0]!;
  t.deepEqual(implicit.publish, { minPort: 1024, maxPerLease: 16 });
  t.deepEqual(pubNet.publish, { minPort: 2000, maxPerLease: 3 });
  const partial = parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', publish: { minPort: 80 } }] }), 't').networks[0]!;
  t.deepEqual(partial.publish, { minPort: 80, maxPerLease: 16 });
  for (const [publish, re] of [
    [{ minPort: 0 }, /publish\.minPort must be an integer from 1 to 65535/],
    [{ minPort: 1024.5 }, /minPort/],
    [{ maxPerLease: -1 }, /publish\.maxPerLease must be an integer from 0 to 65535/],
    [{ ports: 1 }, /publish\.ports must be a list of at most 256 port ranges/],
    [{ ports: ["8000-7999"] }, /publish\.ports must be a list/],
    [{ ports: ["0"] }, /publish\.ports must be a list/],
    [{ frobnicate: 1 }, /publish: unknown key "frobnicate"/],
    [[], /publish must be an object/],
  ] as const) {
    const err = t.throws(() => parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', publish }] }), 't.conf'), { message: re }) as NsboxError;
    t.is(err.exit, EXIT.CONFIG);
  }
});

test('isolation: "user" by default, "none" allowed, anything else refused; every network knows all subnets of the configuration', (t) => {
  const c = parse({ networks: [{ name: 'a', bridge: 'nstest0', subnet: '10.231.0.0/24' }, { name: 'b', bridge: 'nstest1', subnet: '10.231.1.0/24', isolation: 'none' }] });
  t.is(c.networks[0]!.isolation, 'user');
  t.is(c.networks[1]!.isolation, 'none');
  t.deepEqual(c.networks[0]!.subnets, ['10.231.0.0/24', '10.231.1.0/24']);
  t.deepEqual(c.networks[1]!.subnets, ['10.231.0.0/24', '10.231.1.0/24']);
  t.throws(() => parse({ networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', isolation: 'group' }] }), { message: /networks\[0\]\.isolation must be "user" or "none"/ });
  t.true(DEFAULT_CONFIG_TEXT.includes('"isolation": "user"'));
});

test('the gateway is a host address: not the network or broadcast address, the first and last host addresses are fine', (t) => {
  const gw = (gateway: string): unknown => parse({ networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', gateway }] }).networks[0]!.gateway;
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', gateway: '10.231.0.0' }] }, /gateway must be a host address inside 10\.231\.0\.0\/24/);
  refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', gateway: '10.231.0.255' }] }, /gateway must be a host address inside 10\.231\.0\.0\/24/);
  t.is(gw('10.231.0.1'), '10.231.0.1');
  t.is(gw('10.231.0.254'), '10.231.0.254');
});

test('quota ids are uids and gids as the kernel has them: decimal, no leading zero, below 4294967295 (the invalid id -1)', (t) => {
  const quota = (q: unknown): unknown => parse({ networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: q }] }).networks[0]!.quota;
  t.deepEqual(quota({ users: { '0': 1, '4294967294': 2 }, groups: { '0': 3, '4294967294': 4 } }), { users: { '0': 1, '4294967294': 2 }, groups: { '0': 3, '4294967294': 4 } });
  for (const id of ['01', '007', '4294967295', '4294967296', '99999999999', '1e3', '-1', ' 1', '']) {
    refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { users: { [id]: 1 } } }] }, /numeric uid or "\*"/);
    refused(t, { networks: [{ bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { groups: { [id]: 1 } } }] }, /numeric gid/);
  }
});

const net0 = { bridge: 'nstest0', subnet: '10.231.0.0/24' };
const withNet = (extra: object): unknown => ({ networks: [{ ...net0, ...extra }] });

test('the built-in default in full', (t) => {
  t.deepEqual(parseConfig(DEFAULT_CONFIG_TEXT, 'default'), {
    stateDir: '/run/nsbox',
    iptables: 'auto',
    serveSeconds: 30,
    networks: [{
      name: 'default', bridge: 'nsbox0', subnet: '10.200.200.0/24', gateway: '10.200.200.1', prefix: 24, mtu: 1500, nat: true, dns: [],
      quota: { users: { '*': 8 }, groups: {} }, publish: { minPort: 1024, maxPerLease: 16 },
      egress: OPEN_EGRESS, isolation: 'user', subnets: ['10.200.200.0/24'],
    }],
  });
  t.true(DEFAULT_CONFIG_TEXT.endsWith('}\n'));
  t.deepEqual(parse({ networks: [net0] }).networks[0]!.quota, { users: { '*': 8 }, groups: {} }, 'a network without a quota: 8 per user');
});

test('every refusal names the file, the place and the rule, with exit CONFIG', (t) => {
  const err = t.throws(() => parse(withNet({ mtu: 575 })), { instanceOf: NsboxError }) as NsboxError;
  t.is(err.message, 'configuration test.conf: networks[0].mtu must be an integer from 576 to 65535. Fix the file (see packages/netsetup/README.md) as root');
  t.is(err.exit, EXIT.CONFIG);
  refused(t, 'null', /^configuration test\.conf: the top level must be an object\./);
  t.throws(() => parseConfig('null', 'x.conf'), { message: /^configuration x\.conf: the top level must be an object\./ });
  t.throws(() => parseConfig('{', 'x.conf'), { message: /^configuration x\.conf: not valid JSON \(.+\)\. Fix/ });
  refused(t, { networks: [net0], extra: 1 }, /^configuration test\.conf: top level: unknown key "extra"\./);
  refused(t, { networks: [{ ...net0, mtu2: 1 }] }, /: networks\[0\]: unknown key "mtu2"\./);
  refused(t, { networks: [net0, { ...net0, name: 'b', bridge: 'b', subnet: '10.231.1.0/24', nat: 1 }] }, /networks\[1\]\.nat must be true or false/);
});

test('stateDir: absolute, no .., not /; trailing slashes go; the default is /run/nsbox', (t) => {
  t.is(parse({ networks: [net0] }).stateDir, '/run/nsbox');
  t.is(parse({ stateDir: '/var/lib/ns_box-1.0//', networks: [net0] }).stateDir, '/var/lib/ns_box-1.0');
  t.is(parse({ stateDir: '/run/a..b', networks: [net0] }).stateDir, '/run/a..b', 'two dots inside a name are a name');
  for (const stateDir of ['/', 'run/x', '/run/..', '/run/../x', '/run/x y', '/run/$x', 7, '', '/run/x\n']) {
    refused(t, { stateDir, networks: [net0] }, /stateDir must be an absolute path \(letters, digits, _ \. - \/\), not \//);
  }
});

test('iptables: auto, nft or legacy', (t) => {
  for (const iptables of ['auto', 'nft', 'legacy'] as const) t.is(parse({ iptables, networks: [net0] }).iptables, iptables);
  for (const iptables of ['NFT', '', 1]) refused(t, { iptables, networks: [net0] }, /iptables must be "auto", "nft" or "legacy"/);
});

test('serveSeconds: how long a user\'s netsetup serves, 30 s unless set; 0 turns serving off', (t) => {
  t.is(parse({ networks: [net0] }).serveSeconds, 30);
  for (const serveSeconds of [0, 1, 3600]) t.is(parse({ serveSeconds, networks: [net0] }).serveSeconds, serveSeconds);
  for (const serveSeconds of [-1, 3601, 1.5, '30', true]) refused(t, { serveSeconds, networks: [net0] }, /serveSeconds must be a whole number of seconds from 0 to 3600/);
});

test('networks: a non-empty array of objects', (t) => {
  for (const networks of [undefined, {}, 'x', []]) refused(t, { networks }, /networks must be a non-empty array/);
  refused(t, { networks: [net0, []] }, /networks\[1\] must be an object/);
  refused(t, { networks: [null] }, /networks\[0\] must be an object/);
});

test('names and bridges', (t) => {
  const name = (n: unknown): unknown => parse(withNet({ name: n })).networks[0]!.name;
  t.is(name('a'), 'a');
  t.is(name(`A9_.-${'x'.repeat(27)}`), `A9_.-${'x'.repeat(27)}`);
  for (const n of ['', '-a', '.a', 'a b', 'x'.repeat(33), 5, 'a/b']) refused(t, withNet({ name: n }), /networks\[0\]\.name must match/);
  const bridge = (b: string): string => parse({ networks: [{ ...net0, bridge: b }] }).networks[0]!.bridge;
  t.is(bridge('a'), 'a');
  t.is(bridge(`b${'r'.repeat(14)}`), `b${'r'.repeat(14)}`);
  for (const b of ['', '0br', `b${'r'.repeat(15)}`, 'br.0', 'br 0', 'br/0']) {
    refused(t, { networks: [{ ...net0, bridge: b }] }, /networks\[0\]\.bridge must be an interface name of 1-15 characters/);
  }
  refused(t, { networks: [{ subnet: '10.231.0.0/24' }] }, /bridge must be an interface name/);
});

test('subnets: an IPv4 CIDR with a prefix of 8 to 29, made canonical', (t) => {
  const net = (subnet: string) => parse({ networks: [{ ...net0, subnet }] }).networks[0]!;
  t.like(net('10.231.0.9/8'), { subnet: '10.0.0.0/8', prefix: 8, gateway: '10.0.0.1' });
  t.like(net('10.231.0.9/29'), { subnet: '10.231.0.8/29', prefix: 29, gateway: '10.231.0.9' });
  for (const subnet of ['10.231.0.0/7', '10.231.0.0/0']) refused(t, { networks: [{ ...net0, subnet }] }, /networks\[0\]\.subnet: the prefix length must be between 8 and 29/);
  for (const subnet of ['10.231.0.0', '10.231.0.0/024', '10.231.0.0/100', '10.231.0.0/24/1', '/24', '10.231.0/24', 'x/24', ' 10.231.0.0/24']) {
    refused(t, { networks: [{ ...net0, subnet }] }, /networks\[0\]\.subnet must be an IPv4 CIDR such as 10\.200\.200\.0\/24/);
  }
  refused(t, { networks: [{ bridge: 'b' }] }, /subnet must be an IPv4 CIDR/);
});

test('gateway: an IPv4 address text', (t) => {
  for (const gateway of ['10.231.0.01', '10.231.0', 7, '']) refused(t, withNet({ gateway }), /networks\[0\]\.gateway must be an IPv4 address/);
});

test('mtu, nat and dns', (t) => {
  const n = (extra: object) => parse(withNet(extra)).networks[0]!;
  t.is(n({ mtu: 576 }).mtu, 576);
  t.is(n({ mtu: 65535 }).mtu, 65535);
  for (const mtu of [575, 65536, 1500.5, '1500']) refused(t, withNet({ mtu }), /networks\[0\]\.mtu must be an integer from 576 to 65535/);
  t.is(n({ nat: false }).nat, false);
  t.is(n({ nat: true }).nat, true);
  refused(t, withNet({ nat: 'yes' }), /networks\[0\]\.nat must be true or false/);
  t.deepEqual(n({ dns: ['192.0.2.53', '2001:db8::53'] }).dns, ['192.0.2.53', '2001:db8::53']);
  for (const dns of ['192.0.2.53', [53], ['192.0.2.53', 'ns1'], {}]) refused(t, withNet({ dns }), /networks\[0\]\.dns must be an array of IP addresses/);
});

test('quotas: objects of ids to integers from 0 to 65535', (t) => {
  const quota = (q: unknown) => parse(withNet({ quota: q })).networks[0]!.quota;
  t.deepEqual(quota({ users: { '7': 0, '8': 65535 } }), { users: { '7': 0, '8': 65535 }, groups: {} });
  t.deepEqual(quota({ groups: { '7': 1 } }), { users: {}, groups: { '7': 1 } });
  for (const v of [65536, -1, 1.5, '1', null]) {
    refused(t, withNet({ quota: { users: { '7': v } } }), /networks\[0\]\.quota\.users\.7 must be an integer from 0 to 65535/);
    refused(t, withNet({ quota: { groups: { '7': v } } }), /networks\[0\]\.quota\.groups\.7 must be an integer from 0 to 65535/);
  }
  for (const q of [[], 'x']) refused(t, withNet({ quota: q }), /networks\[0\]\.quota must be an object/);
  refused(t, withNet({ quota: { users: [] } }), /networks\[0\]\.quota\.users must be an object/);
  refused(t, withNet({ quota: { groups: 1 } }), /networks\[0\]\.quota\.groups must be an object/);
  refused(t, withNet({ quota: { user: {} } }), /networks\[0\]\.quota: unknown key "user"/);
});

test('publish policy bounds', (t) => {
  const pub = (p: object) => parse(withNet({ publish: p })).networks[0]!.publish;
  t.deepEqual(pub({ minPort: 1, maxPerLease: 0 }), { minPort: 1, maxPerLease: 0 });
  t.deepEqual(pub({ minPort: 65535, maxPerLease: 65535 }), { minPort: 65535, maxPerLease: 65535 });
  refused(t, withNet({ publish: { minPort: 65536 } }), /publish\.minPort must be an integer from 1 to 65535/);
  refused(t, withNet({ publish: { maxPerLease: 65536 } }), /publish\.maxPerLease must be an integer from 0 to 65535/);
  refused(t, withNet({ publish: { maxPerLease: '3' } }), /publish\.maxPerLease must be an integer/);
  refused(t, withNet({ publish: 'x' }), /publish must be an object/);
});

test('two networks: names, bridges and subnets apart; findNetwork picks by name, else the first', (t) => {
  const c = parse({ networks: [{ ...net0, name: 'a' }, { name: 'b', bridge: 'nstest1', subnet: '10.231.1.0/24' }] });
  t.is(findNetwork(c, undefined)!.name, 'a');
  t.is(findNetwork(c, 'b')!.bridge, 'nstest1');
  t.is(findNetwork(c, 'c'), undefined);
  refused(t, { networks: [{ ...net0, name: 'a' }, { name: 'a', bridge: 'nstest1', subnet: '10.231.1.0/24' }] }, /^configuration test\.conf: two networks are named "a"\./);
  refused(t, { networks: [{ ...net0, name: 'a' }, { name: 'b', bridge: 'nstest0', subnet: '10.231.1.0/24' }] }, /networks "b" and "a" use the same bridge/);
  refused(t, { networks: [{ ...net0, name: 'a' }, { name: 'b', bridge: 'nstest1', subnet: '10.231.0.128/25' }] }, /the subnets of "b" and "a" overlap/);
  refused(t, { networks: [{ ...net0, name: 'a' }, { name: 'b', bridge: 'nstest1', subnet: '10.231.1.0/24' }, { name: 'c', bridge: 'nstest2', subnet: '10.231.1.8/29' }] }, /the subnets of "c" and "b" overlap/);
});

test('a /32 is a CIDR with a prefix too long; /33 is no CIDR', (t) => {
  refused(t, withNet({ subnet: '10.231.0.0/32' }), /subnet: the prefix length must be between 8 and 29/);
  refused(t, withNet({ subnet: '10.231.0.0/33' }), /subnet must be an IPv4 CIDR/);
});
