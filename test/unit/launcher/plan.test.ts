import test from 'ava';
import { commandCandidates } from '../../../packages/launcher/src/plan.ts';
import {
  AF_INET, AT_FDCWD, AT_RECURSIVE, F_SETFD, IFF_LOOPBACK, IFF_RUNNING, IFF_UP, MNT_DETACH, MOUNT_ATTR_RDONLY, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
  MS_PRIVATE, MS_RDONLY, MS_REC, O_CLOEXEC, O_CREAT, O_NOFOLLOW, O_WRONLY, PR_SET_PDEATHSIG, SIGNALS, SIOCSIFFLAGS, SOCK_CLOEXEC, SOCK_DGRAM,
} from '../../../packages/shared/src/syscalls.ts';
import { sandboxEnv } from '../../../packages/launcher/src/options.ts';
import type { Step } from '../../../packages/shared/src/program.ts';
import { base, etcFile, facts, plan, whats } from './_plan.ts';

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

// One plan with every kind of step: a tmpfs, a bind whose existing target a tmpfs
// hides, a read-only bind on a missing path, --read-only, a network and a terminal.
const full = () =>
  plan(
    { mounts: [{ kind: 'tmpfs', target: '/t' }, { kind: 'bind', source: '/src', target: '/t/in' }, { kind: 'ro-bind', source: '/src', target: '/ro/deep' }], readOnly: true, net: 'bridge', cwd: '/w' },
    { ...facts([['/t', true], ['/t/in', true], ['/ro/deep', false]]), terminal: '/dev/pts/3' },
  );

test('the whole plan: each step, what it is called in an error, and which may fail', (t) => {
  t.deepEqual(full().steps.map((s) => `${s.what} | ${s.call}${s.soft ? ' | soft' : ''}`), [
    "set the parent-death signal | prctl",
    "close the sync pipe | close",
    "wait for the launcher | read",
    "set the hostname to h | sethostname",
    "make / private | mount",
    "bind the rootfs /r | mount",
    "add mount points in /ro (an overlay on it) | openat",
    "add mount points in /ro (an overlay on it) | dup3",
    "add mount points in /ro (an overlay on it) | close",
    "add mount points in /ro (an overlay on it) | mount",
    "add mount points in /ro (an overlay on it) | mkdirat",
    "add mount points in /ro (an overlay on it) | fchmodat",
    "add mount points in /ro (an overlay on it) | mkdirat",
    "add mount points in /ro (an overlay on it) | mount",
    "add mount points in /ro (an overlay on it) | close",
    "mount proc on /proc | mount",
    "mount a tmpfs on /dev | mount",
    "create /dev/null | openat",
    "create /dev/null | close",
    "bind /dev/null | mount",
    "create /dev/zero | openat",
    "create /dev/zero | close",
    "bind /dev/zero | mount",
    "create /dev/full | openat",
    "create /dev/full | close",
    "bind /dev/full | mount",
    "create /dev/random | openat",
    "create /dev/random | close",
    "bind /dev/random | mount",
    "create /dev/urandom | openat",
    "create /dev/urandom | close",
    "bind /dev/urandom | mount",
    "create /dev/tty | openat",
    "create /dev/tty | close",
    "bind /dev/tty | mount",
    "create /dev/pts | mkdirat",
    "mount devpts on /dev/pts | mount",
    "create /dev/shm | mkdirat",
    "mount a tmpfs on /dev/shm | mount",
    "create /dev/fd | symlinkat",
    "create /dev/stdin | symlinkat",
    "create /dev/stdout | symlinkat",
    "create /dev/stderr | symlinkat",
    "create /dev/ptmx | symlinkat",
    "create /dev/console | openat | soft",
    "create /dev/console | close | soft",
    "bind the terminal as /dev/console | mount | soft",
    "mount sysfs on /sys | mount",
    "mount a tmpfs on /t | mount",
    "create /t/in | mkdirat | soft",
    "create /t/in | mkdirat | soft",
    "bind /src on /t/in | mount",
    "create /ro/deep | mkdirat | soft",
    "create /ro/deep | mkdirat | soft",
    "bind /src on /ro/deep | mount",
    "make /ro/deep read-only | mount_setattr",
    "create /etc/hostname | openat",
    "write /etc/hostname | write",
    "write /etc/hostname | close",
    "bind /etc/hostname | mount",
    "bind /etc/hostname | unlinkat",
    "create /etc/hosts | openat",
    "write /etc/hosts | write",
    "write /etc/hosts | close",
    "bind /etc/hosts | mount",
    "bind /etc/hosts | unlinkat",
    "create /etc/resolv.conf | openat",
    "write /etc/resolv.conf | write",
    "write /etc/resolv.conf | close",
    "bind /etc/resolv.conf | mount",
    "bind /etc/resolv.conf | unlinkat",
    "make the rootfs read-only | mount_setattr",
    "make /ro read-only | mount_setattr",
    "open a socket to bring lo up | socket",
    "bring lo up | ioctl",
    "close the lo socket | close",
    "allow ping | openat | soft",
    "allow ping | write | soft",
    "allow ping | close | soft",
    "enter the rootfs /r | chdir",
    "pivot_root into the rootfs | pivot_root",
    "detach the old root | umount2",
    "change directory to /w | chdir",
    "keep fd 0 open across exec | fcntl | soft",
    "keep fd 1 open across exec | fcntl | soft",
    "keep fd 2 open across exec | fcntl | soft",
    "execute /usr/local/sbin/sh | execve | soft",
    "execute /usr/local/bin/sh | execve | soft",
    "execute /usr/sbin/sh | execve | soft",
    "execute /usr/bin/sh | execve | soft",
    "execute /sbin/sh | execve | soft",
    "execute /bin/sh | execve | soft",
  ]);
});

test('the whole plan: the arguments that matter', (t) => {
  const { steps } = full();
  const step = (what: string, call: string): Step => {
    const s = steps.find((x) => x.what === what && x.call === call);
    if (!s) throw new Error(`no step ${what} (${call})`);
    return s;
  };
  t.deepEqual(step('close the sync pipe', 'close').args, [11]);
  t.deepEqual(step('set the hostname to h', 'sethostname').args, [{ str: 'h' }, 1]);
  t.deepEqual(plan({ hostname: 'hé' }).steps.find((s) => s.call === 'sethostname')!.args, [{ str: 'hé' }, 3], 'the length in bytes');
  t.deepEqual(step('mount a tmpfs on /dev', 'mount').args, [{ str: 'tmpfs' }, { str: '/r/dev' }, { str: 'tmpfs' }, MS_NOSUID | MS_NOEXEC, { str: 'mode=0755,size=1m' }]);
  t.deepEqual(step('create /dev/null', 'openat').args, [AT_FDCWD, { str: '/r/dev/null' }, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o644]);
  t.true(step('create /dev/null', 'openat').save);
  t.deepEqual(step('bind /dev/tty', 'mount').args, [{ str: '/dev/tty' }, { str: '/r/dev/tty' }, 0, MS_BIND, 0]);
  t.deepEqual(step('create /dev/pts', 'mkdirat').args, [AT_FDCWD, { str: '/r/dev/pts' }, 0o755]);
  t.deepEqual(step('mount devpts on /dev/pts', 'mount').args[4], { str: 'newinstance,ptmxmode=0666,mode=0620' });
  t.deepEqual(step('create /dev/shm', 'mkdirat').args, [AT_FDCWD, { str: '/r/dev/shm' }, 0o755]);
  t.deepEqual(step('mount a tmpfs on /dev/shm', 'mount').args[4], { str: 'mode=1777' });
  t.deepEqual(steps.filter((s) => s.call === 'symlinkat').map((s) => [(s.args[0] as { str: string }).str, s.args[1], (s.args[2] as { str: string }).str]), [
    ['/proc/self/fd', AT_FDCWD, '/r/dev/fd'],
    ['/proc/self/fd/0', AT_FDCWD, '/r/dev/stdin'],
    ['/proc/self/fd/1', AT_FDCWD, '/r/dev/stdout'],
    ['/proc/self/fd/2', AT_FDCWD, '/r/dev/stderr'],
    ['pts/ptmx', AT_FDCWD, '/r/dev/ptmx'],
  ]);
  t.deepEqual(step('mount a tmpfs on /t', 'mount').args, [{ str: 'tmpfs' }, { str: '/r/t' }, { str: 'tmpfs' }, MS_NOSUID | MS_NODEV, { str: 'mode=1777' }]);
  t.deepEqual(steps.filter((s) => s.what === 'create /t/in').map((s) => s.args), [[AT_FDCWD, { str: '/r/t' }, 0o755], [AT_FDCWD, { str: '/r/t/in' }, 0o755]], 'hidden by the tmpfs: made again');
  t.deepEqual(step('bind /src on /t/in', 'mount').args, [{ str: '/real/src' }, { str: '/r/t/in' }, 0, MS_BIND | MS_REC, 0]);
  const ro = step('make /ro/deep read-only', 'mount_setattr').args;
  t.deepEqual(ro.slice(0, 3), [AT_FDCWD, { str: '/r/ro/deep' }, AT_RECURSIVE]);
  t.deepEqual([...(ro[3] as { bytes: Uint8Array }).bytes], [MOUNT_ATTR_RDONLY, ...Array(31).fill(0)]);
  t.is(ro[4], 32);
  t.deepEqual(step('open a socket to bring lo up', 'socket').args, [AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0]);
  const ifreq = step('bring lo up', 'ioctl').args;
  t.deepEqual(ifreq.slice(0, 2), ['saved', SIOCSIFFLAGS]);
  const bytes = (ifreq[2] as { bytes: Uint8Array }).bytes;
  t.is(bytes.length, 40);
  t.is(Buffer.from(bytes.subarray(0, 3)).toString('latin1'), 'lo\0');
  t.is(new DataView(bytes.buffer).getInt16(16, true), IFF_UP | IFF_LOOPBACK | IFF_RUNNING);
  t.deepEqual(step('allow ping', 'openat').args, [AT_FDCWD, { str: '/r/proc/sys/net/ipv4/ping_group_range' }, O_WRONLY | O_CLOEXEC]);
  t.deepEqual(step('allow ping', 'write').args, ['saved', { str: '0 0' }, 3]);
  t.deepEqual(step('enter the rootfs /r', 'chdir').args, [{ str: '/r' }]);
  t.deepEqual(step('pivot_root into the rootfs', 'pivot_root').args, [{ str: '.' }, { str: '.' }]);
  t.deepEqual(step('detach the old root', 'umount2').args, [{ str: '.' }, MNT_DETACH]);
  t.deepEqual(step('change directory to /w', 'chdir').args, [{ str: '/w' }]);
  t.deepEqual(steps.filter((s) => s.call === 'fcntl').map((s) => s.args), [[0, F_SETFD, 0], [1, F_SETFD, 0], [2, F_SETFD, 0]]);
  t.deepEqual(steps.at(-1)!.args, [{ str: '/bin/sh' }, { strings: ['sh'] }, { strings: sandboxEnv({ ...base, cwd: '/w' }, undefined) }]);
});

test('mount points: an existing one is used as it is; facts are required', (t) => {
  const p = plan({ mounts: [{ kind: 'tmpfs', target: '/t' }, { kind: 'tmpfs', target: '/u' }] }, facts([['/t', true], ['/u', true]]));
  t.false(whats(p).some((w) => w.startsWith('create /t') || w.startsWith('create /u')));
  t.throws(() => plan({ mounts: [{ kind: 'tmpfs', target: '/nofacts' }] }), { message: 'no facts for /nofacts' });
  t.throws(() => plan({ mounts: [{ kind: 'bind', source: '/elsewhere', target: '/t' }] }, facts([['/t', true]])), { message: 'no facts for /elsewhere' });
  // A file source makes a file as its mount point.
  const f = facts([['/f', false]]);
  f.sources.set('/file', { hostPath: '/real/file', isDir: false });
  const fp = plan({ mounts: [{ kind: 'bind', source: '/file', target: '/f' }] }, f);
  t.deepEqual(fp.steps.filter((s) => s.what === 'create /f').map((s) => s.call), ['openat', 'close']);
  // A path equal to a mounted one is that mount, not hidden by it.
  const same = plan({ mounts: [{ kind: 'tmpfs', target: '/t' }, { kind: 'bind', source: '/src', target: '/t' }] }, facts([['/t', true]]));
  t.false(whats(same).includes('create /t'));
});

test('commandCandidates: trailing slashes, the last PATH, no PATH', (t) => {
  t.deepEqual(commandCandidates('x', ['PATH=/a//:/b']), ['/a/x', '/b/x']);
  t.deepEqual(commandCandidates('x', ['HOME=/']), ['./x']);
  t.deepEqual(commandCandidates('x', ['XPATH=/no', 'PATH=/yes']), ['/yes/x']);
  t.deepEqual(commandCandidates('a/b', []), ['a/b']);
});

test('missing system mount points are made as directories; mounts under /proc, /dev, /sys and a bind hide what is below them', (t) => {
  const p = plan({ mounts: [{ kind: 'tmpfs', target: '/proc/x' }, { kind: 'tmpfs', target: '/dev/x' }, { kind: 'tmpfs', target: '/sys/x' }, { kind: 'bind', source: '/src', target: '/b' }, { kind: 'tmpfs', target: '/b/x' }, { kind: 'tmpfs', target: '/m' }] },
    facts([['/proc', false], ['/dev', false], ['/sys', false], ['/proc/x', true], ['/dev/x', true], ['/sys/x', true], ['/b', true], ['/b/x', true], ['/m', false]]));
  for (const d of ['/proc', '/dev', '/sys', '/proc/x', '/dev/x', '/sys/x', '/b/x', '/m']) {
    t.deepEqual(p.steps.filter((s) => s.what === `create ${d}`).at(-1)?.call, 'mkdirat', d);
  }
  t.false(whats(p).includes('create /b'));
  t.false(whats(plan()).includes('make the rootfs read-only'));
});

test('the arguments of the remaining steps: mount sources, saved descriptors, the console, the wait buffer', (t) => {
  const { steps } = full();
  const src = (what: string): unknown => steps.find((s) => s.what === what && s.call === 'mount')!.args[0];
  t.deepEqual([src('mount proc on /proc'), src('mount devpts on /dev/pts'), src('mount a tmpfs on /dev/shm'), src('mount sysfs on /sys')], [{ str: 'proc' }, { str: 'devpts' }, { str: 'tmpfs' }, { str: 'sysfs' }]);
  t.true(steps.find((s) => s.call === 'socket')!.save);
  t.true(steps.find((s) => s.what === 'allow ping' && s.call === 'openat')!.save);
  t.deepEqual(steps.filter((s) => s.call === 'close' && (s.what === 'close the lo socket' || s.what === 'allow ping')).map((s) => s.args), [['saved'], ['saved']]);
  t.deepEqual(steps.find((s) => s.what === 'create /dev/console' && s.call === 'openat')!.args[1], { str: '/r/dev/console' });
  t.is((steps.find((s) => s.what === 'wait for the launcher')!.args[1] as { bytes: Uint8Array }).bytes.length, 8);
  const f = facts([['/f', false]]);
  f.sources.set('/file', { hostPath: '/real/file', isDir: false });
  t.true(plan({ mounts: [{ kind: 'bind', source: '/file', target: '/f' }] }, f).steps.filter((s) => s.what === 'create /f').every((s) => s.soft));
});
