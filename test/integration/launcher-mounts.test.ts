// Mount points a rootfs lacks, in a rootfs the caller cannot write (root's, as an
// admin provides one) or should not (--read-only): made in an overlay with a tmpfs
// on top of the nearest existing directory, never on disk. Checked inside and by
// comparing the whole tree on disk before and after.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { forgetSandboxesOf, makeRootfs, requireRoot, run, type RunOptions } from '../helpers/sandbox.ts';

requireRoot();
const UID = 4323;
forgetSandboxesOf(UID);
const as: RunOptions = { uid: UID, gid: UID };
const rootfs = makeRootfs();
/** A copy of the rootfs, owned by the test user or by root. */
function copy(owner: number): string {
  const dir = fs.mkdtempSync('/tmp/nsbox-mounts-rootfs-');
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  execaSync('cp', ['-a', `${rootfs}/.`, dir]);
  fs.chmodSync(dir, 0o755);
  execaSync('chown', ['-R', `${owner}:${owner}`, dir]);
  return dir;
}

/** Every entry of a tree with its type, mode, owner, size and mtime. */
function snapshot(dir: string): string {
  return execaSync('find', [dir, '-printf', '%P %y %m %u:%g %s %T@\n'], { stripFinalNewline: false }).stdout.split('\n').sort().join('\n');
}

function dataDir(): string {
  const d = fs.mkdtempSync('/tmp/nsbox-mounts-');
  fs.chmodSync(d, 0o755);
  fs.writeFileSync(path.join(d, 'f'), 'bound\n');
  fs.chmodSync(path.join(d, 'f'), 0o644);
  process.on('exit', () => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

test('binds and tmpfs on missing paths of a root-owned rootfs work and leave it unchanged', async (t) => {
  const data = dataDir();
  const before = snapshot(rootfs);
  const r = await run(['--rootfs', rootfs, '--bind', `${data}:/srv/data`, '--ro-bind', `${data}/f:/etc/extra/file`, '--tmpfs', '/var/cache/new',
    '--bind', `${data}:/opt/a/b/c`, '--', '/bin/sh', '-c',
    'cat /srv/data/f /etc/extra/file /opt/a/b/c/f; touch /var/cache/new/x && echo tmpfs-ok; ls /proc/self/ns/user >/dev/null && echo proc-ok; cat /etc/hostname; ls / | tr "\\n" " "'], as);
  t.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.deepEqual(lines.slice(0, 6), ['bound', 'bound', 'bound', 'tmpfs-ok', 'proc-ok', 'sandbox']);
  t.regex(lines[6]!, /\bbin\b.*\bopt\b.*\bsrv\b/, 'the rootfs\'s entries are all there, with the new ones');
  t.is(snapshot(rootfs), before, 'the rootfs on disk is unchanged');
  t.false(fs.existsSync(path.join(rootfs, 'srv')));
});

test('the control: the same binds with the rootfs the caller\'s own are made on disk', async (t) => {
  const own = copy(UID);
  const data = dataDir();
  const before = snapshot(own);
  const r = await run(['--rootfs', own, '--bind', `${data}:/srv/data`, '--', '/bin/cat', '/srv/data/f'], as);
  t.is(r.code, 0, r.stderr);
  t.not(snapshot(own), before, 'the snapshot sees a change on disk');
  t.true(fs.existsSync(path.join(own, 'srv/data')));
});

test('--read-only: a missing mount point in the caller\'s own rootfs is not written to disk, and the overlay is read-only', async (t) => {
  const own = copy(UID);
  const data = dataDir();
  const before = snapshot(own);
  const r = await run(['--rootfs', own, '--read-only', '--bind', `${data}:/srv/data`, '--', '/bin/sh', '-c', 'cat /srv/data/f; touch /srv/other 2>&1 || echo refused; touch /tmp/x && echo tmp-ok'], as);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^bound\n.*Read-only file system\nrefused\ntmp-ok\n$/);
  t.is(snapshot(own), before);
});

test('/etc files the rootfs lacks and a missing mount point in /etc share one overlay', async (t) => {
  const bare = copy(0);
  fs.rmSync(path.join(bare, 'etc/hosts'));
  fs.rmSync(path.join(bare, 'etc/hostname'));
  const data = dataDir();
  const before = snapshot(bare);
  const r = await run(['--rootfs', bare, '--hostname', 'box', '--ro-bind', `${data}/f:/etc/new`, '--', '/bin/sh', '-c', 'cat /etc/new /etc/hostname; grep -c box /etc/hosts'], as);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'bound\nbox\n1\n');
  t.is(snapshot(bare), before);
});
