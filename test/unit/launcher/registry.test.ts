import test from 'ava';
import { parseStartTime, registryDirs } from '../../../packages/launcher/src/registry.ts';

test('the start time is field 22 of /proc/PID/stat, whatever the command name holds', (t) => {
  const rest = 'S 1 2 3 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100';
  t.is(parseStartTime(`42 (sleep) ${rest}`), 987654);
  t.is(parseStartTime(`42 (a) b) (c) ${rest}`), 987654);
});

test('the registry is in the runtime directory, else in /tmp', (t) => {
  t.deepEqual(registryDirs(1000), ['/run/user/1000/nsbox', '/tmp/nsbox-1000']);
});
