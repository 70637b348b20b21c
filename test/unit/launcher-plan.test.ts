import test from 'ava';
import { commandCandidates, planSandbox } from '../../packages/launcher/src/plan.ts';
import { judgeStart } from '../../packages/launcher/src/outcome.ts';
import { sandboxEnv, type Options } from '../../packages/launcher/src/options.ts';
import type { Facts, PathFact } from '../../packages/launcher/src/rootfs.ts';
import type { EtcFile } from '../../packages/launcher/src/etc.ts';

const base: Options = { rootfs: '/r', command: ['sh'], hostname: 'h', env: [], cwd: '/', mounts: [], readOnly: false, net: 'none', netsetup: undefined, publish: [], infoFd: undefined };
const etcFile = (name: EtcFile, exists = true): [EtcFile, PathFact] => [name, { hostPath: `/r/etc/${name}`, exists, isDir: false }];
const facts = (extra: [string, boolean][] = [], etc = [etcFile('hostname'), etcFile('hosts'), etcFile('resolv.conf')]): Facts => ({
  etc: { dir: { hostPath: '/r/etc', exists: true, isDir: true }, files: new Map(etc) },
  root: '/r',
  targets: new Map([['/proc', true], ['/dev', true], ['/sys', true], ...extra].map(([p, exists]) => [p as string, { hostPath: `/r${p}`, exists: exists as boolean, isDir: true }])),
  sources: new Map([['/src', { hostPath: '/real/src', isDir: true }]]),
});
const ends = { syncRead: 10, syncWrite: 11 };
const plan = (o: Partial<Options> = {}, f = facts()) => planSandbox({ ...base, ...o }, f, ends, sandboxEnv({ ...base, ...o }, undefined));
const whats = (p: ReturnType<typeof plan>) => p.steps.map((s) => s.what);

test('the order the kernel needs: wait, private /, rootfs, mounts, lo, pivot, exec', (t) => {
  const w = whats(plan());
  const at = (s: string) => w.findIndex((x) => x.startsWith(s));
  t.is(w[0], 'set the parent-death signal');
  t.true(at('wait for the launcher') < at('set the hostname'));
  t.true(at('set the hostname') < at('make / private'));
  t.true(at('make / private') < at('bind the rootfs'));
  t.true(at('bind the rootfs') < at('mount proc'));
  t.true(at('mount proc') < at('mount a tmpfs on /dev'));
  t.true(at('mount sysfs') < at('bring lo up'));
  t.true(at('bring lo up') < at('pivot_root'));
  t.true(at('pivot_root') < at('detach the old root'));
  t.true(at('change directory to /') < at('execute'));
});

test('the wait step checks that one byte arrived', (t) => {
  const wait = plan().steps.find((s) => s.what === 'wait for the launcher')!;
  t.deepEqual({ call: wait.call, expect: wait.expect, fd: wait.args[0] }, { call: 'read', expect: 1, fd: 10 });
});

test('exec attempts follow PATH and are the last steps', (t) => {
  const p = plan();
  t.deepEqual(p.candidates, ['/usr/local/sbin/sh', '/usr/local/bin/sh', '/usr/sbin/sh', '/usr/bin/sh', '/sbin/sh', '/bin/sh']);
  t.is(p.steps.length - p.execFrom, 6);
  t.true(p.steps.slice(p.execFrom).every((s) => s.call === 'execve' && s.soft));
});

test('ro-bind is a recursive bind then a recursive read-only attribute; --read-only the rootfs alone', (t) => {
  const p = plan({ mounts: [{ kind: 'ro-bind', source: '/src', target: '/data' }], readOnly: true }, facts([['/data', true]]));
  const i = p.steps.findIndex((s) => s.what === 'bind /src on /data');
  t.is(p.steps[i]!.args[0] && (p.steps[i]!.args[0] as { str: string }).str, '/real/src');
  t.like(p.steps[i + 1], { call: 'mount_setattr', what: 'make /data read-only', args: [-100, { str: '/r/data' }, 0x8000] });
  t.like(p.steps.find((s) => s.what === 'make the rootfs read-only'), { args: [-100, { str: '/r' }, 0] });
});

test('a missing mount point is created softly right before its mount', (t) => {
  const p = plan({ mounts: [{ kind: 'bind', source: '/src', target: '/a/b' }] }, facts([['/a/b', false]]));
  const w = whats(p);
  const i = w.indexOf('bind /src on /a/b');
  t.deepEqual(w.slice(i - 2, i), ['create /a/b', 'create /a/b']);
  t.true(p.steps[i - 1]!.soft);
});

test('commandCandidates: slash means no lookup; empty PATH entries mean the cwd', (t) => {
  t.deepEqual(commandCandidates('./x', ['PATH=/bin']), ['./x']);
  t.deepEqual(commandCandidates('x', ['PATH=/a:', 'PATH=/b/:']), ['/b/x', './x']);
});

test('judgeStart: success, setup failure, exec failures', (t) => {
  const p = plan({ command: ['/bin/x'] });
  t.deepEqual(judgeStart(p, [], '/bin/x'), { started: true });
  const chdir = p.steps.findIndex((s) => s.what === 'pivot_root into the rootfs');
  t.deepEqual(judgeStart(p, [{ step: chdir, errno: 22 }], '/bin/x'), { started: false, exitCode: 125, message: 'launcher: sandbox setup failed: pivot_root into the rootfs: Invalid argument (EINVAL)' });
  t.like(judgeStart(p, [{ step: p.execFrom, errno: 2 }], '/bin/x'), { exitCode: 127 });
  t.like(judgeStart(p, [{ step: p.execFrom, errno: 13 }], '/bin/x'), { exitCode: 126 });
  const soft = p.steps.findIndex((s) => s.soft);
  t.deepEqual(judgeStart(p, [{ step: soft, errno: 2 }], '/bin/x'), { started: true }, 'soft failures before exec do not stop the start');
});

test('sandboxEnv: clean defaults, TERM from the caller, --env last wins', (t) => {
  t.deepEqual(sandboxEnv({ ...base, env: [['PATH', '/x'], ['A', 'b']] }, 'vt100'), ['PATH=/x', 'HOME=/root', 'HOSTNAME=h', 'TERM=vt100', 'A=b']);
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

test('a terminal on stdin becomes /dev/console (softly); without one there is none', (t) => {
  const withTty = plan({}, { ...facts(), terminal: '/dev/pts/7' });
  const bind = withTty.steps.find((s) => s.what === 'bind the terminal as /dev/console')!;
  t.deepEqual(bind.args.slice(0, 2), [{ str: '/dev/pts/7' }, { str: '/r/dev/console' }]);
  t.true(bind.soft);
  t.false(whats(plan()).some((w) => w.includes('console')));
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
  t.regex((overlay.args[4] as { str: string }).str, /^lowerdir=\/r\/etc,upperdir=\/r\/dev\/.nsbox-etc\/upper,workdir=/);
  const creates = p.steps.filter((s) => s.call === 'openat' && s.what.startsWith('create /etc/')).map((s) => s.args[1]);
  t.deepEqual(creates, [{ str: '/r/dev/.nsbox-hostname' }, { str: '/r/etc/hosts' }, { str: '/r/etc/resolv.conf' }]);
  const at = (w: string) => whats(p).indexOf(w);
  t.true(at('replace /etc/resolv.conf') < at('create /etc/resolv.conf'));
});
