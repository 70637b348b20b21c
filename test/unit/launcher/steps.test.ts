import test from 'ava';
import { createFile, isUnder, mount, readOnly, str } from '../../../packages/launcher/src/steps.ts';
import { AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY, O_CLOEXEC, O_CREAT, O_NOFOLLOW, O_WRONLY } from '../../../packages/shared/src/syscalls.ts';

test('isUnder: the directory itself and what is below it, not a name that merely starts alike', (t) => {
  t.true(isUnder('/a', '/a'));
  t.true(isUnder('/a/b', '/a'));
  t.true(isUnder('/a/b', '/a/'));
  t.true(isUnder('/a/b', '/'));
  t.false(isUnder('/ab', '/a'));
  t.false(isUnder('/a', '/a/b'));
  t.false(isUnder('/b/a', '/a'));
});

test('mount: null source, type and data are null pointers', (t) => {
  t.deepEqual(mount('w', null, '/t', null, 5), { what: 'w', call: 'mount', args: [0, str('/t'), 0, 5, 0] });
  t.deepEqual(mount('w', 's', '/t', 'tmpfs', 0, 'mode=1'), { what: 'w', call: 'mount', args: [str('s'), str('/t'), str('tmpfs'), 0, str('mode=1')] });
});

test('readOnly: a 32-byte mount_attr with MOUNT_ATTR_RDONLY set, recursive or not', (t) => {
  const r = readOnly('w', '/t', true);
  t.deepEqual(r.args.slice(0, 3), [AT_FDCWD, str('/t'), AT_RECURSIVE]);
  t.deepEqual([...(r.args[3] as { bytes: Uint8Array }).bytes], [MOUNT_ATTR_RDONLY, ...Array(31).fill(0)]);
  t.is(r.args[4], 32);
  t.is(readOnly('w', '/t', false).args[2], 0);
});

test('createFile: opened without following a link, closed, soft or not', (t) => {
  t.deepEqual(createFile('w', '/f', true), [
    { what: 'w', call: 'openat', args: [AT_FDCWD, str('/f'), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o644], save: true, soft: true },
    { what: 'w', call: 'close', args: ['saved'], soft: true },
  ]);
  t.true(createFile('w', '/f', false).every((s) => s.soft === false));
});
