// When a connect may skip looking at its network's iptables jumps (nf_tables
// backend). Every committed nf_tables transaction (iptables-nft, nft, a firewall
// reload, netsetup's own port bindings) bumps the ruleset's generation, one per
// network namespace. A generation at which the jumps were seen intact is
// recorded; while the generation is still that one, nothing can have taken them.
// The bridge filter table's handle goes with it: reloading the nf_tables module
// (possible only with every table gone, ours too) restarts the count, and a
// table made anew would have to get the old handle as well to be mistaken.
// Pure: the generation comes from kernel/bridgefilter.ts, the record from
// kernel/state.ts.

export interface Generation {
  /** The ruleset's generation (NFTA_GEN_ID, 32 bits). */
  id: number;
  /** The bridge filter table's handle, undefined when the table is missing. */
  table?: string;
}

/** The generation after one more transaction (the kernel skips 0 when it wraps). */
export const nextGeneration = (id: number): number => (id >>> 0 === 0xffffffff ? 1 : (id >>> 0) + 1);

const same = (a: Generation, b: Generation): boolean => a.table !== undefined && a.table === b.table;

/** Whether nothing changed since `checked`, when the jumps were seen intact. */
export function unchangedSince(checked: Generation | undefined, now: Generation | undefined): boolean {
  return checked !== undefined && now !== undefined && same(checked, now) && now.id === checked.id;
}

/** Whether exactly one transaction came between `before` and `after`: the
 *  caller's own, when it made one in between (then nothing else did). */
export function oneSince(before: Generation | undefined, after: Generation | undefined): boolean {
  return before !== undefined && after !== undefined && same(before, after) && after.id === nextGeneration(before.id);
}

/** FNV-1a (32 bits) of a short ASCII text. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Length of a record: always the same, so that it is rewritten in place. */
export const CHECKED_LENGTH = 41;

/**
 * The record's text: the generation and the table's handle, zero-padded to a
 * fixed width, and a check of both. It is rewritten in place (one pwrite, no
 * new inode) and read without the lock, so a read may catch half of a write:
 * the check then fails, and that reads as no record.
 */
export function formatChecked(g: Generation): string {
  const body = `${String(g.id >>> 0).padStart(10, '0')} ${(g.table ?? '').padStart(20, '0')}`;
  return `${body} ${fnv1a(body).toString(16).padStart(8, '0')}\n`;
}

/** A record read back; undefined for anything that is not one (torn, no table, foreign). */
export function parseChecked(text: string): Generation | undefined {
  const m = /^((\d{10}) (\d{20})) ([0-9a-f]{8})\n$/.exec(text);
  if (!m || parseInt(m[4]!, 16) !== fnv1a(m[1]!)) return undefined;
  const id = Number(m[2]);
  const table = BigInt(m[3]!);
  return id <= 0xffffffff && table > 0n && table < 2n ** 64n ? { id, table: table.toString() } : undefined;
}
