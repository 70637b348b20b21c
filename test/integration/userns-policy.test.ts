// A kernel policy that forbids user namespaces. The limit is set to 0 inside a
// user namespace of the test's own (limits are per user namespace and bind every
// namespace below it), so the host's setting is never touched.
import test from 'ava';
import { collect, LAUNCHER, makeRootfs, requireRoot, spawnAs } from '../helpers/sandbox.ts';

requireRoot();
const rootfs = makeRootfs();

test('user namespaces disabled by user.max_user_namespaces=0: one line that says which setting and how to change it', async (t) => {
  const script = `echo 0 > /proc/sys/user/max_user_namespaces && exec ${LAUNCHER} --net none --rootfs ${rootfs} -- /bin/true`;
  const r = await collect(spawnAs('unshare', ['--user', '--map-root-user', '/bin/sh', '-c', script], { env: {} }));
  t.is(r.code, 125);
  t.is(r.stderr, "launcher: cannot create the sandbox's namespaces: user namespaces are disabled (user.max_user_namespaces = 0). An admin can allow them with: sysctl -w user.max_user_namespaces=15000\n");
});
