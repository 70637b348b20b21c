import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gatherFacts, resolveInRoot } from '../../../packages/launcher/src/rootfs.ts';
import type { Options } from '../../../packages/launcher/src/options.ts';
import { NsboxError } from '../../../packages/shared/src/error.ts';
import { base } from './_plan.ts';

const tempRoot = (t: { teardown(f: () => void): void }): string => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'resolve-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  return root;
};

test('resolveInRoot follows symlinks inside the root, never out of it', (t) => {
  const root = tempRoot(t);
  fs.mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
  fs.symlinkSync('/usr/lib', path.join(root, 'lib'));
  fs.symlinkSync('../../..', path.join(root, 'usr/lib/up'));
  fs.writeFileSync(path.join(root, 'usr/lib/f'), '');
  t.deepEqual(resolveInRoot(root, '/lib'), { hostPath: path.join(root, 'usr/lib'), exists: true, isDir: true });
  t.deepEqual(resolveInRoot(root, '/lib/f'), { hostPath: path.join(root, 'usr/lib/f'), exists: true, isDir: false });
  t.deepEqual(resolveInRoot(root, '/lib/up/etc'), { hostPath: path.join(root, 'etc'), exists: false, isDir: false });
  t.deepEqual(resolveInRoot(root, '/lib/new/deeper'), { hostPath: path.join(root, 'usr/lib/new/deeper'), exists: false, isDir: false });
});

test('an absolute link below the root starts again at the root, not at the link or the caller', (t) => {
  const root = tempRoot(t);
  fs.mkdirSync(path.join(root, 'usr/lib'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc'));
  fs.symlinkSync('/etc', path.join(root, 'usr/lib/conf'));
  // The caller's directory has an etc of its own: a resolver that used it would find it.
  const caller = tempRoot(t);
  fs.mkdirSync(path.join(caller, 'etc'));
  const cwd = process.cwd();
  process.chdir(caller);
  t.teardown(() => process.chdir(cwd));
  t.deepEqual(resolveInRoot(root, '/usr/lib/conf'), { hostPath: path.join(root, 'etc'), exists: true, isDir: true });
  t.deepEqual(resolveInRoot(root, '/usr/lib/conf/x'), { hostPath: path.join(root, 'etc/x'), exists: false, isDir: false });
});

test('hostile links: .. through a missing or non-directory component, or past the root, stays in the root', (t) => {
  const root = tempRoot(t);
  const escapes = '../'.repeat(8);
  fs.writeFileSync(path.join(root, 'file'), '');
  fs.symlinkSync(`missing/${escapes}tmp/target`, path.join(root, 'climb'));
  fs.symlinkSync(`file/${escapes}tmp/target`, path.join(root, 'through-file'));
  fs.symlinkSync(`/${escapes}tmp/target`, path.join(root, 'absolute-up'));
  fs.symlinkSync(`${escapes}tmp/target`, path.join(root, 'relative-up'));
  fs.symlinkSync('loop', path.join(root, 'loop'));
  const inRoot = path.join(root, 'tmp/target/x');
  for (const link of ['climb', 'through-file', 'absolute-up', 'relative-up']) {
    t.deepEqual(resolveInRoot(root, `/${link}/x`), { hostPath: inRoot, exists: false, isDir: false }, link);
  }
  t.deepEqual(resolveInRoot(root, `/missing/${escapes}etc`), { hostPath: path.join(root, 'etc'), exists: false, isDir: false });
  t.deepEqual(resolveInRoot(root, '/loop/x'), { hostPath: path.join(root, 'loop'), exists: false, isDir: false }, 'a link loop ends, inside the root');
  // The control: the same names resolve to real places when those exist.
  fs.mkdirSync(path.join(root, 'tmp/target'), { recursive: true });
  t.deepEqual(resolveInRoot(root, '/relative-up'), { hostPath: path.join(root, 'tmp/target'), exists: true, isDir: true });
});

test('resolveInRoot: 40 links are followed, as the kernel does, the 41st is not', (t) => {
  const root = tempRoot(t);
  fs.mkdirSync(path.join(root, 'd'));
  const chain = (n: number, prefix: string): void => {
    for (let i = 1; i <= n; i++) fs.symlinkSync(i === n ? '/d' : `/${prefix}${i + 1}`, path.join(root, `${prefix}${i}`));
  };
  chain(40, 'a');
  chain(41, 'b');
  t.deepEqual(resolveInRoot(root, '/a1'), { hostPath: path.join(root, 'd'), exists: true, isDir: true });
  t.deepEqual(resolveInRoot(root, '/b1/x'), { hostPath: path.join(root, 'b41'), exists: false, isDir: false });
  t.deepEqual(resolveInRoot(root, '/./d/../d/'), { hostPath: path.join(root, 'd'), exists: true, isDir: true });
  t.deepEqual(resolveInRoot(root, '/'), { hostPath: root, exists: true, isDir: true });
});

const options = (o: Partial<Options>): Options => ({ ...base, ...o });

test('gatherFacts: the rootfs resolved, the system and user mount targets, bind sources, /etc', (t) => {
  const dir = tempRoot(t);
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'proc'), { recursive: true });
  fs.mkdirSync(path.join(root, 'etc'));
  fs.writeFileSync(path.join(root, 'etc/hosts'), '');
  fs.symlinkSync('root', path.join(dir, 'link'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.writeFileSync(path.join(dir, 'file'), '');
  fs.symlinkSync('src', path.join(dir, 'src-link'));
  const f = gatherFacts(options({
    rootfs: path.join(dir, 'link'),
    mounts: [{ kind: 'bind', source: path.join(dir, 'src-link'), target: '/mnt' }, { kind: 'ro-bind', source: path.join(dir, 'file'), target: '/proc' }, { kind: 'tmpfs', target: '/tmp' }],
  }));
  t.is(f.root, root);
  t.deepEqual([...f.targets.keys()], ['/proc', '/dev', '/sys', '/mnt', '/tmp']);
  t.deepEqual(f.targets.get('/proc'), { hostPath: path.join(root, 'proc'), exists: true, isDir: true });
  // A missing target names the nearest directory that exists, where it would be made.
  t.deepEqual(f.targets.get('/dev'), { hostPath: path.join(root, 'dev'), exists: false, isDir: false, base: { hostPath: root, mode: 0o755, writable: true } });
  t.deepEqual([...f.sources], [[path.join(dir, 'src-link'), { hostPath: path.join(dir, 'src'), isDir: true }], [path.join(dir, 'file'), { hostPath: path.join(dir, 'file'), isDir: false }]]);
  t.deepEqual(f.etc.dir, { hostPath: path.join(root, 'etc'), exists: true, isDir: true, base: { hostPath: path.join(root, 'etc'), mode: 0o755, writable: true } });
  t.deepEqual([...f.etc.files], [
    ['hostname', { hostPath: path.join(root, 'etc/hostname'), exists: false, isDir: false }],
    ['hosts', { hostPath: path.join(root, 'etc/hosts'), exists: true, isDir: false }],
    ['resolv.conf', { hostPath: path.join(root, 'etc/resolv.conf'), exists: false, isDir: false }],
  ]);
});

test('gatherFacts: a missing rootfs, a rootfs that is a file, a missing bind source', (t) => {
  const dir = tempRoot(t);
  fs.writeFileSync(path.join(dir, 'file'), '');
  const missing = t.throws(() => gatherFacts(options({ rootfs: path.join(dir, 'none') })), { instanceOf: NsboxError }) as NsboxError;
  t.is(missing.message, `rootfs ${path.join(dir, 'none')}: No such file or directory (ENOENT). Give --rootfs a directory (scripts/make-rootfs.sh DIR makes one).`);
  const file = t.throws(() => gatherFacts(options({ rootfs: path.join(dir, 'file') })), { instanceOf: NsboxError }) as NsboxError;
  t.is(file.message, `rootfs ${path.join(dir, 'file')}: not a directory. Give --rootfs a directory (scripts/make-rootfs.sh DIR makes one).`);
  const source = t.throws(() => gatherFacts(options({ rootfs: dir, mounts: [{ kind: 'ro-bind', source: '/nonexistent-src', target: '/x' }] })), { instanceOf: NsboxError }) as NsboxError;
  t.is(source.message, '--ro-bind /nonexistent-src:/x: the source /nonexistent-src does not exist on the host.');
});

test('resolveInRoot: a relative link from its own directory; .. after a file is not there', (t) => {
  const root = tempRoot(t);
  fs.mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'usr/bin/busybox'), '');
  fs.writeFileSync(path.join(root, 'busybox'), '');
  fs.symlinkSync('busybox', path.join(root, 'usr/bin/sh'));
  t.deepEqual(resolveInRoot(root, '/usr/bin/sh'), { hostPath: path.join(root, 'usr/bin/busybox'), exists: true, isDir: false });
  t.deepEqual(resolveInRoot(root, '/busybox/..'), { hostPath: root, exists: false, isDir: false });
});
