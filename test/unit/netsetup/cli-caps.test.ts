// The command line is capped before any work (issue 10, class 4): how many
// arguments, how many bytes, how many --publish, for root too.
import test from 'ava';
import { MAX_ARG_BYTES, MAX_ARGS, MAX_PUBLISH, parseArgs } from '../../../packages/netsetup/src/cli.ts';
import { NsboxError } from '../../../packages/shared/src/error.ts';
import { EXIT } from '../../../packages/netsetup/src/exit.ts';

const publishing = (n: number): string[] => ['--pid', '42', ...Array.from({ length: n }, (_, i) => ['--publish', `${10000 + i}:80`]).flat()];

test('MAX_PUBLISH --publish are accepted, one more is a usage error', (t) => {
  const ok = parseArgs(publishing(MAX_PUBLISH));
  t.is(ok.command === 'connect' ? ok.publish.length : -1, MAX_PUBLISH);
  const err = t.throws(() => parseArgs(publishing(MAX_PUBLISH + 1)), { instanceOf: NsboxError });
  t.is(err?.exit, EXIT.USAGE);
  t.is(err?.message, `command line: more than ${MAX_PUBLISH} --publish options. Run netsetup --help`);
});

test('50,000 --publish are refused at once, before any of them is parsed', (t) => {
  const argv = publishing(50_000);
  const t0 = process.hrtime.bigint();
  const err = t.throws(() => parseArgs(argv), { instanceOf: NsboxError });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  t.is(err?.exit, EXIT.USAGE);
  t.is(err?.message, `command line: ${argv.length} arguments, at most ${MAX_ARGS} are accepted. Run netsetup --help`);
  t.true(ms < 50, `${ms} ms`);
});

test('a few huge arguments are refused by their size', (t) => {
  const err = t.throws(() => parseArgs(['--pid', '42', '--network', 'x'.repeat(MAX_ARG_BYTES)]), { instanceOf: NsboxError });
  t.is(err?.exit, EXIT.USAGE);
  t.regex(err!.message, /^command line: the arguments are \d+ bytes long, at most 8192 are accepted/);
  // Control: the same shape, short, parses.
  t.is(parseArgs(['--pid', '42', '--network', 'x']).command, 'connect');
});
