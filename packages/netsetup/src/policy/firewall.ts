// The iptables rules of a network, as iptables-restore input. Pure. Every rule
// lives in three chains of our own per bridge. The network's rules (MASQUERADE
// and forwarding of the subnet) are made with its bridge; only a lease that
// publishes ports has rules of its own, appended when it is made and deleted one
// by one when it ends; whenever that does not apply cleanly the chains are
// rebuilt whole from the live leases, so removal is exact and a call killed at
// any point leaves nothing the next rebuild does not replace. Each rule carries
// a comment tag: "nsbox:<bridge>" for the network's rules, "nsbox:lease:<id>"
// for a sandbox's.
import { ANY_ADDRESS, type PublishSpec } from '@nsbox/shared/publish';
import type { Network } from './config.ts';
import type { Lease } from './leases.ts';

export const natChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-POST-${net.bridge}`;
export const fwdChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-FWD-${net.bridge}`;
/** Published ports: DNAT of new connections to the host's addresses (nat PREROUTING and OUTPUT). */
export const dnatChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-DNAT-${net.bridge}`;
const netTag = (net: Pick<Network, 'bridge'>): string => `nsbox:${net.bridge}`;
const leaseTag = (id: string): string => `nsbox:lease:${id}`;

/** The jump rules from the built-in chains (without -A/-I/-D/-C). */
export function jumps(net: Pick<Network, 'bridge'>): { table: 'nat' | 'filter'; chain: string; rule: string[] }[] {
  return [
    { table: 'nat', chain: 'POSTROUTING', rule: ['-m', 'comment', '--comment', netTag(net), '-j', natChain(net)] },
    { table: 'filter', chain: 'FORWARD', rule: ['-m', 'comment', '--comment', netTag(net), '-j', fwdChain(net)] },
    { table: 'nat', chain: 'PREROUTING', rule: ['-m', 'comment', '--comment', netTag(net), '-j', dnatChain(net)] },
    // The host's own connections, except to loopback: a DNAT'd packet from
    // 127.0.0.1 would be a martian on the bridge (route_localnet is left off).
    { table: 'nat', chain: 'OUTPUT', rule: ['!', '-d', '127.0.0.0/8', '-m', 'comment', '--comment', netTag(net), '-j', dnatChain(net)] },
  ];
}

/**
 * iptables-restore --noflush input that (re)defines both chains from scratch and
 * puts the jumps first in POSTROUTING and FORWARD. With `replaceJumps` an existing
 * jump is deleted before it is inserted again (keeps exactly one); that fails when
 * none exists, and the caller retries without it.
 */
export function restoreScript(net: Network, leases: Lease[], replaceJumps: boolean): string {
  const tag = netTag(net);
  const lines: string[] = [];
  const jumpLine = (op: string, j: ReturnType<typeof jumps>[number]): string =>
    [op, j.chain, ...(op === '-I' ? ['1'] : []), ...j.rule].map(quote).join(' ');
  const natJumps = jumps(net).filter((j) => j.table === 'nat');
  const [, fwdJump] = jumps(net) as [ReturnType<typeof jumps>[number], ReturnType<typeof jumps>[number]];
  const mine = leases.filter((l) => l.network === net.name).sort((a, b) => a.id.localeCompare(b.id));

  lines.push('*nat', `:${natChain(net)} - [0:0]`, `:${dnatChain(net)} - [0:0]`);
  if (net.nat) {
    lines.push(`-A ${natChain(net)} -s ${net.subnet} ! -d ${net.subnet} -m comment --comment ${tag} -j MASQUERADE`);
  }
  for (const l of mine) lines.push(...leaseNatRules(net, l));
  for (const j of natJumps) {
    if (replaceJumps) lines.push(jumpLine('-D', j));
    lines.push(jumpLine('-I', j));
  }
  lines.push('COMMIT');

  lines.push('*filter', `:${fwdChain(net)} - [0:0]`, ...forwardRules(net));
  for (const l of mine) lines.push(...leaseRules(net, l));
  if (replaceJumps) lines.push(jumpLine('-D', fwdJump));
  lines.push(jumpLine('-I', fwdJump), 'COMMIT', '');
  return lines.join('\n');
}

const quote = (s: string): string => (/^[A-Za-z0-9_.:/!-]+$/.test(s) ? s : `"${s}"`);

/**
 * The fast path for one new lease with published ports: iptables-restore
 * --noflush input that checks (-C) that the network's jumps and rules are in
 * place and appends the lease's rules. Appending and deleting single rules is
 * cheap, unlike flushing (the nft backend waits for the kernel to retire a
 * flushed chain); each table is one transaction, so when a check fails nothing
 * there changes and the caller rebuilds everything.
 */
export function addLeaseScript(net: Network, lease: Lease): string {
  const check = (j: ReturnType<typeof jumps>[number]): string => ['-C', j.chain, ...j.rule].map(quote).join(' ');
  type Jump = ReturnType<typeof jumps>[number];
  const [natJump, fwdJump, ...dnatJumps] = jumps(net) as [Jump, Jump, ...Jump[]];
  const lines = ['*nat', check(natJump), ...dnatJumps.map(check)];
  if (net.nat) lines.push(`-C ${natChain(net)} -s ${net.subnet} ! -d ${net.subnet} -m comment --comment ${netTag(net)} -j MASQUERADE`);
  lines.push(...leaseNatRules(net, lease));
  lines.push('COMMIT', '*filter', check(fwdJump), ...forwardRules(net).map((r) => r.replace(/^-A /, '-C ')));
  lines.push(...leaseRules(net, lease), 'COMMIT', '');
  return lines.join('\n');
}

/** Deletes the rules of `leases` (released, or stale), one transaction per table;
 *  fails, changing nothing there, when one of them is missing (then the caller rebuilds). */
export function dropLeasesScript(net: Network, leases: Lease[]): string {
  const nat = leases.flatMap((l) => leaseNatRules(net, l).map(asDelete));
  const lines = nat.length > 0 ? ['*nat', ...nat, 'COMMIT'] : [];
  lines.push('*filter');
  for (const l of leases) lines.push(...leaseRules(net, l).map(asDelete));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

const asDelete = (rule: string): string => rule.replace(/^-A /, '-D ');

/** Whether a lease has rules of its own: only one that publishes ports. */
export const hasLeaseRules = (l: Lease): boolean => l.published.length > 0;

/** The network's forwarding, for hosts whose FORWARD policy is DROP: what the
 *  subnet sends out through the bridge, and the replies to it. */
function forwardRules(net: Network): string[] {
  const tag = netTag(net);
  return [
    `-A ${fwdChain(net)} -i ${net.bridge} -s ${net.subnet} -m comment --comment ${tag} -j ACCEPT`,
    `-A ${fwdChain(net)} -o ${net.bridge} -d ${net.subnet} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment ${tag} -j ACCEPT`,
  ];
}

/** A lease's filter rules: new connections to its published ports (DNAT'd by the rules below). */
function leaseRules(net: Network, l: Lease): string[] {
  const t = leaseTag(l.id);
  return [
    ...l.published.map(
      (p) => `-A ${fwdChain(net)} -o ${net.bridge} -d ${l.address}/32 ${portMatch(p.protocol, p.port)} -m conntrack --ctstate DNAT -m comment --comment ${t} -j ACCEPT`,
    ),
  ];
}

const portMatch = (protocol: PublishSpec['protocol'], port: number): string => `-p ${protocol} -m ${protocol} --dport ${port}`;

/**
 * A lease's nat rules, one pair per published port: DNAT of new connections to
 * the host port (on every local address of the host, or on the one given) to the
 * sandbox; and MASQUERADE of those that come from the bridge's own subnet, so a
 * sandbox reaching a published port through the host gets the replies through
 * the host too (else they would go to it directly, bypassing the DNAT).
 */
function leaseNatRules(net: Network, l: Lease): string[] {
  const t = leaseTag(l.id);
  return l.published.flatMap((p) => [
    `-A ${dnatChain(net)} ${p.hostAddress === ANY_ADDRESS ? '-m addrtype --dst-type LOCAL' : `-d ${p.hostAddress}/32`} ${portMatch(p.protocol, p.hostPort)} -m comment --comment ${t} -j DNAT --to-destination ${l.address}:${p.port}`,
    `-A ${natChain(net)} -s ${net.subnet} -d ${l.address}/32 ${portMatch(p.protocol, p.port)} -m conntrack --ctstate DNAT -m comment --comment ${t} -j MASQUERADE`,
  ]);
}
