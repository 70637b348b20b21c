import test from 'ava';
import { CHECKED_LENGTH, formatChecked, nextGeneration, oneSince, parseChecked, unchangedSince } from '../../../../packages/netsetup/src/policy/rulecheck.ts';

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

test('the record is fixed-width "ID HANDLE CHECK\\n" and reads back; a torn, foreign or tableless one is no record', (t) => {
  const max = formatChecked(at(4294967295, '18446744073709551615'));
  t.is(max.length, CHECKED_LENGTH);
  t.regex(max, /^4294967295 18446744073709551615 [0-9a-f]{8}\n$/);
  t.deepEqual(parseChecked(max), at(4294967295, '18446744073709551615'));
  const small = formatChecked(at(42, '3'));
  t.is(small.length, CHECKED_LENGTH, 'zero-padded: every record has the same length');
  t.true(small.startsWith('0000000042 00000000000000000003 '));
  t.deepEqual(parseChecked(small), at(42, '3'));
  t.deepEqual(parseChecked(formatChecked(at(0, '1'))), at(0, '1'));
  // Half of one write over another (the record is rewritten in place and read without the lock).
  const next = formatChecked(at(43, '3'));
  for (let cut = 1; cut < CHECKED_LENGTH; cut++) {
    const torn = next.slice(0, cut) + small.slice(cut);
    if (torn !== small && torn !== next) t.is(parseChecked(torn), undefined, JSON.stringify(torn));
  }
  t.is(parseChecked(formatChecked(at(42, null))), undefined, 'a record without a table never matches');
  for (const bad of ['', '42 3\n', small.slice(0, -1), `${small}\n`, small.toUpperCase().replace('\N', '\n'), small.replace(/[0-9a-f]{8}\n$/, '00000000\n'), `x${small.slice(1)}`]) {
    t.is(parseChecked(bad), undefined, JSON.stringify(bad));
  }
});

/** FNV-1a (32 bits), written out here to make records netsetup would not. */
function fnv(text: string): string {
  let h = 0x811c9dc5;
  for (const c of text) h = Math.imul(h ^ c.charCodeAt(0), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}
const record = (id: string, table: string): string => `${id} ${table} ${fnv(`${id} ${table}`)}\n`;

test('the record is exactly this text (the check is FNV-1a of the rest); out-of-range numbers and leading junk are no record', (t) => {
  t.is(formatChecked(at(42, '3')), record('0000000042', '00000000000000000003'));
  t.is(formatChecked(at(42, '3')), '0000000042 00000000000000000003 dd046470\n');
  t.is(formatChecked(at(42, null)), record('0000000042', '00000000000000000000'), 'no table: zeros, which never parse');
  t.is(formatChecked(at(11, '1')), '0000000011 00000000000000000001 047ffbb2\n', 'a check below 0x10000000 keeps its leading zero');
  t.deepEqual(parseChecked(record('4294967295', '00000000000000000001')), at(4294967295, '1'));
  t.is(parseChecked(record('4294967296', '00000000000000000001')), undefined, 'past 32 bits');
  t.is(parseChecked(record('9999999999', '00000000000000000001')), undefined);
  t.is(parseChecked(record('0000000001', '00000000000000000000')), undefined, 'table handle 0');
  t.is(parseChecked(record('0000000001', '18446744073709551616')), undefined, 'past 64 bits');
  t.deepEqual(parseChecked(record('0000000001', '18446744073709551615')), at(1, '18446744073709551615'));
  t.is(parseChecked(`9${record('0000000001', '00000000000000000001')}`), undefined, 'leading junk');
});
