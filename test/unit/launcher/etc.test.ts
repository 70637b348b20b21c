import test from 'ava';
import { etcContents, hostsFile, parseResolvConf, resolvConf } from '../../../packages/launcher/src/etc.ts';
import { AT_FDCWD, MS_BIND, MS_NODEV, MS_NOSUID, O_CLOEXEC, O_CREAT, O_EXCL, O_NOFOLLOW, O_PATH, O_WRONLY } from '../../../packages/shared/src/syscalls.ts';
import { assemble, fillSlot, link } from '../../../packages/shared/src/program.ts';
import { base, etcFile, facts, plan, whats } from './_plan.ts';

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

const S = (s: string) => ({ str: s });
const argsOf = (p: ReturnType<typeof plan>, what: string) => p.steps.filter((s) => s.what === what).map((s) => [s.call, ...s.args, ...(s.soft ? ['soft'] : [])]);

test('/etc overlay: every step and argument; a directory where a file should be counts as missing; --read-only makes /etc read-only', (t) => {
  const f = facts([], [etcFile('hostname'), etcFile('hosts', false), ['resolv.conf', { hostPath: '/r/etc/resolv.conf', exists: true, isDir: true }]]);
  const p = plan({ net: 'bridge', readOnly: true }, f);
  // The missing files are added through an overlay on /etc: its directory is held
  // open (fd 900) before a tmpfs covers it, and is the overlay's lower layer.
  const add = 'add mount points in /etc (an overlay on it)';
  t.deepEqual(argsOf(p, add), [
    ['openat', AT_FDCWD, S('/r/etc'), O_PATH | O_CLOEXEC],
    ['dup3', 'saved', 900, O_CLOEXEC],
    ['close', 'saved'],
    ['mount', S('tmpfs'), S('/r/etc'), S('tmpfs'), MS_NOSUID | MS_NODEV, S('mode=0700')],
    ['mkdirat', AT_FDCWD, S('/r/etc/upper'), 0o755],
    ['fchmodat', AT_FDCWD, S('/r/etc/upper'), 0o755],
    ['mkdirat', AT_FDCWD, S('/r/etc/work'), 0o700],
    ['mount', S('overlay'), S('/r/etc'), S('overlay'), 0, S('lowerdir=/proc/self/fd/900,upperdir=/r/etc/upper,workdir=/r/etc/work')],
    ['close', 900],
  ]);
  const create = O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW;
  t.deepEqual(argsOf(p, 'replace /etc/hosts'), [['unlinkat', AT_FDCWD, S('/r/etc/hosts'), 0, 'soft']]);
  t.deepEqual(argsOf(p, 'create /etc/hosts'), [['openat', AT_FDCWD, S('/r/etc/hosts'), create, 0o644]]);
  t.deepEqual(argsOf(p, 'write /etc/hosts'), [['write', 'saved', { slot: 'hosts', capacity: 512 }, { slotLength: 'hosts' }], ['close', 'saved']]);
  t.deepEqual(argsOf(p, 'create /etc/resolv.conf'), [['openat', AT_FDCWD, S('/r/etc/resolv.conf'), create, 0o644]]);
  t.deepEqual(argsOf(p, 'write /etc/resolv.conf')[0], ['write', 'saved', { slot: 'resolv.conf', capacity: 2048 }, { slotLength: 'resolv.conf' }]);
  t.deepEqual(argsOf(p, 'create /etc/hostname'), [['openat', AT_FDCWD, S('/r/dev/.nsbox-hostname'), create, 0o644]]);
  t.deepEqual(argsOf(p, 'write /etc/hostname')[0], ['write', 'saved', { slot: 'hostname', capacity: 80 }, { slotLength: 'hostname' }]);
  t.deepEqual(argsOf(p, 'bind /etc/hostname'), [['mount', S('/r/dev/.nsbox-hostname'), S('/r/etc/hostname'), 0, MS_BIND, 0], ['unlinkat', AT_FDCWD, S('/r/dev/.nsbox-hostname'), 0]]);
  t.true(p.steps.find((s) => s.what === 'create /etc/hosts')!.save);
  const ro = p.steps.find((s) => s.what === 'make /etc read-only')!;
  t.deepEqual(ro.args.slice(0, 3), [AT_FDCWD, S('/r/etc'), 0]);
  t.false(whats(plan({ net: 'bridge' }, f)).includes('make /etc read-only'));
  t.false(whats(plan({ net: 'bridge', readOnly: true })).includes('make /etc read-only'), 'no overlay, nothing to make read-only');
});

test('/etc: nothing without an /etc directory; no overlay when its path would break the mount options; a user mount on one file wins for that file', (t) => {
  const noEtc = facts();
  noEtc.etc.dir = { hostPath: '/r/etc', exists: false, isDir: false };
  t.false(whats(plan({ net: 'bridge' }, noEtc)).some((w) => w.includes('/etc')));
  const fileEtc = facts();
  fileEtc.etc.dir = { hostPath: '/r/etc', exists: true, isDir: false };
  t.false(whats(plan({ net: 'bridge' }, fileEtc)).some((w) => w.includes('/etc')));
  for (const odd of ['/r,x/etc', '/r:x/etc', '/r\\x/etc']) {
    const f = facts([], [etcFile('hostname'), etcFile('hosts', false)]);
    f.etc.dir = { hostPath: odd, exists: true, isDir: true };
    const w = whats(plan({}, f));
    t.false(w.some((x) => x.startsWith('add /etc') || x.includes('/etc/hosts')), odd);
    t.true(w.includes('bind /etc/hostname'), odd);
  }
  const p = plan({ net: 'bridge', mounts: [{ kind: 'bind', source: '/src', target: '/etc/hosts' }] }, facts([['/etc/hosts', true]]));
  t.deepEqual(p.steps.filter((s) => s.call === 'mount' && s.what.startsWith('bind /etc/')).map((s) => s.what), ['bind /etc/hostname', 'bind /etc/resolv.conf']);
});

test('resolv.conf parsing: comments, domain and search, options from every line, a bare nameserver', (t) => {
  t.deepEqual(parseResolvConf('  nameserver\t10.0.0.1  \n; x\nnameserver\nnameserver 10.0.0.2;c\ndomain a.example\nsearch b.example c.example\noptions ndots:2\noptions rotate\n'), {
    nameservers: ['10.0.0.1', '10.0.0.2'],
    search: ['b.example', 'c.example'],
    options: ['ndots:2', 'rotate'],
  });
  t.deepEqual(parseResolvConf('search a\ndomain d\n').search, ['d'], 'the last one wins');
  t.deepEqual(parseResolvConf(''), { nameservers: [], search: [], options: [] });
});

test('resolv.conf: three servers at most, IPv4 only, upstream only for a loopback-only host, first upstream that has one', (t) => {
  t.is(resolvConf(['10.0.0.1', '2001:db8::1', '10.0.0.2', '10.0.0.3', '10.0.0.4'], undefined, []),
    '# written by the launcher from the network configuration\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n');
  t.is(resolvConf(['2001:db8::1'], 'nameserver 10.9.9.9\n', []), "# written by the launcher from the host's resolv.conf\nnameserver 10.9.9.9\n");
  t.is(resolvConf([], 'nameserver 127.0.0.53\nnameserver 10.9.9.9\n', ['nameserver 10.8.8.8\n']), "# written by the launcher from the host's resolv.conf\nnameserver 10.9.9.9\n");
  t.is(resolvConf([], 'nameserver 2001:db8::1\n', ['nameserver 10.8.8.8\n']), '# no DNS server reachable from the sandbox is known: set "dns" in netsetup.conf\n');
  t.is(resolvConf([], 'nameserver 127.0.0.53\n', ['nameserver 127.0.0.1\n', undefined, 'nameserver 10.7.7.7\n', 'nameserver 10.6.6.6\n']),
    "# written by the launcher from the upstream servers of the host's local resolver\nnameserver 10.7.7.7\n");
  t.is(resolvConf([], undefined, []), '# no DNS server reachable from the sandbox is known: set "dns" in netsetup.conf\n');
  const long = resolvConf(['10.0.0.1'], `search ${'a'.repeat(3000)}\n`, []);
  t.is(long.length, 2048, 'cut to the room the program has for it');
  t.true(long.startsWith('# written by the launcher from the network configuration\nnameserver 10.0.0.1\nsearch aaa'));
});

test('etcContents: hostname and hosts always, resolv.conf with a network, from the lease', (t) => {
  t.deepEqual(etcContents({ ...base, hostname: 'box.lan' }, undefined), [
    ['hostname', 'box.lan\n'],
    ['hosts', '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tbox.lan box\n'],
  ]);
  const withNet = etcContents({ ...base, net: 'bridge' }, { address: '10.0.0.2', dns: ['10.0.0.1'] });
  t.deepEqual(withNet.map(([f]) => f), ['hostname', 'hosts', 'resolv.conf']);
  t.is(withNet[1]![1], hostsFile('h', '10.0.0.2'));
  t.true(withNet[2]![1].startsWith('# written by the launcher from the network configuration\nnameserver 10.0.0.1\n'));
});

test('resolv.conf: several spaces, unknown keys, search and options joined with spaces, a loopback among IPv6 servers', (t) => {
  t.deepEqual(parseResolvConf('nameserver   10.0.0.1\nsortlist 10.0.0.0\n'), { nameservers: ['10.0.0.1'], search: [], options: [] });
  t.is(resolvConf(['10.0.0.1'], 'search a b\noptions x y\n', []), '# written by the launcher from the network configuration\nnameserver 10.0.0.1\nsearch a b\noptions x y\n');
  t.is(resolvConf([], 'nameserver fe80::1\nnameserver 127.0.0.53\n', ['nameserver 10.7.7.7\n']), "# written by the launcher from the upstream servers of the host's local resolver\nnameserver 10.7.7.7\n");
  t.deepEqual(etcContents({ ...base, net: 'bridge' }, undefined).map(([f]) => f), ['hostname', 'hosts', 'resolv.conf'], 'a network without a lease yet');
});
