import test from 'ava';
import { privateKiB, treeWithout } from '../../../scripts/bench/density.ts';

// launcher 10 -> holder 11 (-> its helper 14), sandbox 12 -> 13; 20 is unrelated.
const table = new Map([10, 11, 12, 13, 14, 20].map((pid) => [pid, { pid, ppid: ({ 10: 1, 11: 10, 12: 10, 13: 12, 14: 11, 20: 1 } as Record<number, number>)[pid]! }]));

test('what a contender keeps: the started process and its descendants but the sandbox tree', (t) => {
  t.deepEqual(treeWithout(10, 12, table).sort(), [10, 11, 14]);
  t.deepEqual(treeWithout(10, undefined, table).sort(), [10, 11, 12, 13, 14]);
  t.deepEqual(treeWithout(12, 12, table), [], 'the sandbox itself is all excluded');
  t.deepEqual(treeWithout(99, 12, table), [], 'a process that is gone keeps nothing');
});

test('private memory is read from smaps_rollup; a process that is gone has none', (t) => {
  t.true(privateKiB(process.pid) > 1024, 'this Node has MBs of its own');
  t.is(privateKiB(2 ** 22 + 1), 0);
});
