import test from 'ava';
import { exitedEvent, startedEvent } from '../../../packages/launcher/src/info.ts';
import type { Answer as Lease } from '../../../packages/shared/src/protocol.ts';

test('info lines carry what scripts need', (t) => {
  const lease = { lease: '7', interface: 'eth0', address: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', mtu: 1500, dns: [], published: [] } as unknown as Lease;
  t.deepEqual(startedEvent(42, lease), { event: 'started', pid: 42, network: 'bridge', interface: 'eth0', address: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', mtu: 1500, dns: [], lease: '7', published: [] });
  t.deepEqual(startedEvent(42, undefined), { event: 'started', pid: 42, network: 'none' });
  t.deepEqual(exitedEvent({ code: 3 }), { event: 'exited', code: 3 });
  t.deepEqual(exitedEvent({ signal: 9 }), { event: 'exited', signal: 9 });
});
