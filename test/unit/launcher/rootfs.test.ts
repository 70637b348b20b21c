import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveInRoot } from '../../../packages/launcher/src/rootfs.ts';

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
