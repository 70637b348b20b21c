import test from 'ava';
import { netsetupCandidates } from '../../../packages/launcher/src/netsetup.ts';

test('netsetup is looked for next to the launcher, then in PATH; --netsetup is the only place then', (t) => {
  t.deepEqual(netsetupCandidates(undefined, '/opt/nsbox/bin/launcher', '/usr/bin:relative:/opt/nsbox/bin'), ['/opt/nsbox/bin/netsetup', '/usr/bin/netsetup']);
  t.deepEqual(netsetupCandidates('/x/netsetup', '/opt/nsbox/bin/launcher', '/usr/bin'), ['/x/netsetup']);
});
