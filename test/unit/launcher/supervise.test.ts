import test from 'ava';
import { keptFds, supervisorArgs, type Rest } from '../../../packages/launcher/src/supervise.ts';
import type { Child } from '../../../packages/shared/src/spawn.ts';

const holder = { stdin: 9, stdout: 11 } as Child;

test("the supervisor's command line: pid, fallback, the signal already killed for, fds (-1 absent), the list's file", (t) => {
  const rest: Rest = { pid: 1234, fallback: true, infoFd: 3, holder, registry: '/run/user/5/nsbox/1234.json' };
  t.deepEqual(supervisorArgs(rest, undefined), ['launcher', '1234', '1', '0', '3', '9', '11', '/run/user/5/nsbox/1234.json']);
  t.deepEqual(supervisorArgs({ ...rest, fallback: false }, 15), ['launcher', '1234', '0', '15', '3', '9', '11', '/run/user/5/nsbox/1234.json']);
  const bare: Rest = { pid: 7, fallback: true, infoFd: undefined, holder: undefined, registry: '' };
  t.deepEqual(supervisorArgs(bare, undefined), ['launcher', '7', '1', '0', '-1', '-1', '-1', '']);
});

test('the supervisor keeps the info fd and the holder pipes, nothing absent', (t) => {
  t.deepEqual(keptFds({ pid: 1, fallback: true, infoFd: 3, holder, registry: '' }), [3, 9, 11]);
  t.deepEqual(keptFds({ pid: 1, fallback: true, infoFd: undefined, holder: undefined, registry: '' }), []);
  t.deepEqual(keptFds({ pid: 1, fallback: true, infoFd: undefined, holder: { stdin: -1, stdout: 4 } as Child, registry: '' }), [4]);
});
