import test from 'ava';
import { NsboxError } from '../../../packages/shared/src/error.ts';
import { parseArgs, sandboxPath } from '../../../packages/launcher/src/cli.ts';
import { VERSION } from '../../../packages/launcher/src/version.ts';

const opts = (argv: string[]) => {
  const p = parseArgs(argv);
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
  t.like(parseArgs(['--help']), { kind: 'info' });
  t.deepEqual(parseArgs(['-V']), { kind: 'info', text: `${VERSION}\n` });
});

test('usage errors', (t) => {
  const bad: [string[], RegExp][] = [
    [[], /^--rootfs DIR: the option is required\./],
    [['--rootfs'], /^--rootfs: the option needs a value\. Try 'launcher --help'\.$/],
    [['--rootfs', '/r', '--what'], /^--what: unknown option\. Try 'launcher --help'\.$/],
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
  for (const [argv, message] of bad) {
    const err = t.throws(() => parseArgs(argv), { instanceOf: NsboxError, message }, argv.join(' '));
    t.is(err?.exit, undefined, 'the launcher\'s exit code for failures, 125');
  }
});

test('a hostname of 64 characters in valid labels is accepted, 65 are not', (t) => {
  const name = (length: number): string => `${'a'.repeat(31)}.${'b'.repeat(length - 32)}`;
  t.is(opts(['--rootfs', '/r', '--hostname', name(64)]).hostname, name(64));
  t.throws(() => opts(['--rootfs', '/r', '--hostname', name(65)]), { instanceOf: NsboxError, message: /at most 64 characters/ });
});

test('sandbox paths are normalised', (t) => {
  t.is(sandboxPath('x', '/a//b/./c/..'), '/a/b');
  t.is(sandboxPath('x', '/../..'), '/');
});

test('--net, --netsetup, -p and --info-fd parse; the network defaults to automatic', (t) => {
  const o = opts(['--rootfs', '/r', '--net', 'bridge', '--netsetup', '/opt/netsetup', '-p', '8080:80', '--publish=127.0.0.2:53:53/udp', '--info-fd', '3']);
  t.is(o.net, 'bridge');
  t.is(o.netsetup, '/opt/netsetup');
  t.deepEqual(o.publish, ['8080:80', '127.0.0.2:53:53/udp']);
  t.is(o.infoFd, 3);
  t.is(opts(['--rootfs', '/r']).net, undefined);
});

test('bad network options are usage errors that say what is expected', (t) => {
  t.throws(() => opts(['--rootfs', '/r', '--net', 'host']), { instanceOf: NsboxError, message: /choose from: bridge, none/ });
  for (const bad of ['80', '0:80', '8080:70000', '1.2.3:80:80', '300.1.1.1:80:80', '80:80/sctp', 'x:80']) {
    t.throws(() => opts(['--rootfs', '/r', '-p', bad]), { instanceOf: NsboxError, message: new RegExp(`^-p ${bad.replace('.', '\\.')}: `) }, bad);
  }
  t.throws(() => opts(['--rootfs', '/r', '--net', 'none', '-p', '80:80']), { message: /cannot be used with --net none/ });
  t.throws(() => opts(['--rootfs', '/r', '--info-fd', 'x']), { message: /file descriptor number/ });
});

test('--init, --name and --network; --network implies bridge and conflicts with --net none', (t) => {
  const o = opts(['--rootfs', '/r', '--init', '--name', 'web-1', '--network', 'lab']);
  t.like(o, { init: true, name: 'web-1', network: 'lab', net: 'bridge' });
  t.is(opts(['--rootfs', '/r']).init, undefined);
  t.throws(() => parseArgs(['--rootfs', '/r', '--net', 'none', '--network', 'lab']), { instanceOf: NsboxError, message: /--network: names a network/ });
  for (const bad of ['', '-x', 'a/b', 'a b', 'x'.repeat(64)]) {
    t.throws(() => parseArgs(['--rootfs', '/r', '--name', bad]), { instanceOf: NsboxError, message: /not a valid name/ }, JSON.stringify(bad));
  }
});

const message = (argv: string[]): string => (t0(() => parseArgs(argv)) as NsboxError).message;
function t0(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    if (err instanceof NsboxError) return err;
    throw err;
  }
  throw new Error('expected an NsboxError');
}

test('the exact usage messages', (t) => {
  const cases: [string[], string][] = [
    [['--rootfs='], '--rootfs: needs a directory.'],
    [['--rootfs', '/r', '--netsetup='], '--netsetup: needs a path.'],
    [['--rootfs', '/r', '--hostname'], "--hostname: the option needs a value. Try 'launcher --help'."],
    [['--rootfs', '/r', '--net', 'host'], '--net host: unknown network mode (choose from: bridge, none).'],
    [['--rootfs', '/r', '--env', '=v'], '--env =v: expected KEY=VALUE with KEY made of letters, digits and _.'],
    [['--rootfs', '/r', '--ro-bind', ':/x'], '--ro-bind :/x: expected SRC:DST.'],
    [['--rootfs', '/r', '--tmpfs', 'rel'], '--tmpfs rel: the path inside the sandbox must be absolute.'],
    [['--rootfs', '/r', '--cwd', '/a\0b'], '--cwd: the path contains a NUL byte.'],
    [['--rootfs', '/r', '--info-fd', '1234567890'], '--info-fd 1234567890: expected a file descriptor number.'],
    [['--rootfs', '/r', '--hostname', '-a'], "--hostname -a: not a valid hostname (letters, digits, '-' and '.', at most 64 characters)."],
    [['--rootfs', '/r', '-p', '80'], '-p 80: expected [HOSTIP:]HOSTPORT:PORT[/tcp|/udp], e.g. 8080:80 or 192.0.2.10:5353:53/udp.'],
    [['--rootfs', '/r', '--net', 'none', '--publish', '80:80'], '-p: needs a network: it cannot be used with --net none.'],
    [['--rootfs', '/r', '--', ''], 'the command: an empty string.'],
    [['--rootfs', '/r', '-p=80:80'], "-p=80:80: unknown option. Try 'launcher --help'."],
    [['--hostname', 'h'], "--rootfs DIR: the option is required. Try 'launcher --help'."],
  ];
  for (const [argv, text] of cases) t.is(message(argv), text, argv.join(' '));
});

test('help: the usage, every option and the defaults; -h and --help alike, as are -V and --version', (t) => {
  const help = parseArgs(['--help']);
  t.deepEqual(parseArgs(['-h']), help);
  t.deepEqual(parseArgs(['--version']), parseArgs(['-V']));
  t.deepEqual(parseArgs(['--rootfs', '/r', '-h', '--bogus-later']), help, 'help stops the parsing');
  const text = help.kind === 'info' ? help.text : '';
  t.true(text.startsWith('Usage: launcher --rootfs DIR [options] [-- CMD [ARGS...]]\n'));
  for (const o of ['--rootfs DIR', '--hostname NAME', '--env KEY=VALUE', '--cwd DIR', '--bind SRC:DST', '--ro-bind SRC:DST', '--tmpfs DST', '--read-only', '--net MODE', '--netsetup PATH', '-p, --publish', '--info-fd FD', '-h, --help', '-V, --version']) {
    t.true(text.includes(`\n  ${o}`), o);
  }
  t.true(text.includes('(default: sandbox)'));
  t.true(text.endsWith('127 if it was not found.\n'));
});

test('argument forms: --read-only, "-" as the command, a bind without a colon, the longest hostname label', (t) => {
  t.true(opts(['--rootfs', '/r', '--read-only']).readOnly);
  t.deepEqual(opts(['--rootfs', '/r', '-']).command, ['-']);
  t.deepEqual(opts(['--rootfs', '/r', '--bind', '/x/./y']).mounts, [{ kind: 'bind', source: '/x/./y', target: '/x/y' }]);
  t.deepEqual(opts(['--rootfs', '/r', '--ro-bind=/s:/t']).mounts, [{ kind: 'ro-bind', source: '/s', target: '/t' }]);
  t.deepEqual(opts(['--rootfs', '/r', '--read-only', '--tmpfs', '/var']).mounts, [{ kind: 'tmpfs', target: '/tmp' }, { kind: 'tmpfs', target: '/var' }]);
  t.deepEqual(opts(['--rootfs', '/r', '--read-only', '--tmpfs', '/tmp/']).mounts, [{ kind: 'tmpfs', target: '/tmp' }]);
  t.is(opts(['--rootfs', '/r', '--hostname', 'a'.repeat(63)]).hostname, 'a'.repeat(63));
  t.throws(() => opts(['--rootfs', '/r', '--hostname', 'a'.repeat(64)]), { message: /not a valid hostname/ });
  t.is(opts(['--rootfs', '/r', '--hostname', 'a-1.b-2']).hostname, 'a-1.b-2');
  for (const h of ['a.', '.a', 'a..b', 'a_b', '']) t.throws(() => opts(['--rootfs', '/r', '--hostname', h]), { message: /not a valid hostname/ }, h);
  t.is(opts(['--rootfs', '/r', '--info-fd', '123456789']).infoFd, 123456789);
  t.is(opts(['--rootfs', '/r', '--net', 'none']).net, 'none');
  t.deepEqual(opts(['--rootfs', '/r', '--env', 'A_1=x', '--env', '_=']).env, [['A_1', 'x'], ['_', '']]);
  t.deepEqual(opts(['--rootfs', '/r', '--cwd=/a/b']).cwd, '/a/b');
  t.deepEqual(opts(['--rootfs', '/r', '--', '--', 'x']).command, ['--', 'x']);
});

test('an --env key is letters, digits and _ to its end; a bind target error names the option', (t) => {
  t.is(message(['--rootfs', '/r', '--env', 'A-B=1']), '--env A-B=1: expected KEY=VALUE with KEY made of letters, digits and _.');
  t.is(message(['--rootfs', '/r', '--bind', '/x:rel']), '--bind rel: the path inside the sandbox must be absolute.');
});
