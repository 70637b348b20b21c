import test from 'ava';
import { explainCloneFailure } from '../../../packages/launcher/src/userns.ts';

test('explainCloneFailure names the setting that blocks user namespaces', (t) => {
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 0 }, false), /user\.max_user_namespaces = 0.*sysctl -w user\.max_user_namespaces=/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, false), /kernel\.unprivileged_userns_clone = 0.*sysctl -w kernel\.unprivileged_userns_clone=1/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, apparmorRestrict: 1 }, false), /kernel\.apparmor_restrict_unprivileged_userns = 1.*=0/);
  t.regex(explainCloneFailure(28, { maxUserNamespaces: 100 }, false), /limit on user namespaces is reached/);
  t.regex(explainCloneFailure(1, { maxUserNamespaces: 100, unprivilegedUsernsClone: 0 }, true), /clone: Operation not permitted \(EPERM\)$/, 'root is not subject to the unprivileged switch');
});
