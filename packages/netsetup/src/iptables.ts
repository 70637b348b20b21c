// Runs iptables: by absolute path, never through a shell, with a fixed argument
// list, a fixed environment and -w. The rules themselves come from firewall.ts.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type { Backend, Network } from './config.ts';
import { EXIT, NetsetupError } from './errors.ts';
import { addLeaseScript, dnatChain, fwdChain, jumps, natChain, restoreScript } from './firewall.ts';
import type { Lease } from './leases.ts';
import { FIXED_ENV } from './secure.ts';
import { untrusted } from './trust.ts';

const NAMES: Record<Backend, { iptables: string; restore: string }> = {
  auto: { iptables: 'iptables', restore: 'iptables-restore' },
  nft: { iptables: 'iptables-nft', restore: 'iptables-nft-restore' },
  legacy: { iptables: 'iptables-legacy', restore: 'iptables-legacy-restore' },
};
const DIRS = ['/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export interface Tools {
  iptables: string;
  restore: string;
}

/** Absolute paths of the backend's programs, each resolving to a root-owned file. */
export function tools(backend: Backend): Tools {
  const find = (name: string): string => {
    for (const dir of DIRS) {
      const p = `${dir}/${name}`;
      let real: string;
      try {
        real = fs.realpathSync(p);
      } catch {
        continue;
      }
      const problem = untrusted(real, 'file');
      if (problem) {
        throw new NetsetupError(EXIT.CONFIG, `${p}`, `refusing to run it: ${problem.path} ${problem.why}`, 'Reinstall iptables from the distribution');
      }
      return p;
    }
    throw new NetsetupError(EXIT.CONFIG, name, `not found in ${DIRS.join(', ')}`, `Install iptables (backend "${backend}")`);
  };
  return { iptables: find(NAMES[backend].iptables), restore: find(NAMES[backend].restore) };
}

function run(file: string, args: string[], input?: string): { status: number; stderr: string } {
  const r = spawnSync(file, args, {
    env: FIXED_ENV,
    input: input ?? '',
    stdio: ['pipe', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 30_000,
    cwd: '/',
  });
  if (r.error) throw new NetsetupError(EXIT.SYSTEM, `run ${file}`, r.error.message, 'Check the iptables installation');
  return { status: r.status ?? 128, stderr: (r.stderr ?? '').trim().split('\n')[0] ?? '' };
}

/** Rebuilds the network's chains from `leases` and makes sure the jumps exist. */
export function applyRules(t: Tools, net: Network, leases: Lease[]): void {
  let r = run(t.restore, ['-w', '--noflush'], restoreScript(net, leases, true));
  if (r.status !== 0) r = run(t.restore, ['-w', '--noflush'], restoreScript(net, leases, false));
  if (r.status !== 0) {
    throw new NetsetupError(EXIT.SYSTEM, `install iptables rules for ${net.bridge}`, `${t.restore} failed: ${r.stderr}`, 'Check that the iptables backend in the configuration matches the host');
  }
}

/** Adds one lease's rules; when the network's rules are not all in place (first
 *  use, or someone removed them), rebuilds everything from `leases` instead. */
export function addLeaseRules(t: Tools, net: Network, lease: Lease, leases: Lease[]): void {
  if (run(t.restore, ['-w', '--noflush'], addLeaseScript(net, lease)).status !== 0) applyRules(t, net, leases);
}

/** Removes every jump to the network's chains and the chains themselves. */
export function removeRules(t: Tools, net: Network): void {
  for (const j of jumps(net)) {
    for (let i = 0; i < 100; i++) if (run(t.iptables, ['-w', '-t', j.table, '-D', j.chain, ...j.rule]).status !== 0) break;
  }
  for (const [table, chain] of [['nat', natChain(net)], ['nat', dnatChain(net)], ['filter', fwdChain(net)]] as const) {
    if (run(t.iptables, ['-w', '-t', table, '-F', chain]).status === 0) run(t.iptables, ['-w', '-t', table, '-X', chain]);
  }
}
