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

/** The record's text: the generation and the table's handle. */
export const formatChecked = (g: Generation): string => `${g.id >>> 0} ${g.table ?? '-'}\n`;

/** A record read back; undefined for anything that is not one. */
export function parseChecked(text: string): Generation | undefined {
  const m = /^(\d{1,10}) (\d{1,20})\n$/.exec(text);
  if (!m) return undefined;
  const id = Number(m[1]);
  return id <= 0xffffffff ? { id, table: m[2]! } : undefined;
}
