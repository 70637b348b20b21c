// Micro-benchmark of the bridge filter's hot path: binding and unbinding one
// port (its five set elements), as one nf_tables netlink transaction each (what
// netsetup does) and, for comparison, through the nft program. Also the rare
// operation, replacing the whole table. Not a test: prints a table. Run as root;
// it uses a table of its own (no bridge, no ports, no traffic) and removes it.
//   node scripts/bench-bridgefilter.ts [--runs N] [--others N]
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { BridgeFilter, installTable, NFT, removeTable } from '../packages/netsetup/src/kernel/bridgefilter.ts';
import { portBinding, SETS, type FilteredNetwork, type FilterScope, type PortBinding } from '../packages/netsetup/src/policy/bridgerules.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '500' }, others: { type: 'string', default: '250' } } });
const RUNS = Number(values.runs);
const OTHERS = Number(values.others);
if (process.getuid!() !== 0) throw new Error('run as root');

const scope: FilterScope = { table: 'nsboxbench', portPrefix: 'nsbb' };
const net: FilteredNetwork = { bridge: 'nsbench0', subnet: '10.231.0.0/16', gateway: '10.231.0.1', isolation: 'user' };
const binding = (i: number): PortBinding =>
  portBinding(scope, net, { port: `nsbb${i.toString(16).padStart(8, '0')}`, mac: `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`, address: `10.231.${(i >> 8) + 1}.${(i & 255) + 1 || 2}`, uid: 1000 + (i % 7) });
const others = Array.from({ length: OTHERS }, (_, i) => binding(i + 1));
const me = binding(0xeff0);

const ms = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;
const quantile = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))]!;
const median = (xs: number[]): number => quantile(xs, 0.5);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const rows: [string, number][] = [];

function nftElements(op: 'add' | 'delete', b: PortBinding): string {
  const g = `0x${b.group.toString(16).padStart(8, '0')}`;
  return [
    `${op} element bridge ${scope.table} ${SETS.mac} { "${b.port}" . ${b.mac} }`,
    `${op} element bridge ${scope.table} ${SETS.ip} { "${b.port}" . ${b.address} }`,
    `${op} element bridge ${scope.table} ${SETS.group} { "${b.port}"${op === 'add' ? ` : ${g}` : ''} }`,
    `${op} element bridge ${scope.table} ${SETS.inGroup} { "${b.port}" . ${g} }`,
    '',
  ].join('\n');
}

try {
  for (const n of [0, OTHERS]) {
    const t0 = process.hrtime.bigint();
    installTable(scope, [net], others.slice(0, n));
    rows.push([`replace the table with ${n} bound ports (nft -f)`, ms(t0)]);
  }
  const f = BridgeFilter.open(scope);
  try {
    for (let i = 0; i < 20; i++) {
      f.bind(me);
      f.unbind(me);
    }
    const bind: number[] = [];
    const unbind: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      let t0 = process.hrtime.bigint();
      f.bind(me);
      bind.push(ms(t0));
      t0 = process.hrtime.bigint();
      f.unbind(me);
      unbind.push(ms(t0));
    }
    rows.push([`netlink: bind (median of ${RUNS}, ${OTHERS} other ports bound)`, median(bind)]);
    rows.push([`netlink: unbind (median of ${RUNS})`, median(unbind)]);
    const both = bind.map((b, i) => b + unbind[i]!);
    rows.push(['netlink: bind + unbind, median', median(both)]);
    rows.push(['netlink: bind + unbind, mean', mean(both)]);
    rows.push(['netlink: bind + unbind, 90th percentile', quantile(both, 0.9)]);
    rows.push(['netlink: bind + unbind, worst', quantile(both, 1)]);
    let t0 = process.hrtime.bigint();
    const listed = f.bound().length;
    rows.push([`netlink: list the bound ports (${listed}, for GC)`, ms(t0)]);
    const runs = Math.min(RUNS, 50);
    const pair: number[] = [];
    for (let i = 0; i < runs; i++) {
      t0 = process.hrtime.bigint();
      execFileSync(NFT, ['-f', '-'], { input: nftElements('add', me), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
      execFileSync(NFT, ['-f', '-'], { input: nftElements('delete', me), env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
      pair.push(ms(t0));
    }
    rows.push([`nft program: bind + unbind (median of ${runs})`, median(pair)]);
  } finally {
    f.close();
  }
} finally {
  removeTable(scope);
}

const width = Math.max(...rows.map(([k]) => k.length));
for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v.toFixed(3)} ms`);
