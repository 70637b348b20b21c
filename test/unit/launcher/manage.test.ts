import test from 'ava';
import { NsboxError } from '../../../packages/shared/src/error.ts';
import { execEnv, nsenterArgs, parseExec, psTable } from '../../../packages/launcher/src/manage.ts';
import type { Entry } from '../../../packages/launcher/src/registry.ts';

const entry: Entry = { name: 'web', pid: 4242, startTime: 1, started: '2026-01-01T00:00:00.000Z', command: ['sh', '-c', 'x y'], hostname: 'box', rootfs: '/r', network: 'bridge', address: '10.0.0.2' };

test('ps: a table with a header, columns aligned, - for what is missing', (t) => {
  const text = psTable([entry, { ...entry, name: undefined, pid: 7, address: undefined }]);
  t.is(text, [
    'NAME  PID   STARTED                   ADDRESS   COMMAND',
    'web   4242  2026-01-01T00:00:00.000Z  10.0.0.2  sh -c x y',
    '-     7     2026-01-01T00:00:00.000Z  -         sh -c x y',
    '',
  ].join('\n'));
});

test('exec: the sandbox, --env and --cwd before or after it, the command after --', (t) => {
  t.deepEqual(parseExec(['web', '--env', 'A=1', '--cwd', '/x/../y', '--', 'ls', '-l']), { which: 'web', env: [['A', '1']], cwd: '/y', command: ['ls', '-l'] });
  t.deepEqual(parseExec(['--env', 'A=', '42']), { which: '42', env: [['A', '']], cwd: undefined, command: ['/bin/sh'] });
  t.deepEqual(parseExec(['web', 'id', '-u']).command, ['id', '-u']);
  for (const bad of [[], ['--env', 'nokey', 'w'], ['--cwd', 'rel', 'w'], ['--frob', 'w'], ['w', '--env']]) t.throws(() => parseExec(bad), { instanceOf: NsboxError }, bad.join(' '));
});

test('exec: nsenter joins every namespace, the root and cwd, keeps the caller\'s credentials; --cwd goes through sh', (t) => {
  const base = ['-t', '4242', '-U', '-m', '-u', '-i', '-n', '-p', '-C', '-r', '-w', '--preserve-credentials', '--'];
  t.deepEqual(nsenterArgs(4242, { which: 'web', env: [], command: ['id'] }), [...base, 'id']);
  t.deepEqual(nsenterArgs(4242, { which: 'web', env: [], cwd: '/a b', command: ['ls', '$x'] }), [...base, '/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'sh', '/a b', 'ls', '$x']);
});

test('exec: a clean environment with the sandbox\'s hostname, then --env', (t) => {
  t.deepEqual(execEnv(entry, { which: 'web', env: [['PATH', '/bin'], ['X', '1']], command: [] }, 'xterm'), { PATH: '/bin', HOME: '/root', HOSTNAME: 'box', TERM: 'xterm', X: '1' });
});
