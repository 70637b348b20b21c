// A real distribution inside: users with subordinate ids (made with useradd, which
// gives each 65536 of them), a Debian 12 minbase rootfs made by debootstrap and
// imported with 'launcher import', apt-get install and update, useradd and su in
// it, and 'launcher unshare' to remove it. The only file that makes users with
// subordinate ids (see helpers/users.ts). Traffic goes only to the test bridge's
// gateway, where the test serves an apt repository.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LAUNCHER, makeRootfs, requireRoot, run, TEST_UID, type RunOptions } from '../helpers/sandbox.ts';
import { addSubidUser, removeUsers, setSubids, type SubidUser } from '../helpers/users.ts';
import { install, run as netsetup, type Install } from '../helpers/netsetup.ts';

requireRoot();
/** Kept between runs; NSBOX_TEST_CACHE moves it (e.g. onto a cache a CI root binds in). */
const CACHE = path.join(process.env.NSBOX_TEST_CACHE ?? '/var/cache/nsbox-test', 'debian-bookworm-minbase.tar');

const alice = addSubidUser('a');
const bob = addSubidUser('b');
const as = (u: SubidUser, o: RunOptions = {}): RunOptions => ({ uid: u.uid, gid: u.gid, timeoutMs: 300_000, ...o });
/** launcher import/unshare: no --net option before the command. */
const cmd = (args: string[], o: RunOptions) => run(args, { ...o, defaultNet: true });
let inst: Install | undefined;

test.after.always('remove the users, their files and the network', () => {
  removeUsers();
  inst?.remove();
});

/** A directory the user owns, removed at exit (through the user's namespace when
 *  it holds files of the user's subordinate ids). */
function dirOf(u: SubidUser): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-distro-'));
  fs.chownSync(dir, u.uid, u.gid);
  fs.chmodSync(dir, 0o755);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const busybox = makeRootfs();

test.serial('subordinate ids: root is the caller, 1..65536 the range, setgroups works, owners land in the range', async (t) => {
  const root = path.join(dirOf(alice), 'root');
  execaSync('cp', ['-a', busybox, root]);
  execaSync('chown', ['-R', `${alice.uid}:${alice.gid}`, root]);
  const r = await run(['--rootfs', root, '--', '/bin/sh', '-c',
    'cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -G; mkdir /tmp/d && chown 1000:1001 /tmp/d && echo chowned'], as(alice));
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  t.deepEqual(lines, [`0 ${alice.uid} 1`, `1 ${alice.subStart} ${alice.subCount}`, `0 ${alice.gid} 1`, `1 ${alice.subStart} ${alice.subCount}`, 'allow', '0', 'chowned']);
  const st = fs.statSync(path.join(root, 'tmp/d'));
  t.deepEqual([st.uid, st.gid], [alice.subStart + 999, alice.subStart + 1000], 'inside 1000:1001 is range start + 999:1000 outside');
});

test.serial('a user without subordinate ids gets the single mapping, setgroups denied', async (t) => {
  const r = await run(['--rootfs', busybox, '--', '/bin/sh', '-c', 'cat /proc/self/uid_map /proc/self/setgroups; chown 1000 /tmp 2>&1 || echo refused'], { uid: TEST_UID, gid: TEST_UID });
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/).join(' '));
  t.deepEqual([lines[0], lines[1], lines.at(-1)], [`0 ${TEST_UID} 1`, 'deny', 'refused']);
});

test.serial('a range the kernel refuses: exit 125, one line naming the line of /etc/subuid to fix', async (t) => {
  // The caller's own uid inside its range: newuidmap's write is refused (overlap).
  const line = setSubids('/etc/subuid', bob.name, `${bob.name}:${bob.uid}:10`);
  try {
    const r = await run(['--rootfs', busybox, '--', '/bin/true'], as(bob));
    t.is(r.code, 125);
    t.regex(r.stderr, new RegExp(`^launcher: cannot map the subordinate ids: /usr/bin/newuidmap refused: .+\\. Check /etc/subuid line ${line} '${bob.name}:${bob.uid}:10'.*\\n$`));
    t.is(r.stderr.split('\n').length, 2, 'one line');
  } finally {
    setSubids('/etc/subuid', bob.name, `${bob.name}:${bob.subStart}:${bob.subCount}`);
  }
  // The control: with its line back, the same run works.
  const ok = await run(['--rootfs', busybox, '--', '/bin/true'], as(bob));
  t.is(ok.code, 0, ok.stderr);
});

test.serial('import: plain, gzip, xz, zstd and stdin keep owners in the range; unshare rm -rf removes the tree, plain rm cannot', async (t) => {
  const work = dirOf(alice);
  const src = path.join(work, 'src');
  fs.mkdirSync(path.join(src, 'home/u'), { recursive: true });
  fs.writeFileSync(path.join(src, 'home/u/f'), 'x\n');
  fs.chmodSync(path.join(src, 'home/u'), 0o700);
  execaSync('chown', ['-R', '1000:1000', path.join(src, 'home/u')]);
  fs.mkdirSync(path.join(src, 'dev'));
  execaSync('mknod', [path.join(src, 'dev/null'), 'c', '1', '3']);
  const plain = path.join(work, 'r.tar');
  execaSync('tar', ['--numeric-owner', '-C', src, '-cf', plain, '.']);
  for (const [suffix, cmd] of [['gz', 'gzip'], ['xz', 'xz'], ['zst', 'zstd']] as const) execaSync('sh', ['-c', `${cmd} -c < ${plain} > ${plain}.${suffix}`]);
  execaSync('chmod', ['644', plain, `${plain}.gz`, `${plain}.xz`, `${plain}.zst`]);
  for (const [i, archive] of [plain, `${plain}.gz`, `${plain}.xz`, `${plain}.zst`, '-'].entries()) {
    const dir = path.join(work, `d${i}`);
    const r = archive === '-'
      ? await runStdin(['import', '-', dir], fs.readFileSync(`${plain}.zst`), as(alice))
      : await cmd(['import', archive, dir], as(alice));
    t.is(r.code, 0, `${archive}: ${r.stderr}`);
    const st = fs.statSync(path.join(dir, 'home/u/f'));
    t.deepEqual([st.uid, st.gid], [alice.subStart + 999, alice.subStart + 999], archive);
    t.is(fs.statSync(dir).uid, alice.uid, 'the tree\'s root is the caller');
    t.deepEqual(fs.readdirSync(path.join(dir, 'dev')), [], 'device nodes are left out');
  }
  const dir = path.join(work, 'd0');
  const plainRm = execaSync('rm', ['-rf', dir], { uid: alice.uid, gid: alice.gid, reject: false });
  t.not(plainRm.exitCode, 0, 'the control: the user alone cannot remove files of its subordinate ids');
  t.true(fs.existsSync(path.join(dir, 'home/u/f')));
  const r = await cmd(['unshare', '--', 'rm', '-rf', dir], as(alice));
  t.is(r.code, 0, r.stderr);
  t.false(fs.existsSync(dir));
  // Without subordinate ids every file becomes the caller's, and the launcher says so.
  const mineDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-distro-'));
  process.on('exit', () => fs.rmSync(mineDir, { recursive: true, force: true }));
  fs.chownSync(mineDir, TEST_UID, TEST_UID);
  const mine = await cmd(['import', plain, path.join(mineDir, 'd')], { uid: TEST_UID, gid: TEST_UID });
  t.is(mine.code, 0, mine.stderr);
  t.regex(mine.stderr, /^launcher: import: you have no subordinate ids \(\/etc\/subuid, \/etc\/subgid\), so every file of .* becomes yours\.\n$/);
  t.is(fs.statSync(path.join(mineDir, 'd/home/u/f')).uid, TEST_UID);
  const bad = await cmd(['import', path.join(work, 'nothing.tar'), path.join(work, 'x')], as(alice));
  t.is(bad.code, 125);
  t.regex(bad.stderr, /^launcher: import .*nothing\.tar: .*\n$/);
});

/** The launcher as `o.uid`, with `input` written to its stdin. */
async function runStdin(args: string[], input: Buffer, o: RunOptions): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const r = execaSync(LAUNCHER, args, { // the copy other users can reach (the checkout may be 0700)
    input,
    uid: o.uid,
    gid: o.gid,
    env: { PATH: '/usr/bin:/bin' },
    extendEnv: false,
    cwd: '/',
    timeout: 120_000,
    reject: false,
    stripFinalNewline: false,
  });
  return { code: r.exitCode ?? null, stderr: r.stderr, stdout: r.stdout };
}

/** The Debian 12 minbase tarball, made once with debootstrap from the mirror in the
 *  host's apt configuration and kept in /var/cache/nsbox-test for later runs. */
function debianTarball(): string {
  if (fs.existsSync(CACHE)) return CACHE;
  fs.mkdirSync(path.dirname(CACHE), { recursive: true });
  const sources = ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'].filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  const mirror = /^URIs:\s*(\S+\/debian)\s*$/m.exec(sources)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+\/debian)\s+bookworm\b/m.exec(sources)?.[1];
  if (!mirror) throw new Error('no Debian mirror in the host\'s apt configuration');
  const tmp = fs.mkdtempSync('/var/tmp/nsbox-debootstrap-');
  try {
    execaSync('debootstrap', ['--variant=minbase', 'bookworm', path.join(tmp, 'root'), mirror], { stdio: 'ignore', timeout: 900_000 });
    execaSync('tar', ['--numeric-owner', '-C', path.join(tmp, 'root'), '-cf', `${CACHE}.part`, '.']);
    fs.renameSync(`${CACHE}.part`, CACHE);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return CACHE;
}

test.serial('Debian 12: import, apt-get install of a bound .deb, apt-get update from the gateway, useradd and su, unshare rm -rf', async (t) => {
  t.timeout(1_200_000);
  const tarball = debianTarball();
  const work = dirOf(alice);
  const root = path.join(work, 'debian');
  const imp = await cmd(['import', tarball, root], as(alice));
  t.is(imp.code, 0, imp.stderr);
  t.is(fs.statSync(path.join(root, 'usr/bin/apt-get')).uid, alice.uid, 'root\'s files are the caller\'s');

  // A real .deb from Debian, fetched on the host, and a repository of it.
  const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-repo-'));
  fs.chmodSync(repo, 0o755);
  process.on('exit', () => fs.rmSync(repo, { recursive: true, force: true }));
  execaSync('apt-get', ['download', 'hello'], { cwd: repo, stdio: 'ignore' });
  const deb = fs.readdirSync(repo).find((f) => f.endsWith('.deb'))!;
  fs.chmodSync(path.join(repo, deb), 0o644);
  fs.writeFileSync(path.join(repo, 'Packages'), execaSync('dpkg-scanpackages', ['.', '/dev/null'], { cwd: repo, stdio: ['ignore', 'pipe', 'ignore'], encoding: 'buffer', stripFinalNewline: false }).stdout);

  inst = install({ octet: 95 });
  const launcher = path.join(inst.prefix, 'bin/launcher');
  t.is((await netsetup(inst, ['setup-host'])).code, 0);
  const server = http.createServer((req, res) => {
    const file = path.join(repo, path.normalize(decodeURIComponent(req.url ?? '/')).replace(/^\/+/, ''));
    if (!file.startsWith(repo) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.end(fs.readFileSync(file));
  });
  await new Promise<void>((res) => server.listen(0, inst!.gateway, res));
  const url = `http://${inst.gateway}:${(server.address() as AddressInfo).port}/`;
  try {
    const script = [
      'set -e',
      'apt-get install -y -q /debs/*.deb >/tmp/install.log 2>&1 || { cat /tmp/install.log; exit 1; }',
      'hello',
      'apt-get remove -y -q hello >/dev/null 2>&1',
      // Only the test's repository: nothing leaves the test network.
      'rm -f /etc/apt/sources.list.d/*',
      `echo "deb [trusted=yes] ${url} ./" > /etc/apt/sources.list`,
      'apt-get update -q >/tmp/update.log 2>&1 || { cat /tmp/update.log; exit 1; }',
      'apt-get install -y -q hello >/tmp/install.log 2>&1 || { cat /tmp/install.log; exit 1; }',
      'hello -g from-the-repo',
      'useradd -m carol',
      'su carol -s /bin/sh -c "id -un; touch /home/carol/file"',
      'stat -c "%u:%g %U" /home/carol/file',
    ].join('\n');
    const r = await run(['--rootfs', root, '--ro-bind', `${repo}:/debs`, '--', '/bin/sh', '-c', script], as(alice, { launcher }));
    t.is(r.code, 0, `${r.stdout}\n${r.stderr}`);
    t.deepEqual(r.stdout.trim().split('\n'), ['Hello, world!', 'from-the-repo', 'carol', '1000:1000 carol']);
  } finally {
    server.close();
  }
  const st = fs.statSync(path.join(root, 'home/carol/file'));
  t.deepEqual([st.uid, st.gid], [alice.subStart + 999, alice.subStart + 999], 'carol (1000) is in the caller\'s range outside');
  const apt = fs.statSync(path.join(root, 'var/cache/apt/archives/partial'));
  t.true(apt.uid > alice.subStart && apt.uid < alice.subStart + alice.subCount, 'apt\'s _apt user owns its download directory');

  const rm = await cmd(['unshare', '--', 'rm', '-rf', root], as(alice));
  t.is(rm.code, 0, rm.stderr);
  t.false(fs.existsSync(root));
});
