// Statistics, tables and targets: what a section reports (pure).

/** The q-quantile of sorted values, interpolating linearly between neighbours. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export interface Stats {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

export function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    median: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    min: sorted[0] ?? NaN,
    max: sorted[sorted.length - 1] ?? NaN,
    mean: sorted.reduce((a, b) => a + b, 0) / sorted.length,
  };
}

export const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;

export const roundStats = (s: Stats, digits = 2): Stats => ({
  n: s.n,
  median: round(s.median, digits),
  p90: round(s.p90, digits),
  min: round(s.min, digits),
  max: round(s.max, digits),
  mean: round(s.mean, digits),
});

/** a / b as "1.23", or "-" when either is missing. */
export function ratioText(a: number | undefined, b: number | undefined): string {
  return a === undefined || b === undefined || !(b > 0) ? '-' : (a / b).toFixed(2);
}

export function table(header: string[], rows: string[][], rightAligned: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

export interface Target {
  name: string;
  /** measured / reference, compared with limit; undefined when it could not be measured or is a plain check */
  ratio: number | undefined;
  /** the ratio must be at most (<=) or at least (>=) this; undefined for a plain check */
  limit: number | undefined;
  bound: 'at most' | 'at least' | undefined;
  result: 'PASS' | 'MISS' | 'SKIP';
}

function ratioTarget(name: string, value: number | undefined, reference: number | undefined, limit: number, bound: 'at most' | 'at least'): Target {
  if (value === undefined || reference === undefined || !(reference > 0)) return { name, ratio: undefined, limit, bound, result: 'SKIP' };
  const ratio = value / reference;
  const ok = bound === 'at most' ? ratio <= limit : ratio >= limit;
  return { name, ratio: round(ratio, 3), limit, bound, result: ok ? 'PASS' : 'MISS' };
}

/** value / reference <= limit (times, memory). */
export function target(name: string, value: number | undefined, reference: number | undefined, limit: number): Target {
  return ratioTarget(name, value, reference, limit, 'at most');
}

/** value / reference >= limit (throughput). */
export function targetAtLeast(name: string, value: number | undefined, reference: number | undefined, limit: number): Target {
  return ratioTarget(name, value, reference, limit, 'at least');
}

/** A yes/no check such as "nothing left behind"; undefined: could not be checked. */
export function checkTarget(name: string, ok: boolean | undefined): Target {
  return { name, ratio: undefined, limit: undefined, bound: undefined, result: ok === undefined ? 'SKIP' : ok ? 'PASS' : 'MISS' };
}

export interface SectionReport {
  /** Human-readable lines (tables, notes). */
  text: string[];
  targets: Target[];
  /** Everything measured, for --json. */
  data: Record<string, unknown>;
}

/** A section that could not run at all, with the reason as its one line. */
export function skipped(reason: string, targetNames: string[]): SectionReport {
  return {
    text: [`skipped: ${reason}`],
    targets: targetNames.map((name) => checkTarget(name, undefined)),
    data: { skipped: reason },
  };
}
