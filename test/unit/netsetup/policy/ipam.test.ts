import test from 'ava';
import { allocate, broadcastOf, capacity } from '../../../../packages/netsetup/src/policy/ipam.ts';

const net = { subnet: '10.231.0.0/24', gateway: '10.231.0.1' };

test('allocation takes the lowest free host address, skipping the gateway', (t) => {
  t.is(allocate(net, []), '10.231.0.2');
  t.is(allocate(net, ['10.231.0.2', '10.231.0.3']), '10.231.0.4');
  t.is(allocate(net, ['10.231.0.3']), '10.231.0.2');
  t.is(allocate({ subnet: '10.231.0.0/24', gateway: '10.231.0.2' }, []), '10.231.0.1');
});

test('never the network or broadcast address; undefined when full', (t) => {
  const small = { subnet: '10.231.0.8/29', gateway: '10.231.0.9' };
  t.is(capacity(small), 5);
  const used: string[] = [];
  for (;;) {
    const a = allocate(small, used);
    if (!a) break;
    used.push(a);
  }
  t.deepEqual(used, ['10.231.0.10', '10.231.0.11', '10.231.0.12', '10.231.0.13', '10.231.0.14']);
  t.is(broadcastOf(small), '10.231.0.15');
});

test('distinct addresses for many leases', (t) => {
  const used: string[] = [];
  for (let i = 0; i < 200; i++) used.push(allocate(net, used)!);
  t.is(new Set(used).size, 200);
  t.false(used.includes('10.231.0.1'));
});

test('capacity and the last address: hosts minus the gateway; the broadcast address is never handed out', (t) => {
  t.is(capacity({ subnet: '10.231.0.0/24' }), 253);
  t.is(broadcastOf({ subnet: '10.231.0.0/24' }), '10.231.0.255');
  const used = Array.from({ length: 252 }, (_, i) => `10.231.0.${i + 2}`); // .2 to .253
  t.is(allocate(net, used), '10.231.0.254');
  t.is(allocate(net, used.concat('10.231.0.254')), undefined);
});
