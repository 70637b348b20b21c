// Section imports: what each runtime package costs a plain Node start that
// imports it unbundled (ESM, as a script or a test does): `node -e` importing it
// minus `node -e` importing nothing, paired by round. With the startup section's
// cost of a package bundled into a single executable, this is what decided where
// each package is used (README, Dependencies).
import path from 'node:path';
import { ROOT, type Context } from './context.ts';
import { timeInterleaved, type Command } from './startup.ts';
import { quantile, round, roundStats, stats, table, type SectionReport } from './report.ts';

/** Package, and the directory it is resolved from (koffi is packages/shared's). */
const PACKAGES: [pkg: string, from: string][] = [
  ['koffi', 'packages/shared'],
  ['ip-cidr', '.'],
  ['commander', '.'],
  ['execa', '.'],
];

const importing = (ctx: Context, code: string): string[] => [ctx.opts.node, '--input-type=module', '-e', code];

export async function imports(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const commands: Command[] = [
    { id: 'none', label: 'node --input-type=module -e 0', argv: importing(ctx, '0') },
    // -e code resolves bare specifiers from the working directory: run from where the package is a dependency.
    ...PACKAGES.map(([pkg, from]): Command => ({ id: pkg, label: `import('${pkg}')`, argv: ['sh', '-c', `cd "$0" && exec "$@"`, path.join(ROOT, from), ...importing(ctx, `await import('${pkg}')`)] })),
  ];
  // The baseline runs through sh too, so the paired difference is the import alone.
  commands[0]!.argv = ['sh', '-c', `cd "$0" && exec "$@"`, ROOT, ...commands[0]!.argv];
  ctx.log(`imports: ${opts.warmup} warm-up + ${opts.runs} timed runs of ${commands.length} commands, round-robin`);
  const times = await timeInterleaved(ctx, commands, opts.runs, opts.warmup);
  const none = times.get('none')!;
  const diffs = new Map(PACKAGES.map(([pkg]) => [pkg, times.get(pkg)!.map((ms, i) => ms - none[i]!)]));
  const text = [
    `Start-up cost of importing a package unbundled (ms: node -e "await import(P)" minus node -e 0, paired by round, ${opts.runs} pairs; baseline median ${stats(none).median.toFixed(2)} ms)`,
    ...table(
      ['package', 'median', 'p10', 'p90'],
      PACKAGES.map(([pkg]) => {
        const sorted = [...diffs.get(pkg)!].sort((a, b) => a - b);
        return [pkg, quantile(sorted, 0.5).toFixed(2), quantile(sorted, 0.1).toFixed(2), quantile(sorted, 0.9).toFixed(2)];
      }),
      [false, true, true, true],
    ),
  ];
  return {
    text,
    targets: [],
    data: {
      runs: opts.runs,
      baselineMs: roundStats(stats(none)),
      importCostMs: Object.fromEntries(PACKAGES.map(([pkg]) => [pkg, { ...roundStats(stats(diffs.get(pkg)!), 3), samples: diffs.get(pkg)!.map((x) => round(x, 3)) }])),
    },
  };
}
