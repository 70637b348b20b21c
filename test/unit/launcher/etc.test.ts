import test from 'ava';
import { hostsFile, parseResolvConf, resolvConf } from '../../../packages/launcher/src/etc.ts';
import { assemble, fillSlot, link } from '../../../packages/shared/src/program.ts';
import { etcFile, facts, plan, whats } from './_plan.ts';

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

// The contents reach the stub's program through slots filled before release.
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

test('/etc files: bound over the rootfs files from the /dev tmpfs, contents as slots', (t) => {
  const p = plan({ net: 'bridge' });
  const binds = p.steps.filter((s) => s.call === 'mount' && s.what.startsWith('bind /etc/'));
  t.deepEqual(binds.map((s) => s.args[1]), [{ str: '/r/etc/hostname' }, { str: '/r/etc/hosts' }, { str: '/r/etc/resolv.conf' }]);
  t.deepEqual(binds.map((s) => s.args[0]), [{ str: '/r/dev/.nsbox-hostname' }, { str: '/r/dev/.nsbox-hosts' }, { str: '/r/dev/.nsbox-resolv.conf' }]);
  const writes = p.steps.filter((s) => s.call === 'write' && s.what.startsWith('write /etc/'));
  t.deepEqual(writes.map((s) => s.args[2]), [{ slotLength: 'hostname' }, { slotLength: 'hosts' }, { slotLength: 'resolv.conf' }]);
  t.false(p.steps.some((s) => s.call === 'mount' && s.args[3] && (s.args[3] as { str: string }).str === 'overlay'));
  t.true(p.steps.some((s) => s.call === 'unlinkat' && (s.args[1] as { str: string }).str === '/r/dev/.nsbox-hosts'));
});

test('/etc files: resolv.conf only with a network; a user mount on /etc wins', (t) => {
  t.false(whats(plan()).includes('bind /etc/resolv.conf'));
  t.true(whats(plan()).includes('bind /etc/hosts'));
  const p = plan({ net: 'bridge', mounts: [{ kind: 'tmpfs', target: '/etc' }] }, facts([['/etc', true]]));
  t.false(whats(p).some((w) => w.includes('/etc/')));
});

test('/etc files: a missing one puts an overlay on /etc instead of writing into the rootfs', (t) => {
  const p = plan({ net: 'bridge' }, facts([], [etcFile('hostname'), etcFile('hosts', false), etcFile('resolv.conf', false)]));
  const overlay = p.steps.find((s) => s.call === 'mount' && (s.args[2] as { str: string }).str === 'overlay')!;
  t.deepEqual(overlay.args[1], { str: '/r/etc' });
  t.is((overlay.args[4] as { str: string }).str, 'lowerdir=/proc/self/fd/900,upperdir=/r/etc/upper,workdir=/r/etc/work');
  // The overlay comes before /proc is mounted, so it hides no mount of the sandbox.
  t.true(p.steps.indexOf(overlay) < whats(p).indexOf('mount proc on /proc'));
  const creates = p.steps.filter((s) => s.call === 'openat' && s.what.startsWith('create /etc/')).map((s) => s.args[1]);
  t.deepEqual(creates, [{ str: '/r/dev/.nsbox-hostname' }, { str: '/r/etc/hosts' }, { str: '/r/etc/resolv.conf' }]);
  const at = (w: string) => {
    const i = whats(p).indexOf(w);
    t.not(i, -1, `no step "${w}"`);
    return i;
  };
  t.true(at('replace /etc/resolv.conf') < at('create /etc/resolv.conf'));
});
