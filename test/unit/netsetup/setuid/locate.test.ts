import test from 'ava';
import { configPath } from '../../../../packages/netsetup/src/setuid/locate.ts';

test('the configuration is the one next to the installed binary, nothing else', (t) => {
  t.is(configPath('/opt/nsbox/bin/netsetup'), '/opt/nsbox/etc/nsbox/netsetup.conf');
  t.is(configPath('/usr/local/bin/netsetup'), '/usr/local/etc/nsbox/netsetup.conf');
  t.is(configPath('/usr/bin/netsetup'), '/etc/nsbox/netsetup.conf');
  t.is(configPath('/bin/netsetup'), '/etc/nsbox/netsetup.conf');
});

test('a binary outside a bin directory has no configuration (no fallback to /etc)', (t) => {
  t.is(configPath('/opt/netsetup'), undefined);
  t.is(configPath('/home/u/netsetup'), undefined);
  t.is(configPath('/tmp/x/sbin/netsetup'), undefined);
});
