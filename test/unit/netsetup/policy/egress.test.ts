import test from 'ava';
import { ipv4ToInt } from '../../../../packages/shared/src/ipv4.ts';
import { NsboxError } from '../../../../packages/shared/src/error.ts';
import { EXIT } from '../../../../packages/netsetup/src/exit.ts';
import { parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
import { decide, isOpen, ordered, parseEntry, parsePortRange, type Egress, type EgressEntry } from '../../../../packages/netsetup/src/policy/egress.ts';

const entry = (verdict: 'allow' | 'deny', text: string): EgressEntry => {
  const e = parseEntry(verdict, text);
  if (typeof e === 'string') throw new Error(e);
  return e;
};

test('entries: address, CIDR, ports and protocol; canonical network address', (t) => {
  t.deepEqual(entry('deny', '169.254.169.254'), { verdict: 'deny', cidr: '169.254.169.254/32', prefix: 32, protocols: ['tcp', 'udp'] });
  t.deepEqual(entry('deny', '10.1.2.3/8'), { verdict: 'deny', cidr: '10.0.0.0/8', prefix: 8, protocols: ['tcp', 'udp'] });
  t.deepEqual(entry('allow', '10.0.0.2:53/udp'), { verdict: 'allow', cidr: '10.0.0.2/32', prefix: 32, ports: [[53, 53]], protocols: ['udp'] });
  t.deepEqual(entry('allow', '0.0.0.0/0:80,443,8000-8100'), { verdict: 'allow', cidr: '0.0.0.0/0', prefix: 0, ports: [[80, 80], [443, 443], [8000, 8100]], protocols: ['tcp', 'udp'] });
  for (const bad of ['', '10.0.0', '10.0.0.0/33', '10.0.0.0/8:', '10.0.0.0/8:0', '10.0.0.0/8:70000', '10.0.0.0/8:90-80', '10.0.0.0/8:80/icmp', '::1', '10.0.0.0/08', 'a:b:c', '1.2.3.4:1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16']) {
    t.is(typeof parseEntry('deny', bad), 'string', bad);
  }
  t.deepEqual(parsePortRange('1-65535'), [1, 65535]);
  t.is(parsePortRange('65536'), undefined);
  t.is(parsePortRange('01'), undefined);
});

test('order: the most specific entry first, ports before none, deny before allow at a tie, else as written', (t) => {
  const es = [entry('allow', '0.0.0.0/0:443'), entry('deny', '10.0.0.0/8'), entry('allow', '10.0.0.2:53'), entry('allow', '10.0.0.0/8'), entry('deny', '10.0.0.0/8:22')];
  t.deepEqual(
    ordered(es).map((e) => `${e.verdict} ${e.cidr}${e.ports ? `:${e.ports[0]![0]}` : ''}`),
    ['allow 10.0.0.2/32:53', 'deny 10.0.0.0/8:22', 'deny 10.0.0.0/8', 'allow 10.0.0.0/8', 'allow 0.0.0.0/0:443'],
  );
});

test('decide: the first (most specific) match decides, else the default', (t) => {
  const policy: Egress = { entries: ordered([entry('deny', '10.0.0.0/8'), entry('allow', '10.0.0.2:53/udp'), entry('allow', '0.0.0.0/0:443/tcp')]), default: 'allow' };
  const d = (a: string, p: 'tcp' | 'udp', port: number) => decide(policy, ipv4ToInt(a), p, port);
  t.is(d('10.0.0.2', 'udp', 53), 'allow');
  t.is(d('10.0.0.2', 'tcp', 53), 'deny');
  t.is(d('10.9.9.9', 'tcp', 443), 'deny');
  t.is(d('192.0.2.1', 'tcp', 443), 'allow');
  t.is(d('192.0.2.1', 'tcp', 22), 'allow');
  t.is(decide({ ...policy, default: 'deny' }, ipv4ToInt('192.0.2.1'), 'tcp', 22), 'deny');
  t.true(isOpen({ entries: [], default: 'allow' }));
  t.false(isOpen({ entries: [], default: 'deny' }));
});

test('configuration: egress per network, defaults open; malformed entries and keys are refused with the place', (t) => {
  const net = (egress?: unknown) => parseConfig(JSON.stringify({ networks: [{ bridge: 'b', subnet: '10.231.0.0/24', ...(egress === undefined ? {} : { egress }) }] }), 't.conf').networks[0]!;
  t.true(isOpen(net().egress));
  const e = net({ default: 'deny', allow: ['10.0.0.2:53/udp'], deny: ['10.0.0.0/8'] }).egress;
  t.is(e.default, 'deny');
  t.deepEqual(e.entries.map((x) => x.cidr), ['10.0.0.2/32', '10.0.0.0/8']);
  for (const [egress, re] of [
    [{ default: 'drop' }, /egress\.default must be "allow" or "deny"/],
    [{ allow: '10.0.0.0/8' }, /egress\.allow must be a list/],
    [{ deny: ['10.0.0.0/40'] }, /egress\.deny: "10\.0\.0\.0\/40" is not ADDRESS/],
    [{ reject: [] }, /egress: unknown key "reject"/],
    [[], /egress must be an object/],
  ] as const) {
    const err = t.throws(() => net(egress), { instanceOf: NsboxError, message: re }) as NsboxError;
    t.is(err.exit, EXIT.CONFIG);
  }
});
