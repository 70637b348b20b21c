// The launcher against the real kernel: run as root, the launcher itself as an
// unprivileged user, checked from inside the sandbox and from the host.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  collect, hostMounts, LAUNCHER, makeRootfs, processesOf, requireRoot, run, sandboxPid, sleep, spawnAs, start, TEST_UID, userDir, waitFor,
} from '../helpers/sandbox.ts';

requireRoot();
const rootfs = makeRootfs();
// The rootfs belongs to root, as one an admin provides would: the mount points the
// tests bind onto exist already (the caller could not create them).
for (const dir of ['data', 'rw', 'ro', 'a,b']) fs.mkdirSync(path.join(rootfs, dir));
const mountsBefore = hostMounts();
const hostHostname = os.hostname();

const sh = (script: string, ...extra: string[]): string[] => ['--rootfs', rootfs, ...extra, '--', '/bin/sh', '-c', script];

test.after.always('nothing is left running or mounted', async (t) => {
  await sleep(200);
  t.deepEqual(processesOf(TEST_UID), [], 'processes of the test user remain');
  t.is(hostMounts(), mountsBefore, 'the host mount table changed');
  t.is(os.hostname(), hostHostname);
});

test('the command is pid 1 and root inside, the caller outside', async (t) => {
  const child = start(sh('echo "pid=$$ uid=$(id -u) gid=$(id -g)"; echo ready; read x'));
  const done = collect(child, { keepStdin: true });
  await waitFor(child, 'ready');
  const pid = sandboxPid(child.pid!);
  t.truthy(pid, 'the launcher has a child');
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  t.regex(status, new RegExp(`^Uid:\\s+${TEST_UID}\\s+${TEST_UID}\\s`, 'm'));
  t.regex(status, new RegExp(`^Gid:\\s+${TEST_UID}\\s+${TEST_UID}\\s`, 'm'));
  for (const ns of ['user', 'mnt', 'uts', 'ipc', 'pid', 'net', 'cgroup']) {
    t.not(fs.readlinkSync(`/proc/${pid}/ns/${ns}`), fs.readlinkSync(`/proc/self/ns/${ns}`), `${ns} namespace is new`);
  }
  child.stdin!.end('\n');
  const r = await done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /pid=1 uid=0 gid=0/);
});

test('works when run as root too', async (t) => {
  const r = await run(sh('echo "pid=$$ uid=$(id -u)"'), { uid: 0, gid: 0 });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), 'pid=1 uid=0');
});

test('hostname is isolated both ways', async (t) => {
  const r = await run(sh('hostname; hostname changed-inside && hostname', '--hostname', 'box1'));
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n'), ['box1', 'changed-inside']);
  t.is(os.hostname(), hostHostname);
  const d = await run(sh('hostname'));
  t.is(d.stdout.trim(), 'sandbox', 'default hostname, not the host\'s');
});

test('/proc shows only the sandbox', async (t) => {
  const r = await run(sh('sleep 10 & ls /proc | grep -E "^[0-9]+$" | sort -n | tr "\\n" " "; echo; cat /proc/1/cmdline | tr "\\0" " "; kill %1'));
  t.is(r.code, 0, r.stderr);
  const [pids, cmdline] = r.stdout.split('\n');
  const list = pids!.trim().split(' ').map(Number);
  t.true(list.includes(1));
  t.true(list.length <= 6, `pids seen: ${pids}`);
  t.true(list.every((p) => p < 50), `pids seen: ${pids}`);
  t.regex(cmdline!, /^\/bin\/sh -c /);
});

test('a mount made inside is not visible on the host', async (t) => {
  const child = start(sh('mkdir -p /tmp/m && mount -t tmpfs inner /tmp/m && touch /tmp/m/x && grep -c inner /proc/self/mountinfo && echo ready; read x'));
  const done = collect(child, { keepStdin: true });
  await waitFor(child, 'ready');
  const mounts = hostMounts();
  t.false(mounts.includes(rootfs), 'the rootfs bind is not in the host mount table');
  t.false(/ inner /.test(mounts));
  t.false(fs.existsSync(path.join(rootfs, 'tmp/m/x')));
  child.stdin!.end('\n');
  const r = await done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^1\n/);
});

test('files created inside belong to the caller on the host', async (t) => {
  const data = userDir();
  const r = await run(sh('echo hi > /data/made-inside && ls -ln /data/made-inside', '--bind', `${data}:/data`));
  t.is(r.code, 0, r.stderr);
  const st = fs.statSync(path.join(data, 'made-inside'));
  t.is(st.uid, TEST_UID);
  t.is(st.gid, TEST_UID);
  t.regex(r.stdout, /\s0\s+0\s/, 'and to root inside');
});

test('only lo, and it is up', async (t) => {
  const r = await run(sh('ip -o link show; cat /sys/class/net/lo/operstate; ping -c1 -W2 127.0.0.1 >/dev/null && echo ping-ok'));
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.is(lines.filter((l) => /^\d+: /.test(l)).length, 1, r.stdout);
  t.regex(lines[0]!, /^1: lo: <LOOPBACK,UP,LOWER_UP>/);
  t.true(lines.includes('ping-ok'));
});

test('bind mounts, read-only ones refuse writes', async (t) => {
  const data = userDir();
  fs.writeFileSync(path.join(data, 'from-host'), 'hello\n');
  const r = await run(sh('cat /rw/from-host; echo w > /rw/new; cat /ro/from-host; echo w > /ro/nope && echo WROTE; touch /ro/other || echo refused', '--bind', `${data}:/rw`, '--ro-bind', `${data}:/ro`));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'hello\nhello\nrefused\n');
  t.regex(r.stderr, /Read-only file system/);
  t.true(fs.existsSync(path.join(data, 'new')));
  t.false(fs.existsSync(path.join(data, 'nope')));
});

test('--read-only rootfs keeps a writable /tmp', async (t) => {
  const r = await run(sh('touch /etc/x 2>/dev/null || echo ro-etc; touch /tmp/x && echo rw-tmp', '--read-only'));
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'ro-etc\nrw-tmp\n');
  t.false(fs.existsSync(path.join(rootfs, 'etc/x')));
});

test('/dev is minimal and works', async (t) => {
  const r = await run(sh('ls /dev | tr "\\n" " "; echo; head -c 4 /dev/zero | od -An -tx1; echo x > /dev/null && echo null-ok; test -c /dev/pts/ptmx && echo pts-ok; touch /dev/shm/s && echo shm-ok; readlink /dev/fd'));
  t.is(r.code, 0, r.stderr);
  const [list, zeros, ...rest] = r.stdout.trim().split('\n');
  t.deepEqual(list!.trim().split(' ').sort(), ['fd', 'full', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero']);
  t.is(zeros!.trim(), '00 00 00 00');
  t.deepEqual(rest, ['null-ok', 'pts-ok', 'shm-ok', '/proc/self/fd']);
});

test('/sys is read-only', async (t) => {
  const r = await run(sh('grep " /sys " /proc/mounts'));
  t.regex(r.stdout, /^sysfs \/sys sysfs ro,/);
});

test('clean environment, --env and --cwd', async (t) => {
  const r = await run(['--rootfs', rootfs, '--env', 'FOO=bar baz', '--env', 'HOME=/home', '--cwd', '/etc', '--', '/usr/bin/env'], { env: { TERM: 'xterm-test', SECRET: 'leak', PATH: '/usr/bin:/bin' } });
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.stdout.trim().split('\n').sort(), ['FOO=bar baz', 'HOME=/home', 'HOSTNAME=sandbox', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm-test']);
  const cwd = await run(['--rootfs', rootfs, '--cwd', '/etc', '--', '/bin/pwd']);
  t.is(cwd.stdout, '/etc\n');
});

test('exit status is the command\'s', async (t) => {
  for (const code of [0, 1, 7, 255]) {
    const r = await run(sh(`exit ${code}`));
    t.is(r.code, code);
  }
});

test('a command killed by a signal gives 128+N', async (t) => {
  const child = start(['--rootfs', rootfs, '--', '/bin/sleep', '30']);
  const done = collect(child);
  let pid: number | undefined;
  for (let i = 0; i < 100 && pid === undefined; i++) {
    await sleep(20);
    const p = sandboxPid(child.pid!);
    if (p && fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').startsWith('/bin/sleep')) pid = p;
  }
  t.truthy(pid);
  process.kill(pid!, 'SIGKILL');
  const r = await done;
  t.is(r.code, 137);
});

test('a command that is not executable gives 126, one not found 127', async (t) => {
  const noexec = await run(['--rootfs', rootfs, '--', '/etc/passwd']);
  t.is(noexec.code, 126);
  t.regex(noexec.stderr, /^launcher: cannot execute \/etc\/passwd in the sandbox: Permission denied \(EACCES\)\.\n$/);
  const missing = await run(['--rootfs', rootfs, '--', 'no-such-command', 'arg']);
  t.is(missing.code, 127);
  t.regex(missing.stderr, /^launcher: command not found: no-such-command was not found in the sandbox's PATH/);
  const missingPath = await run(['--rootfs', rootfs, '--', '/opt/nothing']);
  t.is(missingPath.code, 127);
  t.regex(missingPath.stderr, /\/opt\/nothing does not exist in the rootfs/);
});

test('a setup failure gives 125 and names the step', async (t) => {
  const r = await run(['--rootfs', rootfs, '--cwd', '/no/such/dir', '--', '/bin/true']);
  t.is(r.code, 125);
  t.is(r.stderr, 'launcher: sandbox setup failed: change directory to /no/such/dir: No such file or directory (ENOENT).\n');
});

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'] as const) {
  test(`${sig} is forwarded to a command that handles it`, async (t) => {
    const name = sig.slice(3);
    const child = start(sh(`trap 'echo got-${name}; exit 42' ${name}; echo ready; while :; do sleep 0.05; done`));
    const done = collect(child);
    await waitFor(child, 'ready');
    child.kill(sig);
    const r = await done;
    t.is(r.code, 42, r.stderr);
    t.regex(r.stdout, new RegExp(`got-${name}`));
  });
}

test('a forwarded signal the command does not handle ends it like an ordinary process', async (t) => {
  const child = start(['--rootfs', rootfs, '--', '/bin/sh', '-c', 'echo ready; exec sleep 30']);
  const done = collect(child);
  await waitFor(child, 'ready');
  await sleep(100);
  child.kill('SIGTERM');
  const r = await done;
  t.is(r.code, 128 + 15);
});

test('the sandbox dies with the launcher', async (t) => {
  const child = start(sh('echo ready; sleep 30 & wait'));
  const done = collect(child);
  await waitFor(child, 'ready');
  const pid = sandboxPid(child.pid!);
  t.truthy(pid);
  child.kill('SIGKILL');
  await done;
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`); i++) await sleep(20);
  t.false(fs.existsSync(`/proc/${pid}`), 'the sandbox\'s pid 1 is gone');
});

test('bad input: one clear line, non-zero exit, nothing left behind', async (t) => {
  const file = path.join(userDir(), 'a-file');
  fs.writeFileSync(file, '');
  const cases: [string[], number, RegExp][] = [
    [['--rootfs', '/no/such/rootfs'], 125, /^launcher: rootfs \/no\/such\/rootfs: No such file or directory \(ENOENT\)\. Give --rootfs a directory/],
    [['--rootfs', file], 125, /^launcher: rootfs .*: not a directory\. Give --rootfs a directory [^\n]*\n$/],
    [['--rootfs', rootfs, '--bind', '/no/such/source:/x'], 125, /^launcher: --bind \/no\/such\/source:\/x: the source \/no\/such\/source does not exist on the host\.\n$/],
    [['--rootfs', rootfs, '--frobnicate'], 125, /^launcher: --frobnicate: unknown option\. Try 'launcher --help'\.\n$/],
    [[], 125, /^launcher: --rootfs DIR: the option is required\./],
    [['--rootfs', rootfs, '--net', 'carrier-pigeon'], 125, /^launcher: --net carrier-pigeon: unknown network mode/],
    [['--rootfs', rootfs, '--hostname', 'bad_name!'], 125, /^launcher: --hostname bad_name!: not a valid hostname/],
    [['--rootfs', rootfs, '--', 'nope'], 127, /^launcher: command not found: nope/],
  ];
  for (const [args, code, message] of cases) {
    const r = await run(args);
    t.is(r.code, code, args.join(' '));
    t.is(r.stderr.split('\n').length, 2, `one line for ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
    t.notRegex(r.stderr, /\n\s+at /);
  }
});

test('missing mount points are made in a rootfs the caller owns; a path an overlay cannot name is refused clearly in one they do not', async (t) => {
  const own = makeRootfs();
  execaSync('chown', ['-R', `${TEST_UID}:${TEST_UID}`, own]);
  const data = userDir();
  fs.writeFileSync(path.join(data, 'f'), 'file-bind\n');
  const r = await run(['--rootfs', own, '--bind', `${data}:/new/dir`, '--ro-bind', `${data}/f:/etc/newfile`, '--tmpfs', '/scratch', '--', '/bin/sh', '-c', 'ls /new/dir; cat /etc/newfile; touch /scratch/x && echo tmpfs-ok']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'f\nfile-bind\ntmpfs-ok\n');
  t.true(fs.existsSync(path.join(own, 'new/dir')), 'made on disk in a rootfs the caller may write, as before');
  // A directory with ',' in its name cannot be named in an overlay's options: the
  // launcher tries the root-owned rootfs on disk, and says why that failed.
  const refused = await run(sh('true', '--bind', `${data}:/a,b/not-there`));
  t.is(refused.code, 125);
  t.is(refused.stderr, `launcher: sandbox setup failed: bind ${data} on /a,b/not-there: No such file or directory (ENOENT) (after: create /a,b/not-there: Permission denied (EACCES)).\n`);
});

test('an interactive shell on a terminal: Ctrl-C stops the foreground job, not the shell', async (t) => {
  // script(1) gives the launcher a pseudo-terminal, as a person's terminal would.
  const child = spawnAs('script', ['-qfec', `${LAUNCHER} --net none --rootfs ${rootfs}`, '/dev/null']);
  const done = collect(child, { keepStdin: true });
  const type = async (s: string, ms: number): Promise<void> => {
    await sleep(ms);
    child.stdin!.write(s);
  };
  await type('sleep 30\n', 800);
  await type('\x03', 500);
  await type('echo alive-$((40+2))\n', 300);
  await type('tty\n', 300);
  await type('exit 3\n', 300);
  const r = await done;
  t.is(r.code, 3, r.stdout);
  t.regex(r.stdout, /\^C/);
  t.regex(r.stdout, /alive-42/);
  t.regex(r.stdout, /^\/dev\/console\r?$/m, 'the terminal is known inside, as /dev/console');
});
