import test from 'ava';
import { callerMaps } from '../../packages/launcher/src/idmap.ts';
import { handlesSignal } from '../../packages/launcher/src/signals.ts';
import { explainCloneFailure } from '../../packages/launcher/src/userns.ts';

test('id maps put the caller alone at 0', (t) => {
  t.deepEqual(callerMaps(1000, 100), { setgroups: 'deny', uidMap: '0 1000 1\n', gidMap: '0 100 1\n' });
});

test('handlesSignal reads SigCgt and SigIgn', (t) => {
  const status = 'Name:\tsh\nSigIgn:\t0000000000000004\nSigCgt:\t0000000000004002\n';
  t.true(handlesSignal(status, 2), 'SIGINT caught');
  t.true(handlesSignal(status, 3), 'SIGQUIT ignored');
  t.true(handlesSignal(status, 15), 'SIGTERM caught');
  t.false(handlesSignal(status, 1), 'SIGHUP default');
});

test('explainCloneFailure names the setting that blocks user namespaces', (t) => {
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 0 }, false), /user\.max_user_namespaces = 0.*sysctl -w user\.max_user_namespaces=/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, false), /kernel\.unprivileged_userns_clone = 0.*sysctl -w kernel\.unprivileged_userns_clone=1/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, apparmorRestrict: 1 }, false), /kernel\.apparmor_restrict_unprivileged_userns = 1.*=0/);
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 100 }, false), /limit on user namespaces is reached/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, true), /clone: Operation not permitted \(EPERM\)$/, 'root is not subject to the unprivileged switch');
});
