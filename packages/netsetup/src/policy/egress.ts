// A network's egress policy: which destinations its sandboxes may open
// connections to through the host (forwarded traffic; the host's own addresses
// are reached through INPUT, which netsetup does not touch). Pure: the
// configuration's text in, entries in the order they are enforced out; the
// rules that enforce them are made in firewall.ts.
//
// Entry syntax: ADDRESS[/LEN][:PORTS[/tcp|/udp]], PORTS a comma list of N or
// N-M; without ports every protocol, with ports tcp and udp unless one is named.
// The most specific entry that matches decides, as routes do: the longer prefix
// first, at the same prefix one with ports before one without, and at a tie
// `deny` first. So `deny 10.0.0.0/8` with `allow 10.0.0.2:53` lets DNS through
// to 10.0.0.2 alone, and `allow 0.0.0.0/0:443` with `deny 10.0.0.0/8` keeps
// HTTPS inside 10/8 denied. Whatever no entry matches gets `default`.
import { cidrRange, intToIpv4, isIPv4 } from '@nsbox/shared/ipv4';
import type { Protocol } from '@nsbox/shared/publish';

export type Verdict = 'allow' | 'deny';

/** An inclusive port range. */
export type PortRange = [number, number];

export interface EgressEntry {
  verdict: Verdict;
  /** Canonical a.b.c.d/len (network address). */
  cidr: string;
  prefix: number;
  /** Destination ports; undefined: every port of every protocol. */
  ports?: PortRange[];
  /** With ports: the protocols they apply to. */
  protocols: Protocol[];
}

export interface Egress {
  /** Most specific first: the order the rules are enforced in. */
  entries: EgressEntry[];
  default: Verdict;
}

export const OPEN_EGRESS: Egress = { entries: [], default: 'allow' };

/** Whether the policy lets everything through (then no rules are needed). */
export const isOpen = (e: Egress): boolean => e.entries.length === 0 && e.default === 'allow';

const PORT = /^(0|[1-9][0-9]{0,4})$/;

/** "N" or "N-M" (1-65535, N <= M), or undefined. */
export function parsePortRange(text: string): PortRange | undefined {
  const [a, b, ...rest] = text.split('-');
  if (rest.length > 0 || a === undefined || !PORT.test(a) || (b !== undefined && !PORT.test(b))) return undefined;
  const lo = Number(a);
  const hi = b === undefined ? lo : Number(b);
  return lo >= 1 && hi <= 65535 && lo <= hi ? [lo, hi] : undefined;
}

/** One entry, or the reason it is malformed. */
export function parseEntry(verdict: Verdict, text: string): EgressEntry | string {
  const syntax = `"${text}" is not ADDRESS[/LEN][:PORTS[/tcp|/udp]] (e.g. 10.0.0.0/8, 192.0.2.1:53/udp, 0.0.0.0/0:80,443/tcp)`;
  const [where, portPart, ...rest] = text.split(':');
  if (rest.length > 0 || where === undefined) return syntax;
  const [address, len, ...more] = where.split('/');
  if (more.length > 0 || address === undefined || !isIPv4(address) || (len !== undefined && !/^(0|[1-9][0-9]?)$/.test(len))) return syntax;
  const prefix = len === undefined ? 32 : Number(len);
  if (prefix > 32) return syntax;
  const cidr = `${intToIpv4(cidrRange(`${address}/${prefix}`).network)}/${prefix}`;
  if (portPart === undefined) return { verdict, cidr, prefix, protocols: ['tcp', 'udp'] };
  const [list, proto, ...extra] = portPart.split('/');
  if (extra.length > 0 || list === undefined || (proto !== undefined && proto !== 'tcp' && proto !== 'udp')) return syntax;
  const ports = list.split(',').map(parsePortRange);
  if (ports.length === 0 || ports.some((p) => p === undefined)) return syntax;
  // iptables' multiport match takes at most 15 ports (a range counts twice).
  if (ports.reduce((n, p) => n + (p![0] === p![1] ? 1 : 2), 0) > 15) return `"${text}" has more than 15 ports (a range counts as two): split it`;
  return { verdict, cidr, prefix, ports: ports as PortRange[], protocols: proto ? [proto] : ['tcp', 'udp'] };
}

/** The entries most specific first (the order the first match decides in). */
export function ordered(entries: EgressEntry[]): EgressEntry[] {
  const rank = (e: EgressEntry): number => e.prefix * 4 + (e.ports ? 2 : 0) + (e.verdict === 'deny' ? 1 : 0);
  return entries.map((e, i) => ({ e, i })).sort((a, b) => rank(b.e) - rank(a.e) || a.i - b.i).map(({ e }) => e);
}

/** What the policy decides for a new connection (for tests and `check`). */
export function decide(egress: Egress, address: number, protocol: Protocol, port: number): Verdict {
  for (const e of egress.entries) {
    const { network, broadcast } = cidrRange(e.cidr);
    if (address < network || address > broadcast) continue;
    if (e.ports && !(e.protocols.includes(protocol) && e.ports.some(([lo, hi]) => port >= lo && port <= hi))) continue;
    return e.verdict;
  }
  return egress.default;
}
