import test from 'ava';
import { DEFAULT_CONFIG_TEXT, parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
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
    [{ ports: 1 }, /publish: unknown key "ports"/],
    [[], /publish must be an object/],
  ] as const) {
    const err = t.throws(() => parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', publish }] }), 't.conf'), { message: re }) as NsboxError;
    t.is(err.exit, EXIT.CONFIG);
  }
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
