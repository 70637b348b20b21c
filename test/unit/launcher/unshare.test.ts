import test from 'ava';
import { compressionOf, tarArgs, unshareProgram } from '../../../packages/launcher/src/unshare.ts';

test('compression from the first bytes', (t) => {
  t.is(compressionOf(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  t.is(compressionOf(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 4])), 'xz');
  t.is(compressionOf(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])), 'zstd');
  t.is(compressionOf(Buffer.from('BZh91AY')), 'bzip2');
  t.is(compressionOf(Buffer.from('./\0\0\0\0\0\0')), 'none');
  t.is(compressionOf(Buffer.alloc(0)), 'none');
});

test('tar keeps numeric owners and permissions, and leaves /dev\'s contents out', (t) => {
  const a = tarArgs('/x.tar.zst', '/d', 'zstd');
  t.deepEqual(a.slice(0, 6), ['tar', '--extract', '--file', '/x.tar.zst', '--directory', '/d']);
  for (const flag of ['--zstd', '--numeric-owner', '--same-owner', '--same-permissions', '--exclude=./dev/*', '--exclude=dev/*']) t.true(a.includes(flag), flag);
  t.true(a.indexOf('--anchored') < a.indexOf('--exclude=dev/*'));
  const mine = tarArgs('/x.tar', '/d', 'none', false);
  t.true(mine.includes('--no-same-owner') && !mine.includes('--same-owner'), 'without subordinate ids the caller owns everything');
  t.false(tarArgs('-', '/d', 'none').some((f) => ['--gzip', '--xz', '--zstd', '--bzip2'].includes(f)));
});

test('unshare: wait for the maps, drop groups with subordinate ids, take stdin when given, exec from PATH', (t) => {
  const ends = { syncRead: 10, syncWrite: 11 };
  const p = unshareProgram(ends, ['tar', 'x'], ['PATH=/usr/bin:/bin'], 'subids', 20);
  const w = p.steps.map((s) => s.what);
  t.deepEqual(w.slice(0, 5), ['set the parent-death signal', 'close the sync pipe', 'wait for the launcher', 'drop the supplementary groups', 'take the archive on stdin']);
  t.deepEqual(p.steps[4]!.args, [20, 0, 0]);
  t.deepEqual(p.candidates, ['/usr/bin/tar', '/bin/tar']);
  t.false(unshareProgram(ends, ['/bin/rm'], [], 'single').steps.some((s) => s.call === 'setgroups' || s.call === 'dup3'));
});
