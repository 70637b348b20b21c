import test from 'ava';
import { configCandidates } from '../../../../packages/netsetup/src/setuid/locate.ts';

test('configuration is looked up next to the installed binary, then in /etc', (t) => {
  t.deepEqual(configCandidates('/opt/nsbox/bin/netsetup'), ['/opt/nsbox/etc/nsbox/netsetup.conf', '/etc/nsbox/netsetup.conf']);
  t.deepEqual(configCandidates('/opt/netsetup'), ['/etc/nsbox/netsetup.conf']);
});
