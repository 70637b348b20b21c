import test from 'ava';
import { handlesSignal } from '../../../packages/launcher/src/signals.ts';

test('handlesSignal reads SigCgt and SigIgn', (t) => {
  const status = 'Name:\tsh\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n';
  t.true(handlesSignal(status, 2), 'SIGINT caught');
  t.true(handlesSignal(status, 3), 'SIGQUIT ignored');
  t.true(handlesSignal(status, 15), 'SIGTERM caught');
  t.false(handlesSignal(status, 1), 'SIGHUP default');
});
