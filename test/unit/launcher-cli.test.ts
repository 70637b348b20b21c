import test from 'ava';
import { parseArgs, sandboxPath, UsageError } from '../../packages/launcher/src/cli.ts';

const opts = (argv: string[]) => {
  const p = parseArgs(argv, '1.2.3');
  if (p.kind !== 'run') throw new Error('expected options');
  return p.options;
};

test('defaults', (t) => {
  const o = opts(['--rootfs', '/r']);
  t.deepEqual(o, { rootfs: '/r', command: ['/bin/sh'], hostname: 'sandbox', env: [], cwd: '/', mounts: [], readOnly: false, net: undefined, netsetup: undefined, publish: [], infoFd: undefined });
});

test('options, = forms and the command after --', (t) => {
  const o = opts(['--rootfs=/r', '--hostname', 'h1', '--env', 'A=1=2', '--env=B=', '--cwd', '/x/../y/', '--bind', '/s:/d', '--ro-bind', '/s2:/d2', '--tmpfs', '/t', '--', 'cmd', '--not-an-option']);
  t.is(o.hostname, 'h1');
  t.deepEqual(o.env, [['A', '1=2'], ['B', '']]);
  t.is(o.cwd, '/y');
  t.deepEqual(o.mounts, [{ kind: 'bind', source: '/s', target: '/d' }, { kind: 'ro-bind', source: '/s2', target: '/d2' }, { kind: 'tmpfs', target: '/t' }]);
  t.deepEqual(o.command, ['cmd', '--not-an-option']);
});

test('the command may follow the options without --', (t) => {
  t.deepEqual(opts(['--rootfs', '/r', 'sh', '-c', 'x']).command, ['sh', '-c', 'x']);
});

test('--read-only adds a tmpfs on /tmp unless one is given', (t) => {
  t.deepEqual(opts(['--rootfs', '/r', '--read-only']).mounts, [{ kind: 'tmpfs', target: '/tmp' }]);
  t.deepEqual(opts(['--rootfs', '/r', '--read-only', '--bind', '/h:/tmp']).mounts, [{ kind: 'bind', source: '/h', target: '/tmp' }]);
});

test('help and version', (t) => {
  t.like(parseArgs(['--help'], '1.2.3'), { kind: 'info' });
  t.deepEqual(parseArgs(['-V'], '1.2.3'), { kind: 'info', text: '1.2.3\n' });
});

test('usage errors', (t) => {
  const bad: [string[], RegExp][] = [
    [[], /--rootfs DIR is required/],
    [['--rootfs'], /option '--rootfs' needs a value/],
    [['--rootfs', '/r', '--what'], /unknown option '--what'/],
    [['--rootfs', '/r', '--env', 'NOEQ'], /expected KEY=VALUE/],
    [['--rootfs', '/r', '--env', '1X=y'], /expected KEY=VALUE/],
    [['--rootfs', '/r', '--bind', ':/x'], /expected SRC:DST/],
    [['--rootfs', '/r', '--bind', '/x:rel'], /must be absolute/],
    [['--rootfs', '/r', '--cwd', 'rel'], /must be absolute/],
    [['--rootfs', '/r', '--net', 'bridge0'], /unknown network mode/],
    [['--rootfs', '/r', '--hostname', 'a b'], /not a valid hostname/],
    [['--rootfs', '/r', '--hostname', 'x'.repeat(65)], /not a valid hostname/],
    [['--rootfs', '/r', '--', ''], /empty string/],
  ];
  for (const [argv, message] of bad) t.throws(() => parseArgs(argv, '0'), { instanceOf: UsageError, message }, argv.join(' '));
});

test('sandbox paths are normalised', (t) => {
  t.is(sandboxPath('x', '/a//b/./c/..'), '/a/b');
  t.is(sandboxPath('x', '/../..'), '/');
});
