// IPv4 addresses and CIDRs in text, as numbers and as bytes: the one place that
// parses and formats them (netsetup's configuration and address allocation, the
// netlink codec, --publish, /proc/net's sockets). Pure. IPv4 text is strict: four
// decimal numbers 0-255 without leading zeros, so one address has one spelling.

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** A dotted quad: four decimal numbers 0-255 without leading zeros. */
export function isIPv4(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => OCTET.test(p) && Number(p) <= 255);
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

/** The address as a 32-bit unsigned number; throws on anything but a dotted quad. */
export function ipv4ToInt(address: string): number {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  const p = address.split('.').map(Number);
  return ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0;
}

export const intToIpv4 = (n: number): string => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** The 4 bytes in network order (netlink attributes). */
export function ipv4Bytes(address: string): Buffer {
  const n = ipv4ToInt(address);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** The dotted quad of the first 4 bytes, network order. */
export const bytesToIpv4 = (b: Uint8Array): string => Array.from(b.subarray(0, 4)).join('.');

export interface Range {
  /** The network address, as a number. */
  network: number;
  /** The broadcast address, as a number. */
  broadcast: number;
}

/** The first and last address of "a.b.c.d/len" (base bits beyond len ignored). */
export function cidrRange(cidr: string): Range {
  const [base, len] = cidr.split('/') as [string, string];
  const l = Number(len);
  const mask = l === 0 ? 0 : (~0 << (32 - l)) >>> 0;
  const network = (ipv4ToInt(base) & mask) >>> 0;
  return { network, broadcast: (network | (~mask >>> 0)) >>> 0 };
}

/** Whether two IPv4 CIDRs share any address. */
export function overlaps(a: string, b: string): boolean {
  const x = cidrRange(a);
  const y = cidrRange(b);
  return x.network <= y.broadcast && y.network <= x.broadcast;
}
