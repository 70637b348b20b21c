import test from 'ava';
import { NEEDS, parseLimits, raises, readLimits, tooLow } from '../../../../packages/netsetup/src/setuid/limits.ts';
import { EXIT } from '../../../../packages/netsetup/src/exit.ts';

const limitsText = (nofile: string, fsize: string, as: string): string => `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max file size             ${fsize}            bytes
Max open files            ${nofile}            files
Max address space         ${as}            bytes
`;

test('parses /proc/self/limits, unlimited as Infinity', (t) => {
  const l = parseLimits(limitsText('1024 524288', 'unlimited unlimited', '3000000000 unlimited'));
  t.deepEqual(l, { nofile: { soft: 1024, hard: 524288 }, fsize: { soft: Infinity, hard: Infinity }, as: { soft: 3000000000, hard: Infinity } });
});

test('the real /proc/self/limits parses to numbers', (t) => {
  const l = readLimits();
  t.true(l.nofile.soft > 0 && l.nofile.hard >= l.nofile.soft);
});

test('a limit too low to start names itself, its ulimit, and exits 9', (t) => {
  const nofile = tooLow(parseLimits(limitsText('40 40', 'unlimited unlimited', 'unlimited unlimited')));
  t.is(nofile?.exit, EXIT.LIMIT);
  t.is(nofile?.message, `start-up: your RLIMIT_NOFILE limit (ulimit -n) is 40 open files, below the ${NEEDS.nofile} netsetup needs to start. Raise it (ulimit -n 1024) and try again`);
  t.regex(tooLow(parseLimits(limitsText('1024 1024', '100000 100000', 'unlimited unlimited')))!.message, /RLIMIT_FSIZE limit \(ulimit -f\) is 100000 bytes/);
  t.regex(tooLow(parseLimits(limitsText('1024 1024', 'unlimited unlimited', '1000000000 unlimited')))!.message, /RLIMIT_AS limit \(ulimit -v\) is 1000000000 bytes/);
  t.is(tooLow(parseLimits(limitsText('1024 1024', 'unlimited unlimited', 'unlimited unlimited'))), undefined);
});

test('lowered limits are raised; the usual ones are left alone', (t) => {
  t.deepEqual(raises(parseLimits(limitsText('1024 524288', 'unlimited unlimited', 'unlimited unlimited'))), []);
  t.deepEqual(raises(parseLimits(limitsText('100 200', '20000000 20000000', '3000000000 3000000000'))), [
    { resource: 'nofile', soft: 1024, hard: 1024 },
    { resource: 'fsize', soft: Infinity, hard: Infinity },
    { resource: 'as', soft: Infinity, hard: Infinity },
  ]);
});
