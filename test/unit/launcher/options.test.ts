import test from 'ava';
import { sandboxEnv } from '../../../packages/launcher/src/options.ts';
import { base } from './_plan.ts';

test('sandboxEnv: clean defaults, TERM from the caller, --env last wins', (t) => {
  t.deepEqual(sandboxEnv({ ...base, env: [['PATH', '/x'], ['A', 'b']] }, 'vt100'), ['PATH=/x', 'HOME=/root', 'HOSTNAME=h', 'TERM=vt100', 'A=b']);
});
