// Sockets bound on the host, from /proc/net/{tcp,udp}{,6} as seen from netsetup's
// own (the host's) network namespace: a published port must not take over a port
// that a host service listens on. Parsing is pure; reading is one small function.
// Addresses in those files are raw words in the host's byte order, which is
// little-endian on every platform nsbox supports (x86_64, arm64).
import fs from 'node:fs';
import { bytesToIpv4 } from '@nsbox/shared/ipv4';
import type { Protocol } from '@nsbox/shared/publish';
import type { BoundSocket } from '../policy/publishing.ts';

const TCP_LISTEN = 0x0a;
/** An unconnected UDP socket (TCP_CLOSE): it receives from anyone. */
const UDP_UNCONNECTED = 0x07;

/** The listening TCP or unconnected UDP sockets of one /proc/net file that can
 *  receive IPv4 traffic (IPv6 sockets only when bound to :: or a v4-mapped address). */
export function parseProcNet(text: string, protocol: Protocol): BoundSocket[] {
  const wanted = protocol === 'tcp' ? TCP_LISTEN : UDP_UNCONNECTED;
  const out: BoundSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1];
    if (!local || parseInt(f[3] ?? '', 16) !== wanted) continue;
    const [hex, portHex] = local.split(':') as [string, string | undefined];
    if (portHex === undefined || (hex.length !== 8 && hex.length !== 32)) continue;
    const bytes = Buffer.alloc(hex.length / 2);
    for (let i = 0; i < hex.length / 8; i++) bytes.writeUInt32LE(parseInt(hex.slice(i * 8, i * 8 + 8), 16) >>> 0, i * 4);
    let v4: Buffer | undefined;
    if (bytes.length === 4) v4 = bytes;
    else if (bytes.every((b) => b === 0)) v4 = Buffer.alloc(4);
    else if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) v4 = bytes.subarray(12);
    if (!v4) continue;
    out.push({ protocol, address: bytesToIpv4(v4), port: parseInt(portHex, 16) });
  }
  return out;
}

/** The host's bound sockets of the given protocols. */
export function boundSockets(protocols: Iterable<Protocol>): BoundSocket[] {
  const out: BoundSocket[] = [];
  for (const protocol of new Set(protocols)) {
    for (const file of [`/proc/net/${protocol}`, `/proc/net/${protocol}6`]) {
      let text: string;
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch {
        continue; // no IPv6 on this host
      }
      out.push(...parseProcNet(text, protocol));
    }
  }
  return out;
}
