import test from 'ava';
import { parsePid } from '../../../../packages/netsetup/src/kernel/target.ts';

test('pids are parsed strictly', (t) => {
  t.is(parsePid('1'), 1);
  t.is(parsePid('4194304'), 4194304);
  for (const bad of ['', '0', '-1', '1x', '01', ' 1', '1;id', '4194305', '99999999999999999999', '1e3', '0x10']) t.is(parsePid(bad), undefined, bad);
});
