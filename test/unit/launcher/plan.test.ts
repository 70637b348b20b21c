import test from 'ava';
import { commandCandidates } from '../../../packages/launcher/src/plan.ts';
import {
  MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, O_CREAT, O_NOFOLLOW, PR_SET_PDEATHSIG, SIGNALS,
} from '../../../packages/shared/src/syscalls.ts';
import type { Step } from '../../../packages/shared/src/program.ts';
import { etcFile, facts, plan, whats } from './_plan.ts';

const str = (s: Step, i: number): unknown => (s.args[i] as { str?: string } | undefined)?.str;
/** The mount step onto `target` with file system type `fstype` (null: a bind). */
const mountOf = (steps: Step[], target: string, fstype: string | null): Step | undefined =>
  steps.find((s) => s.call === 'mount' && str(s, 1) === target && (fstype === null ? s.args[2] === 0 : str(s, 2) === fstype));

test('the order the kernel needs: wait, private /, rootfs, mounts, lo, pivot, exec', (t) => {
  const w = whats(plan());
  const at = (s: string): number => {
    const i = w.findIndex((x) => x.startsWith(s));
    t.not(i, -1, `no step "${s}"`);
    return i;
  };
  const order = ['set the parent-death signal', 'wait for the launcher', 'set the hostname', 'make / private', 'bind the rootfs', 'mount proc',
    'mount a tmpfs on /dev', 'mount sysfs', 'bring lo up', 'pivot_root', 'detach the old root', 'change directory to /', 'execute'];
  t.is(at(order[0]!), 0);
  for (let i = 1; i < order.length; i++) t.true(at(order[i - 1]!) < at(order[i]!), `${order[i - 1]} before ${order[i]}`);
});

test('the parent-death signal is SIGKILL', (t) => {
  t.deepEqual(plan().steps[0], { what: 'set the parent-death signal', call: 'prctl', args: [PR_SET_PDEATHSIG, SIGNALS.SIGKILL] });
});

test('/ is made private recursively (not slave), before anything is mounted', (t) => {
  const p = plan();
  const priv = p.steps.find((s) => s.what === 'make / private')!;
  t.deepEqual(priv.args, [0, { str: '/' }, 0, MS_REC | MS_PRIVATE, 0]);
  t.is(p.steps.findIndex((s) => s.call === 'mount'), p.steps.indexOf(priv));
});

test('mount flags: proc nosuid, nodev, noexec; sysfs read-only; /dev and devpts nosuid, noexec', (t) => {
  const { steps } = plan();
  t.is(mountOf(steps, '/r/proc', 'proc')?.args[3], MS_NOSUID | MS_NODEV | MS_NOEXEC);
  t.is(mountOf(steps, '/r/sys', 'sysfs')?.args[3], MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
  t.is(mountOf(steps, '/r/dev', 'tmpfs')?.args[3], MS_NOSUID | MS_NOEXEC);
  t.is(mountOf(steps, '/r/dev/pts', 'devpts')?.args[3], MS_NOSUID | MS_NOEXEC);
  t.is(mountOf(steps, '/r/dev/shm', 'tmpfs')?.args[3], MS_NOSUID | MS_NODEV);
  t.is(mountOf(steps, '/r', null)?.args[3], MS_BIND | MS_REC, 'the rootfs is bound with what is mounted below it');
});

test('files made as mount points are never opened through a link (O_NOFOLLOW)', (t) => {
  const p = plan({ mounts: [{ kind: 'bind', source: '/src', target: '/f' }], net: 'bridge' },
    { ...facts([['/f', false]], [etcFile('hostname'), etcFile('hosts', false), etcFile('resolv.conf')]), terminal: '/dev/pts/1' });
  p.steps.length = p.execFrom;
  const creates = p.steps.filter((s) => s.call === 'openat' && ((s.args[2] as number) & O_CREAT) !== 0);
  t.true(creates.length >= 6 + 1 + 3, `${creates.length} files created`);
  for (const s of creates) t.is((s.args[2] as number) & O_NOFOLLOW, O_NOFOLLOW, s.what);
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
  t.not(i, -1);
  t.is(p.steps[i]!.args[0] && (p.steps[i]!.args[0] as { str: string }).str, '/real/src');
  t.like(p.steps[i + 1], { call: 'mount_setattr', what: 'make /data read-only', args: [-100, { str: '/r/data' }, 0x8000] });
  t.like(p.steps.find((s) => s.what === 'make the rootfs read-only'), { args: [-100, { str: '/r' }, 0] });
});

test('a missing mount point is created softly right before its mount', (t) => {
  const p = plan({ mounts: [{ kind: 'bind', source: '/src', target: '/a/b' }] }, facts([['/a/b', false]]));
  const w = whats(p);
  const i = w.indexOf('bind /src on /a/b');
  t.not(i, -1);
  t.deepEqual(w.slice(i - 2, i), ['create /a/b', 'create /a/b']);
  t.true(p.steps[i - 1]!.soft);
});

test('commandCandidates: slash means no lookup; empty PATH entries mean the cwd', (t) => {
  t.deepEqual(commandCandidates('./x', ['PATH=/bin']), ['./x']);
  t.deepEqual(commandCandidates('x', ['PATH=/a:', 'PATH=/b/:']), ['/b/x', './x']);
});

test('a terminal on stdin becomes /dev/console (softly); without one there is none', (t) => {
  const withTty = plan({}, { ...facts(), terminal: '/dev/pts/7' });
  const bind = withTty.steps.find((s) => s.what === 'bind the terminal as /dev/console')!;
  t.deepEqual(bind.args.slice(0, 2), [{ str: '/dev/pts/7' }, { str: '/r/dev/console' }]);
  t.true(bind.soft);
  t.false(whats(plan()).some((w) => w.includes('console')));
});

test('subordinate ids: the supplementary groups are dropped right after the wait; not with the single mapping', (t) => {
  const w = whats(plan({}, { ...facts(), ids: 'subids' }));
  t.is(w.indexOf('drop the supplementary groups'), w.indexOf('wait for the launcher') + 1);
  t.false(whats(plan()).includes('drop the supplementary groups'));
});

test('--init: the init is bound read-only into /dev and runs the command after --', (t) => {
  const p = plan({ command: ['sh', '-c', 'x'] }, { ...facts(), init: '/usr/bin/tini-static' });
  const bind = mountOf(p.steps, '/r/dev/init', null)!;
  t.deepEqual(bind.args[0], { str: '/usr/bin/tini-static' });
  t.true(p.steps.indexOf(bind) > whats(p).indexOf('mount a tmpfs on /dev'));
  t.true(whats(p).includes('make /dev/init read-only'));
  t.deepEqual(p.candidates, ['/dev/init']);
  t.deepEqual(p.steps.slice(p.execFrom).map((s) => s.args[1]), [{ strings: ['/dev/init', '--', 'sh', '-c', 'x'] }]);
});

const overlayMounts = (p: ReturnType<typeof plan>) => p.steps.filter((s) => s.call === 'mount' && str(s, 2) === 'overlay').map((s) => str(s, 1));

test('missing mount points: made on disk where the caller may write, in an overlay where it may not or with --read-only', (t) => {
  const bindNew = { mounts: [{ kind: 'bind' as const, source: '/src', target: '/srv/data' }] };
  const writable = plan(bindNew, facts([['/srv/data', false]], undefined, true));
  t.deepEqual(overlayMounts(writable), []);
  t.true(writable.steps.some((s) => s.call === 'mkdirat' && str(s, 1) === '/r/srv/data'));
  const locked = plan(bindNew, facts([['/srv/data', false]], undefined, false));
  t.deepEqual(overlayMounts(locked), ['/r/srv']);
  const ro = plan({ ...bindNew, readOnly: true }, facts([['/srv/data', false], ['/tmp', true]], undefined, true));
  t.deepEqual(overlayMounts(ro), ['/r/srv']);
  t.true(whats(ro).includes('make /srv read-only'));
});

test('overlays: before /proc is mounted, ancestors first, one per directory; none for a mount point inside an earlier mount', (t) => {
  const f = facts([['/a/x', false], ['/b/y', false], ['/a/z', false], ['/t', true], ['/t/new', false]], undefined, false);
  f.targets.get('/a/x')!.base = { hostPath: '/r/a', writable: false, mode: 0o755 };
  f.targets.get('/a/z')!.base = { hostPath: '/r/a', writable: false, mode: 0o755 };
  f.targets.get('/b/y')!.base = { hostPath: '/r', writable: false, mode: 0o755 };
  const mounts = [
    { kind: 'tmpfs' as const, target: '/a/x' }, { kind: 'tmpfs' as const, target: '/b/y' }, { kind: 'tmpfs' as const, target: '/a/z' },
    { kind: 'tmpfs' as const, target: '/t' }, { kind: 'tmpfs' as const, target: '/t/new' },
  ];
  const p = plan({ mounts }, f);
  t.deepEqual(overlayMounts(p), ['/r', '/r/a']);
  const lastOverlay = Math.max(...p.steps.map((s, i) => (s.call === 'mount' && str(s, 2) === 'overlay' ? i : -1)));
  t.true(lastOverlay < whats(p).indexOf('mount proc on /proc'));
  const o = p.steps.find((s) => s.call === 'mount' && str(s, 2) === 'overlay' && str(s, 1) === '/r/a')!;
  t.is(str(o, 4), 'lowerdir=/proc/self/fd/900,upperdir=/r/a/upper,workdir=/r/a/work');
  // The lower directory is held open before the tmpfs covers it, and closed after.
  const i = p.steps.indexOf(o);
  t.deepEqual(p.steps.slice(i - 7, i - 4).map((s) => s.call), ['openat', 'dup3', 'close']);
  t.deepEqual(p.steps[i + 1], { what: o.what, call: 'close', args: [900] });
});

test('a directory whose path cannot be named in overlay options falls back to the rootfs on disk', (t) => {
  const f = facts([['/x,y/z', false]], undefined, false);
  f.targets.get('/x,y/z')!.base = { hostPath: '/r/x,y', writable: false, mode: 0o755 };
  t.deepEqual(overlayMounts(plan({ mounts: [{ kind: 'tmpfs', target: '/x,y/z' }] }, f)), []);
});
