import test from 'ava';
import { callerMaps } from '../../../packages/launcher/src/idmap.ts';

test('id maps put the caller alone at 0', (t) => {
  t.deepEqual(callerMaps(1000, 100), { setgroups: 'deny', uidMap: '0 1000 1\n', gidMap: '0 100 1\n' });
});
