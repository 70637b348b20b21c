// The iptables rules of a network, as iptables-restore input. Pure. Every rule
// lives in three chains of our own per bridge. The network's rules (MASQUERADE
// and forwarding of the subnet) are made with its bridge; only a lease that
// publishes ports has rules of its own, appended when it is made and deleted one
// by one when it ends; whenever that does not apply cleanly the chains are
// rebuilt whole from the live leases, so removal is exact and a call killed at
// any point leaves nothing the next rebuild does not replace. Each rule carries
// a comment tag: "nsbox:<bridge>" for the network's rules, "nsbox:lease:<id>"
// for a sandbox's.
//
// The host's forwards come first: the jumps to the DNAT chain from PREROUTING
// and OUTPUT are appended, so the host's own forwards (Docker, kube-proxy,
// libvirt, an admin's) keep their ports. The POSTROUTING and FORWARD jumps are
// inserted first: a host whose FORWARD chain ends in a catch-all REJECT (not
// only a DROP policy) must still forward the sandboxes, so what they may reach
// is the network's egress policy, enforced in that chain. A jump that exists is
// never moved: an admin may place it elsewhere and it stays there.
import { ANY_ADDRESS, type PublishSpec } from '@nsbox/shared/publish';
import type { Network } from './config.ts';
import { isOpen, type EgressEntry } from './egress.ts';
import type { Lease } from './leases.ts';

export const natChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-POST-${net.bridge}`;
export const fwdChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-FWD-${net.bridge}`;
/** Published ports: DNAT of new connections to the host's addresses (nat PREROUTING and OUTPUT). */
export const dnatChain = (net: Pick<Network, 'bridge'>): string => `NSBOX-DNAT-${net.bridge}`;
const netTag = (net: Pick<Network, 'bridge'>): string => `nsbox:${net.bridge}`;
const leaseTag = (id: string): string => `nsbox:lease:${id}`;

export interface Jump {
  table: 'nat' | 'filter';
  chain: string;
  /** The rule without -A/-I/-D/-C and the chain. */
  rule: string[];
  /** The chain it jumps to. */
  target: string;
  /** Where it is put when missing: first in the chain, or after the host's rules. */
  position: 'first' | 'last';
}

/** The jump rules from the built-in chains, in the order of restore scripts. */
export function jumps(net: Pick<Network, 'bridge'>): Jump[] {
  const to = (target: string, pre: string[] = []): string[] => [...pre, '-m', 'comment', '--comment', netTag(net), '-j', target];
  return [
    { table: 'nat', chain: 'POSTROUTING', rule: to(natChain(net)), target: natChain(net), position: 'first' },
    { table: 'filter', chain: 'FORWARD', rule: to(fwdChain(net)), target: fwdChain(net), position: 'first' },
    { table: 'nat', chain: 'PREROUTING', rule: to(dnatChain(net)), target: dnatChain(net), position: 'last' },
    // The host's own connections, except to loopback: a DNAT'd packet from
    // 127.0.0.1 would be a martian on the bridge (route_localnet is left off).
    { table: 'nat', chain: 'OUTPUT', rule: to(dnatChain(net), ['!', '-d', '127.0.0.0/8']), target: dnatChain(net), position: 'last' },
  ];
}

/** The jumps' presence, in jumps() order, from `iptables-save` text (any tables). */
export function presentInSave(net: Pick<Network, 'bridge'>, save: string): boolean[] {
  const lines = save.split('\n').map((l) => l.trim());
  return jumps(net).map((j) => lines.some((l) => l.startsWith(`-A ${j.chain} `) && l.endsWith(` -j ${j.target}`) && (j.chain !== 'OUTPUT' || l.includes('! -d 127.0.0.0/8'))));
}

/**
 * iptables-restore --noflush input that (re)defines the network's chains from
 * scratch and adds the jumps that `present` (in jumps() order) says are missing,
 * first or last in their chain; present ones are checked (-C), not moved, so the
 * transaction fails, changing nothing, if one vanished since they were looked at.
 */
export function restoreScript(net: Network, leases: Lease[], present: boolean[]): string {
  const lines: string[] = [];
  const jumpLine = (j: Jump, i: number): string =>
    (present[i] ? ['-C', j.chain, ...j.rule] : j.position === 'first' ? ['-I', j.chain, '1', ...j.rule] : ['-A', j.chain, ...j.rule]).map(quote).join(' ');
  const all = jumps(net);
  const mine = leases.filter((l) => l.network === net.name).sort((a, b) => a.id.localeCompare(b.id));

  lines.push('*nat', `:${natChain(net)} - [0:0]`, `:${dnatChain(net)} - [0:0]`);
  if (net.nat) lines.push(masqueradeRule(net, '-A'));
  for (const l of mine) lines.push(...leaseNatRules(net, l));
  all.forEach((j, i) => j.table === 'nat' && lines.push(jumpLine(j, i)));
  lines.push('COMMIT');

  lines.push('*filter', `:${fwdChain(net)} - [0:0]`, ...forwardRules(net));
  for (const l of mine) lines.push(...leaseRules(net, l));
  all.forEach((j, i) => j.table === 'filter' && lines.push(jumpLine(j, i)));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

const masqueradeRule = (net: Network, op: '-A' | '-C'): string => `${op} ${natChain(net)} -s ${net.subnet} ! -d ${net.subnet} -m comment --comment ${netTag(net)} -j MASQUERADE`;

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
  const check = (j: Jump): string => ['-C', j.chain, ...j.rule].map(quote).join(' ');
  const [natJump, fwdJump, ...dnatJumps] = jumps(net) as [Jump, Jump, ...Jump[]];
  const lines = ['*nat', check(natJump), ...dnatJumps.map(check)];
  if (net.nat) lines.push(masqueradeRule(net, '-C'));
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

/**
 * The network's forwarding, for hosts whose FORWARD policy is DROP: what the
 * subnet sends out through the bridge, and the replies to it. With an egress
 * policy (egress.ts), new connections from the bridge to other interfaces pass
 * it first, most specific entry first; replies, and traffic that comes back to
 * the bridge (published ports reached through the host, routed between
 * sandboxes: the bridge filter's business), are not egress. A denied connection
 * is rejected (ICMP administratively prohibited) so programs fail at once.
 */
export function forwardRules(net: Network): string[] {
  const tag = `-m comment --comment ${netTag(net)}`;
  const A = `-A ${fwdChain(net)}`;
  const from = `-i ${net.bridge}`;
  const out = `-s ${net.subnet}`;
  const replies = `${A} -o ${net.bridge} -d ${net.subnet} -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`;
  if (isOpen(net.egress)) return [`${A} ${from} ${out} ${tag} -j ACCEPT`, replies];
  return [
    replies,
    `${A} ${from} ${out} -m conntrack --ctstate RELATED,ESTABLISHED ${tag} -j ACCEPT`,
    `${A} ${from} -o ${net.bridge} ${out} ${tag} -j ACCEPT`,
    ...net.egress.entries.flatMap((e) => egressRules(net, e)),
    net.egress.default === 'allow' ? `${A} ${from} ${out} ${tag} -j ACCEPT` : `${A} ${from} ${tag} -j ${REJECT}`,
  ];
}

const REJECT = 'REJECT --reject-with icmp-admin-prohibited';

/** One entry's rules: one per protocol when it names ports. Denials match any
 *  source (a forged one too), allowances only the subnet's. */
function egressRules(net: Network, e: EgressEntry): string[] {
  const head = `-A ${fwdChain(net)} -i ${net.bridge}${e.verdict === 'allow' ? ` -s ${net.subnet}` : ''}${e.prefix === 0 ? '' : ` -d ${e.cidr}`}`;
  const tail = `-m comment --comment ${netTag(net)} -j ${e.verdict === 'allow' ? 'ACCEPT' : REJECT}`;
  if (!e.ports) return [`${head} ${tail}`];
  const ports = e.ports.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`)).join(',');
  return e.protocols.map((p) => `${head} -p ${p} -m multiport --dports ${ports} ${tail}`);
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
 * sandbox; and MASQUERADE of those that come from any subnet of the
 * configuration, so a sandbox reaching a published port through the host gets
 * the replies through the host too (else they would go to it directly,
 * bypassing the DNAT, and the bridge filter drops them between isolated users).
 * iptables makes one rule per subnet of the comma list.
 */
function leaseNatRules(net: Network, l: Lease): string[] {
  const t = leaseTag(l.id);
  return l.published.flatMap((p) => [
    `-A ${dnatChain(net)} ${p.hostAddress === ANY_ADDRESS ? '-m addrtype --dst-type LOCAL' : `-d ${p.hostAddress}/32`} ${portMatch(p.protocol, p.hostPort)} -m comment --comment ${t} -j DNAT --to-destination ${l.address}:${p.port}`,
    `-A ${natChain(net)} -s ${(net.subnets ?? [net.subnet]).join(',')} -d ${l.address}/32 ${portMatch(p.protocol, p.port)} -m conntrack --ctstate DNAT -m comment --comment ${t} -j MASQUERADE`,
  ]);
}
