import test from 'ava';
import {
  formatAnswer, holdArgs, isNoWaitSlot, NETSETUP_ENV, noWaitSlotLine, parseAnswer, parseServerError, parseServerRequest, releasingLine, SANDBOX_IFNAME,
  serverErrorLine, serverName, serverRequest, type Answer,
} from '../../../packages/shared/src/protocol.ts';

const answer: Answer = {
  lease: '21615363', network: 'default', pid: 27695, interface: 'eth0', address: '10.200.200.2', prefix: 24, cidr: '10.200.200.2/24',
  gateway: '10.200.200.1', mtu: 1500, dns: [], bridge: 'nsbox0', hostVeth: 'nsb21615363',
  published: [{ hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' }],
};

test('the launcher runs netsetup holding, with the pid on stdin and each -p passed verbatim', (t) => {
  t.deepEqual(holdArgs([]), ['--pid', '-', '--json', '--hold']);
  t.deepEqual(holdArgs(['8080:80', '127.0.0.2:53:53/udp']), ['--pid', '-', '--json', '--hold', '--publish', '8080:80', '--publish', '127.0.0.2:53:53/udp']);
  // Again once the pid is known, when no wait slot was free.
  t.deepEqual(holdArgs(['8080:80'], 4242), ['--pid', '4242', '--json', '--hold', '--publish', '8080:80']);
});

test('no wait slot: a line of its own that is no answer, and only it is taken for one', (t) => {
  t.is(noWaitSlotLine(8), '{"noWaitSlot":8}\n');
  t.true(isNoWaitSlot(noWaitSlotLine(8).trim()));
  t.is(parseAnswer(noWaitSlotLine(8).trim()), undefined);
  for (const other of ['', formatAnswer(answer, true).trim(), '{"releasing":"21615363"}', '{"noWaitSlot":"8"}', '{"noWaitSlot":true}', 'null', '[]', '8']) t.false(isNoWaitSlot(other), other);
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

test('netsetup runs with a fixed PATH only; the answer keeps the dns and ports it has', (t) => {
  t.deepEqual(NETSETUP_ENV, { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' });
  t.is(SANDBOX_IFNAME, 'eth0');
  const a = parseAnswer('{"lease":"1","address":"10.0.0.2","dns":["10.0.0.1"],"published":[{"hostAddress":"0.0.0.0","hostPort":1,"port":2,"protocol":"udp"}]}')!;
  t.deepEqual(a.dns, ['10.0.0.1']);
  t.is(a.published.length, 1);
  t.is(formatAnswer(answer, true), `${JSON.stringify(answer)}\n`);
  t.is(formatAnswer({ ...answer, published: [...answer.published, { hostAddress: '192.0.2.1', hostPort: 53, port: 53, protocol: 'udp' }] }, false),
    'eth0 10.200.200.2/24 via 10.200.200.1 mtu 1500 on nsbox0 (host nsb21615363, lease 21615363, published 8080:80/tcp,192.0.2.1:53:53/udp)\n');
});

test('a server is one per user and per installed file: another uid, inode, device or modification time names another', (t) => {
  const file = { dev: 2049n, ino: 1234n, mtimeNs: 1700000000123456789n };
  const name = serverName(1000, file);
  t.is(name, 'nsbox-netsetup/1000/2049/1234/1700000000123456789');
  t.true(Buffer.byteLength(name) < 107, 'fits an abstract sun_path');
  t.not(serverName(1001, file), name);
  for (const other of [{ ...file, ino: 1235n }, { ...file, dev: 2050n }, { ...file, mtimeNs: file.mtimeNs + 1n }]) t.not(serverName(1000, other), name);
});

test('a server request carries the arguments a netsetup would get, and only a list of strings is one', (t) => {
  const args = [...holdArgs(['8080:80'], 4242), '--network', 'test'];
  const line = serverRequest(args);
  t.true(line.endsWith('\n'));
  t.deepEqual(parseServerRequest(line.trim()), args);
  for (const bad of ['', 'x', '{}', '{"argv":"--pid"}', '{"argv":[1]}', '[]']) t.is(parseServerRequest(bad), undefined, bad);
});

test('a server refusal carries netsetup\'s line and exit code; an answer is no refusal', (t) => {
  const line = serverErrorLine('netsetup: quota: 8 leases. Release one', 4);
  t.deepEqual(parseServerError(line.trim()), { error: 'netsetup: quota: 8 leases. Release one', exit: 4 });
  t.is(parseServerError(formatAnswer(answer, true).trim()), undefined);
  t.is(parseServerError('{"error":"x","exit":"4"}'), undefined);
  t.is(parseServerError(''), undefined);
});
