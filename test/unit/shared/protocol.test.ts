import test from 'ava';
import { formatAnswer, holdArgs, parseAnswer, releasingLine, type Answer } from '../../../packages/shared/src/protocol.ts';

const answer: Answer = {
  lease: '21615363', network: 'default', pid: 27695, interface: 'eth0', address: '10.200.200.2', prefix: 24, cidr: '10.200.200.2/24',
  gateway: '10.200.200.1', mtu: 1500, dns: [], bridge: 'nsbox0', hostVeth: 'nsb21615363',
  published: [{ hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' }],
};

test('the launcher runs netsetup holding, with the pid on stdin and each -p passed verbatim', (t) => {
  t.deepEqual(holdArgs([]), ['--pid', '-', '--json', '--hold']);
  t.deepEqual(holdArgs(['8080:80', '127.0.0.2:53:53/udp']), ['--pid', '-', '--json', '--hold', '--publish', '8080:80', '--publish', '127.0.0.2:53:53/udp']);
});

test('the answer round-trips through its JSON line; what the launcher cannot use is refused', (t) => {
  t.deepEqual(parseAnswer(formatAnswer(answer, true).trim()), answer);
  t.deepEqual(parseAnswer('{"lease":"1","address":"10.0.0.2"}'), { lease: '1', address: '10.0.0.2', dns: [], published: [] } as unknown as Answer);
  for (const bad of ['', 'eth0 10.0.0.2/24', '{"lease":1,"address":"10.0.0.2"}', '{"lease":"1"}', 'null', '[]']) t.is(parseAnswer(bad), undefined, bad);
});

test('the human answer and the releasing line', (t) => {
  t.is(formatAnswer(answer, false), 'eth0 10.200.200.2/24 via 10.200.200.1 mtu 1500 on nsbox0 (host nsb21615363, lease 21615363, published 8080:80/tcp)\n');
  t.is(formatAnswer({ ...answer, published: [] }, false), 'eth0 10.200.200.2/24 via 10.200.200.1 mtu 1500 on nsbox0 (host nsb21615363, lease 21615363)\n');
  t.is(releasingLine('21615363', true), '{"releasing":"21615363"}\n');
  t.is(releasingLine('21615363', false), 'releasing 21615363\n');
});
