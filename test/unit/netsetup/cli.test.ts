import test from 'ava';
import { parseArgs } from '../../../packages/netsetup/src/cli.ts';
import { NsboxError } from '../../../packages/shared/src/error.ts';
import { EXIT } from '../../../packages/netsetup/src/exit.ts';

const usage = (t: import('ava').ExecutionContext, argv: string[], message: string): void => {
  const err = t.throws(() => parseArgs(argv), { instanceOf: NsboxError });
  t.is(err?.exit, EXIT.USAGE);
  t.is(err?.message, message);
};

test('connect: --pid, --network, --json, --hold, --publish (repeatable, parsed), = forms', (t) => {
  t.deepEqual(parseArgs(['--pid', '42']), { command: 'connect', pid: 42, json: false, hold: false, publish: [] });
  t.deepEqual(parseArgs(['--json', '--hold', '--pid=42', '--network', 'n', '--publish', '8080:80', '--publish=10.0.0.1:53:53/udp']), {
    command: 'connect',
    pid: 42,
    network: 'n',
    json: true,
    hold: true,
    publish: [
      { hostAddress: '0.0.0.0', hostPort: 8080, port: 80, protocol: 'tcp' },
      { hostAddress: '10.0.0.1', hostPort: 53, port: 53, protocol: 'udp' },
    ],
  });
  t.deepEqual(parseArgs(['--pid', '42', '--config', '/c']), { command: 'connect', pid: 42, json: false, hold: false, publish: [], config: '/c' });
  t.throws(() => parseArgs(['--pid', '42', '--publish', '80x']), { message: /^--publish 80x: / });
});

test('commands and their options', (t) => {
  t.deepEqual(parseArgs(['release', '0123abcd', '--json']), { command: 'release', by: { id: '0123abcd' }, json: true });
  t.deepEqual(parseArgs(['release', '--pid', '7']), { command: 'release', by: { pid: 7 }, json: false });
  t.deepEqual(parseArgs(['release-held', '0123abcd', '--config', '/c', '--json']), { command: 'release-held', id: '0123abcd', json: true, config: '/c' });
  t.deepEqual(parseArgs(['list']), { command: 'list', json: false });
  t.deepEqual(parseArgs(['check', '--json']), { command: 'check', json: true });
  t.deepEqual(parseArgs(['setup-host', '--network', 'n']), { command: 'setup-host', network: 'n' });
  t.deepEqual(parseArgs(['teardown']), { command: 'teardown' });
  t.deepEqual(parseArgs(['default-config']), { command: 'default-config' });
  t.deepEqual(parseArgs(['serve']), { command: 'serve' });
  t.deepEqual(parseArgs(['serve', '--config', '/c']), { command: 'serve', config: '/c' });
  for (const argv of [['--help'], ['-h'], ['help'], ['release', '--help'], ['--pid', 'x', '--help']]) t.deepEqual(parseArgs(argv), { command: 'help' });
});

test('usage errors are one line with what to do', (t) => {
  usage(t, [], 'command line: missing --pid. Run netsetup --help');
  usage(t, ['--pid', '5', '--bridge', 'eth0'], "command line: unknown option '--bridge'. Run netsetup --help");
  usage(t, ['--pid'], "command line: option '--pid <value>' argument missing. Run netsetup --help");
  usage(t, ['--json=1', '--pid', '5'], "command line: option '--json' does not take a value. Run netsetup --help");
  usage(t, ['frobnicate'], "command line: unknown command 'frobnicate'. Run netsetup --help");
  usage(t, ['list', 'x'], 'command line: too many arguments. Run netsetup --help');
  usage(t, ['list', '--network', 'n'], "command line: unknown option '--network'. Run netsetup --help");
  usage(t, ['serve', '--pid', '5'], "command line: unknown option '--pid'. Run netsetup --help");
  usage(t, ['serve', 'x'], 'command line: too many arguments. Run netsetup --help');
  usage(t, ['--pid', '0x10'], '--pid "0x10": not a process id. Give a decimal pid such as 12345');
  usage(t, ['release'], 'release: give either a lease id or --pid. Run netsetup --help');
  usage(t, ['release', 'abc', '--pid', '5'], 'release: give either a lease id or --pid. Run netsetup --help');
  usage(t, ['release-held'], 'command line: release-held needs a lease id (8 hex digits). Run netsetup --help');
  usage(t, ['release-held', '../x'], 'command line: release-held needs a lease id (8 hex digits). Run netsetup --help');
  usage(t, ['release-held', '0123abcd', '--pid', '5'], "command line: unknown option '--pid'. Run netsetup --help");
  usage(t, ['release', '../../etc'], 'lease "../../etc": not a lease id (8 hex digits). See your leases with netsetup list');
});
