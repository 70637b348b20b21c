import test from 'ava';
import { formatChecked, nextGeneration, oneSince, parseChecked, unchangedSince } from '../../../../packages/netsetup/src/policy/rulecheck.ts';

/** A generation; null: the table is missing. */
const at = (id: number, table: string | null = '7') => ({ id, ...(table === null ? {} : { table }) });

test('the next generation is one more, and skips 0 when the 32-bit count wraps (as the kernel does)', (t) => {
  t.is(nextGeneration(1), 2);
  t.is(nextGeneration(0), 1);
  t.is(nextGeneration(0xfffffffe), 0xffffffff);
  t.is(nextGeneration(0xffffffff), 1);
});

test('unchanged: same generation and same table; anything else (or no record) means a look', (t) => {
  t.true(unchangedSince(at(5), at(5)));
  t.false(unchangedSince(at(5), at(6)), 'a transaction since');
  t.false(unchangedSince(at(6), at(5)));
  t.false(unchangedSince(at(5), at(5, '8')), 'the table was made anew');
  t.false(unchangedSince(at(5, null), at(5, null)), 'no table: nothing to trust');
  t.false(unchangedSince(at(5), at(5, null)), 'the table is gone');
  t.false(unchangedSince(undefined, at(5)));
  t.false(unchangedSince(at(5), undefined));
});

test('one transaction since: exactly the next generation, same table', (t) => {
  t.true(oneSince(at(5), at(6)));
  t.true(oneSince(at(0xffffffff), at(1)));
  t.false(oneSince(at(5), at(5)), 'none: the caller made none, or it was undone');
  t.false(oneSince(at(5), at(7)), 'two: another one came too');
  t.false(oneSince(at(5), at(6, '8')));
  t.false(oneSince(at(5, null), at(6, null)));
  t.false(oneSince(undefined, at(6)));
  t.false(oneSince(at(5), undefined));
});

test('the record is "ID HANDLE\\n" and reads back; anything else is no record', (t) => {
  t.is(formatChecked(at(4294967295, '18446744073709551615')), '4294967295 18446744073709551615\n');
  t.deepEqual(parseChecked(formatChecked(at(42, '3'))), at(42, '3'));
  t.deepEqual(parseChecked('0 1\n'), at(0, '1'));
  for (const bad of ['', '42\n', '42 3', '42 3\n\n', ' 42 3\n', '42  3\n', '-1 3\n', '4294967296 3\n', '42 -\n', '42 3x\n', '1e3 3\n', '42 123456789012345678901\n']) {
    t.is(parseChecked(bad), undefined, JSON.stringify(bad));
  }
  t.is(parseChecked(formatChecked(at(42, null))), undefined, 'a record without a table never matches');
});
