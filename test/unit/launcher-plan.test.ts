import test from 'ava';
import { commandCandidates, planSandbox } from '../../packages/launcher/src/plan.ts';
import { judgeStart } from '../../packages/launcher/src/outcome.ts';
import { sandboxEnv, type Options } from '../../packages/launcher/src/options.ts';
import type { Facts } from '../../packages/launcher/src/rootfs.ts';

const base: Options = { rootfs: '/r', command: ['sh'], hostname: 'h', env: [], cwd: '/', mounts: [], readOnly: false, net: 'none' };
const facts = (extra: [string, boolean][] = []): Facts => ({
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
