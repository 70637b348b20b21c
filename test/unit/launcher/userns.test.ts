import test from 'ava';
import { explainCloneFailure } from '../../../packages/launcher/src/userns.ts';

test('explainCloneFailure names the setting that blocks user namespaces', (t) => {
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 0 }, false).message, /user\.max_user_namespaces = 0.*sysctl -w user\.max_user_namespaces=/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, false).message, /kernel\.unprivileged_userns_clone = 0.*sysctl -w kernel\.unprivileged_userns_clone=1/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, apparmorRestrict: 1 }, false).message, /kernel\.apparmor_restrict_unprivileged_userns = 1.*=0/);
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 100 }, false).message, /limit on user namespaces is reached/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, true).message, /clone: Operation not permitted \(EPERM\)\.$/, 'root is not subject to the unprivileged switch');
});

test('the failure is the one error type with the errno of clone', (t) => {
  const err = explainCloneFailure(1, { maxUserNamespaces: 0 }, false);
  t.is(err.errnoName, 'EPERM');
  t.is(err.line('launcher'), "launcher: cannot create the sandbox's namespaces: user namespaces are disabled (user.max_user_namespaces = 0). An admin can allow them with: sysctl -w user.max_user_namespaces=15000");
});
