import test from 'ava';
import { handlesSignal } from '../../../packages/launcher/src/signals.ts';

test('handlesSignal reads SigCgt and SigIgn', (t) => {
  const status = 'Name:\tsh\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n';
  t.true(handlesSignal(status, 2), 'SIGINT caught');
  t.true(handlesSignal(status, 3), 'SIGQUIT ignored');
  t.true(handlesSignal(status, 15), 'SIGTERM caught');
  t.false(handlesSignal(status, 1), 'SIGHUP default');
});

test('handlesSignal: a blocked signal stays pending (an init that waits for signals)', (t) => {
  const status = 'Name:\ttini\nSigBlk:\t0000000000004000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n';
  t.true(handlesSignal(status, 15), 'SIGTERM blocked');
  t.false(handlesSignal(status, 2), 'SIGINT neither blocked nor caught');
});
