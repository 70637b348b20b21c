import test from 'ava';
import { callerMaps, chooseMaps, helperArgs, parseSubids } from '../../../packages/launcher/src/idmap.ts';

test('id maps put the caller alone at 0', (t) => {
  t.deepEqual(callerMaps(1000, 100), { kind: 'single', setgroups: 'deny', uidMap: '0 1000 1\n', gidMap: '0 100 1\n' });
});

const SUBUID = '# comment\nbob:200000:65536\nalice:100000:65536\n1000:300000:10\nalice:x:5\nalice:400000:0\n\n';

test('subordinate ranges: by name or by uid, in file order, with their line; bad and empty lines skipped', (t) => {
  t.deepEqual(parseSubids(SUBUID, '/etc/subuid', 'alice', 1000), [
    { start: 100000, count: 65536, source: "/etc/subuid line 3 'alice:100000:65536'" },
    { start: 300000, count: 10, source: "/etc/subuid line 4 '1000:300000:10'" },
  ]);
  t.deepEqual(parseSubids(SUBUID, '/etc/subuid', 'carol', 1001), []);
  t.deepEqual(parseSubids('', '/etc/subuid', 'alice', 1000), []);
});

test('the helpers map the caller to 0 and the ranges one after another from 1', (t) => {
  const ranges = parseSubids(SUBUID, '/etc/subuid', 'alice', 1000);
  t.deepEqual(helperArgs(1000, ranges), ['0', '1000', '1', '1', '100000', '65536', '65537', '300000', '10']);
});

test('subordinate ids need ranges of both kinds and both helpers; otherwise the single mapping', (t) => {
  const u = parseSubids(SUBUID, '/etc/subuid', 'alice', 1000);
  t.is(chooseMaps(1000, 1000, u, u, true).kind, 'subids');
  t.deepEqual(chooseMaps(1000, 1000, u, u, false), callerMaps(1000, 1000));
  t.deepEqual(chooseMaps(1000, 1000, u, [], true), callerMaps(1000, 1000));
  t.deepEqual(chooseMaps(1000, 1000, [], u, true), callerMaps(1000, 1000));
});
