// The host's own port forwards: which host ports its nat table already DNATs or
// REDIRECTs (Docker without its userland proxy, kube-proxy, libvirt, an admin's
// rules, another netsetup installation). Pure: `iptables-save -t nat` text in,
// forwards out. A published port that such a forward could take is refused, and
// netsetup's own DNAT jumps come after the host's (firewall.ts), so the host's
// forwards keep winning either way.
//
// Over-approximated on purpose, so that no forward is missed: every path from
// PREROUTING and OUTPUT to a DNAT or REDIRECT is followed through user chains,
// and only three matches narrow it: the protocol, the destination port(s) and a
// destination CIDR. Every other match (negations, interfaces, sources, marks,
// sets) is taken as "any", and a terminating rule earlier in a chain is not
// taken to stop a later one.
import { cidrRange, ipv4ToInt, isIPv4 } from '@nsbox/shared/ipv4';
import type { Protocol } from '@nsbox/shared/publish';
import type { PortRange } from './egress.ts';

export interface HostForward {
  /** undefined: every protocol. */
  protocol?: string;
  /** undefined: every port. */
  ports?: PortRange[];
  /** Destination CIDRs it is limited to; undefined: every destination. */
  destinations?: string[];
  /** The rule that forwards, as iptables-save printed it (for the message). */
  rule: string;
}

interface Constraint {
  protocol?: string;
  ports?: PortRange[];
  destinations?: string[];
}

interface Rule {
  text: string;
  match: Constraint;
  target: string;
}

const PROTOCOL_NUMBERS: Record<string, string> = { '6': 'tcp', '17': 'udp' };

/** Splits an iptables-save rule into words (double quotes group, as it prints comments). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m; m = re.exec(line)) out.push(m[1] ?? m[2]!);
  return out;
}

function portList(text: string): PortRange[] | undefined {
  const out: PortRange[] = [];
  for (const part of text.split(',')) {
    const [a, b] = part.split(':');
    const lo = a === '' || a === undefined ? 0 : Number(a);
    const hi = b === undefined ? lo : b === '' ? 65535 : Number(b);
    if (!Number.isInteger(lo) || !Number.isInteger(hi)) return undefined;
    out.push([lo, hi]);
  }
  return out;
}

function parseRule(line: string): { chain: string; rule: Rule } | undefined {
  const w = words(line);
  if (w[0] !== '-A' || w[1] === undefined) return undefined;
  const match: Constraint = {};
  let target = '';
  for (let i = 2; i < w.length; i++) {
    const negated = w[i - 1] === '!';
    const word = w[i]!;
    const value = w[i + 1];
    if ((word === '-j' || word === '-g') && value) {
      target = value;
      break;
    }
    if (negated || value === undefined) continue;
    if (word === '-p' || word === '--protocol') match.protocol = PROTOCOL_NUMBERS[value] ?? value;
    else if (word === '--dport' || word === '--destination-port' || word === '--dports' || word === '--destination-ports' || word === '--ports') {
      match.ports = portList(value) ?? match.ports;
    } else if (word === '-d' || word === '--destination') {
      const cidrs = value.split(',').map((c) => (c.includes('/') ? c : `${c}/32`));
      if (cidrs.every((c) => isIPv4(c.split('/')[0]!))) match.destinations = cidrs;
    }
  }
  return { chain: w[1], rule: { text: line, match, target } };
}

const intersectPorts = (a: PortRange[] | undefined, b: PortRange[] | undefined): PortRange[] | undefined => {
  if (!a) return b;
  if (!b) return a;
  return a.flatMap(([lo, hi]) => b.flatMap(([l2, h2]): PortRange[] => (Math.max(lo, l2) <= Math.min(hi, h2) ? [[Math.max(lo, l2), Math.min(hi, h2)]] : [])));
};

/** Narrows a path by a rule's matches; undefined when nothing can pass both. */
function narrow(path: Constraint, m: Constraint): Constraint | undefined {
  const all = (p?: string): boolean => p === undefined || p === 'all' || p === '0';
  if (!all(path.protocol) && !all(m.protocol) && path.protocol !== m.protocol) return undefined;
  const protocol = all(path.protocol) ? m.protocol : path.protocol;
  const ports = intersectPorts(path.ports, m.ports);
  if (ports && ports.length === 0) return undefined;
  const destinations = path.destinations && m.destinations ? path.destinations.filter((a) => m.destinations!.some((b) => overlap(a, b))) : (path.destinations ?? m.destinations);
  if (destinations && destinations.length === 0) return undefined;
  return { protocol, ports, destinations };
}

function overlap(a: string, b: string): boolean {
  const x = cidrRange(a);
  const y = cidrRange(b);
  return x.network <= y.broadcast && y.network <= x.broadcast;
}

/**
 * The forwards in `iptables-save -t nat` output reachable from PREROUTING and
 * OUTPUT. Chains for which `ignore` is true (netsetup's own, of this
 * configuration: their ports are checked against the lease records) are not
 * followed.
 */
export function hostForwards(save: string, ignore: (chain: string) => boolean): HostForward[] {
  const chains = new Map<string, Rule[]>();
  let inNat = false;
  for (const raw of save.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) inNat = line === '*nat';
    if (!inNat) continue;
    const r = parseRule(line);
    if (!r) continue;
    let list = chains.get(r.chain);
    if (!list) chains.set(r.chain, (list = []));
    list.push(r.rule);
  }
  const out: HostForward[] = [];
  const walk = (chain: string, path: Constraint, depth: number, seen: Set<string>): void => {
    if (depth > 16 || seen.has(chain) || ignore(chain)) return;
    const inner = new Set(seen).add(chain);
    for (const rule of chains.get(chain) ?? []) {
      const c = narrow(path, rule.match);
      if (!c) continue;
      if (rule.target === 'DNAT' || rule.target === 'REDIRECT') out.push({ ...c, rule: rule.text });
      else if (chains.has(rule.target)) walk(rule.target, c, depth + 1, inner);
    }
  };
  for (const start of ['PREROUTING', 'OUTPUT']) walk(start, {}, 0, new Set());
  return out;
}

/**
 * The forward that could take traffic for `port`/`protocol` on `address`
 * (0.0.0.0: any of `local`, the host's non-loopback addresses), if any.
 */
export function forwardOf(forwards: HostForward[], protocol: Protocol, port: number, address: string, local: string[]): HostForward | undefined {
  const candidates = address === '0.0.0.0' ? local : [address];
  return forwards.find((f) => {
    if (f.protocol !== undefined && f.protocol !== 'all' && f.protocol !== protocol) return false;
    if (f.ports && !f.ports.some(([lo, hi]) => port >= lo && port <= hi)) return false;
    if (!f.destinations) return true;
    return candidates.some((a) => f.destinations!.some((d) => {
      const { network, broadcast } = cidrRange(d);
      const n = ipv4ToInt(a);
      return n >= network && n <= broadcast;
    }));
  });
}
