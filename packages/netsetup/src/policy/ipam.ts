// Address allocation inside a network's subnet. Pure: the subnet, the gateway and
// the addresses already leased in, the address to use out.
import type { Network } from './config.ts';

export function ipv4ToInt(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${address}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

/** A dotted quad: four decimal numbers 0-255 without leading zeros. */
export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** An IPv6 address in text form: eight groups of 1-4 hex digits, or fewer with
 *  one "::", the last 32 bits optionally as a dotted quad. No zone. */
export function isIPv6(text: string): boolean {
  const halves = text.split('::');
  if (halves.length > 2) return false;
  const groups = halves.map((h) => (h === '' ? [] : h.split(':')));
  const tail = groups[groups.length - 1]!;
  let words = groups.flat().length;
  // A dotted quad may stand only for the last two words.
  if (tail.length > 0 && tail[tail.length - 1]!.includes('.')) {
    if (!isIPv4(tail.pop()!)) return false;
    words += 1;
  }
  if (!groups.flat().every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return false;
  return halves.length === 2 ? words <= 7 : words === 8;
}

export const intToIpv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

export interface Range {
  network: number;
  broadcast: number;
}

export function subnetRange(net: Pick<Network, 'subnet'>): Range {
  const [base, len] = net.subnet.split('/') as [string, string];
  const l = Number(len);
  const mask = l === 0 ? 0 : (~0 << (32 - l)) >>> 0;
  const network = (ipv4ToInt(base) & mask) >>> 0;
  return { network, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

/** The lowest host address of the subnet that is not the gateway and not in use,
 *  or undefined when the subnet is full. */
export function allocate(net: Pick<Network, 'subnet' | 'gateway'>, inUse: Iterable<string>): string | undefined {
  const { network, broadcast } = subnetRange(net);
  const taken = new Set<number>([ipv4ToInt(net.gateway)]);
  for (const a of inUse) taken.add(ipv4ToInt(a));
  for (let n = network + 1; n < broadcast; n++) if (!taken.has(n)) return intToIpv4(n);
  return undefined;
}

export function broadcastOf(net: Pick<Network, 'subnet'>): string {
  return intToIpv4(subnetRange(net).broadcast);
}

/** How many leases the subnet can hold (hosts minus the gateway). */
export function capacity(net: Pick<Network, 'subnet'>): number {
  const { network, broadcast } = subnetRange(net);
  return broadcast - network - 2;
}
