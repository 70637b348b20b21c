import test from 'ava';
import { sandboxEnv } from '../../../packages/launcher/src/options.ts';
import { base } from './_plan.ts';

test('sandboxEnv: clean defaults, TERM from the caller, --env last wins', (t) => {
  t.deepEqual(sandboxEnv({ ...base, env: [['PATH', '/x'], ['A', 'b']] }, 'vt100'), ['PATH=/x', 'HOME=/root', 'HOSTNAME=h', 'TERM=vt100', 'A=b']);
});

test('sandboxEnv: the default PATH; no TERM when the caller has none or an empty one', (t) => {
  const env = sandboxEnv({ ...base, hostname: 'box' }, undefined);
  t.deepEqual(env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'HOSTNAME=box']);
  t.deepEqual(sandboxEnv(base, ''), sandboxEnv(base, undefined));
  t.deepEqual(sandboxEnv({ ...base, env: [['TERM', 'x'], ['A', '1'], ['A', '2']] }, 'vt100').slice(3), ['TERM=x', 'A=2']);
});
