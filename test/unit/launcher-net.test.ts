import test from 'ava';
import { parseArgs, UsageError } from '../../packages/launcher/src/cli.ts';
import { hostsFile, parseResolvConf, resolvConf } from '../../packages/launcher/src/etc.ts';
import { exitedEvent, startedEvent } from '../../packages/launcher/src/info.ts';
import { netsetupCandidates, type Lease } from '../../packages/launcher/src/netsetup.ts';
import { assemble, fillSlot, link } from '../../packages/shared/src/program.ts';

const opts = (argv: string[]) => {
  const p = parseArgs(argv, '0');
  if (p.kind !== 'run') throw new Error('not a run');
  return p.options;
};

test('--net, --netsetup, -p and --info-fd parse; the network defaults to automatic', (t) => {
  const o = opts(['--rootfs', '/r', '--net', 'bridge', '--netsetup', '/opt/netsetup', '-p', '8080:80', '--publish=127.0.0.2:53:53/udp', '--info-fd', '3']);
  t.is(o.net, 'bridge');
  t.is(o.netsetup, '/opt/netsetup');
  t.deepEqual(o.publish, ['8080:80', '127.0.0.2:53:53/udp']);
  t.is(o.infoFd, 3);
  t.is(opts(['--rootfs', '/r']).net, undefined);
});

test('bad network options are usage errors that say what is expected', (t) => {
  t.throws(() => opts(['--rootfs', '/r', '--net', 'host']), { instanceOf: UsageError, message: /choose from: bridge, none/ });
  for (const bad of ['80', '0:80', '8080:70000', '1.2.3:80:80', '300.1.1.1:80:80', '80:80/sctp', 'x:80']) {
    t.throws(() => opts(['--rootfs', '/r', '-p', bad]), { instanceOf: UsageError, message: new RegExp(`^-p ${bad.replace('.', '\\.')}: `) }, bad);
  }
  t.throws(() => opts(['--rootfs', '/r', '--net', 'none', '-p', '80:80']), { message: /cannot be used with --net none/ });
  t.throws(() => opts(['--rootfs', '/r', '--info-fd', 'x']), { message: /file descriptor number/ });
});

test('netsetup is looked for next to the launcher, then in PATH; --netsetup is the only place then', (t) => {
  t.deepEqual(netsetupCandidates(undefined, '/opt/nsbox/bin/launcher', '/usr/bin:relative:/opt/nsbox/bin'), ['/opt/nsbox/bin/netsetup', '/usr/bin/netsetup']);
  t.deepEqual(netsetupCandidates('/x/netsetup', '/opt/nsbox/bin/launcher', '/usr/bin'), ['/x/netsetup']);
});

test('hosts names the sandbox on its address', (t) => {
  t.is(hostsFile('box', '10.0.0.2'), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n10.0.0.2\tbox\n');
  t.regex(hostsFile('box.example', undefined), /\n127\.0\.1\.1\tbox\.example box\n$/);
});

test('resolv.conf: the network configuration first, then the host, loopback resolvers replaced by their upstream', (t) => {
  t.is(resolvConf(['192.0.2.53'], 'nameserver 10.1.1.1\nsearch corp\n', []), '# written by the launcher from the network configuration\nnameserver 192.0.2.53\nsearch corp\n');
  t.regex(resolvConf([], 'nameserver 10.1.1.1\nnameserver fe80::1\noptions edns0 trust-ad\n', []), /^# .*host's resolv.conf\nnameserver 10\.1\.1\.1\noptions edns0\n$/);
  const stub = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n';
  const upstream = 'nameserver 192.168.1.1\nnameserver 192.168.1.2\n';
  t.is(resolvConf([], stub, [undefined, upstream]), "# written by the launcher from the upstream servers of the host's local resolver\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch lan\noptions edns0\n");
  t.regex(resolvConf([], stub, [undefined]), /^# no DNS server reachable[^\n]*\nsearch lan\noptions edns0\n$/);
  t.deepEqual(parseResolvConf('# c\nnameserver 1.2.3.4 # x\ndomain d\n').nameservers, ['1.2.3.4']);
});

test('info lines carry what scripts need', (t) => {
  const lease = { lease: '7', interface: 'eth0', address: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', mtu: 1500, dns: [], published: [] } as unknown as Lease;
  t.deepEqual(startedEvent(42, lease), { event: 'started', pid: 42, network: 'bridge', interface: 'eth0', address: '10.0.0.2', prefix: 24, gateway: '10.0.0.1', mtu: 1500, dns: [], lease: '7', published: [] });
  t.deepEqual(startedEvent(42, undefined), { event: 'started', pid: 42, network: 'none' });
  t.deepEqual(exitedEvent({ code: 3 }), { event: 'exited', code: 3 });
  t.deepEqual(exitedEvent({ signal: 9 }), { event: 'exited', signal: 9 });
});

test('a slot is filled after linking: its content and every length argument', (t) => {
  const image = assemble([{ what: 'w', call: 'write', args: [1, { slot: 's', capacity: 16 }, { slotLength: 's' }] }], 2, 'x64');
  const memory = new Uint8Array(image.bytes.length);
  link(image, memory, 0x1000n);
  fillSlot(image, memory, 's', Buffer.from('hello'));
  const view = new DataView(memory.buffer);
  const buf = Number(view.getBigUint64(64 + 16, true)) - 0x1000;
  t.is(Buffer.from(memory.subarray(buf, buf + 5)).toString(), 'hello');
  t.is(view.getBigUint64(64 + 24, true), 5n);
  t.throws(() => fillSlot(image, memory, 's', new Uint8Array(17)), { message: /holds 16 bytes/ });
});
