// Crafted Ethernet frames for tests, sent and captured with AF_PACKET sockets
// that live in a test's own network namespaces. A socket belongs to the namespace
// its creator was in at socket() time, so this process enters the namespace on
// its main thread only for the socket() call (setns affects one thread) and comes
// straight back: no helper process, no Python, no busybox.
import fs from 'node:fs';
import { libc, errno } from '../../packages/shared/src/libc.ts';
import { CLONE_NEWNET } from '../../packages/shared/src/syscalls.ts';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const ETH_P_ALL = 0x0003;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const SIOCGIFINDEX = 0x8933;

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const ETH_P_8021Q = 0x8100;
export const ETH_P_8021AD = 0x88a8;
export const BROADCAST = 'ff:ff:ff:ff:ff:ff';

const mac = (m: string): Buffer => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
const ipv4 = (a: string): Buffer => Buffer.from(a.split('.').map(Number));

function ipv6(a: string): Buffer {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const words = (s: string | undefined): number[] => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  const all = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
  const b = Buffer.alloc(16);
  all.forEach((w, i) => b.writeUInt16BE(w, i * 2));
  return b;
}

/** The Internet checksum (RFC 1071). */
function checksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function ethernet(dst: string, src: string, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  mac(dst).copy(h, 0);
  mac(src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  const frame = Buffer.concat([h, payload]);
  return frame.length >= 60 ? frame : Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
}

/** A frame with one 802.1Q (or 802.1ad) tag in front of `type`. */
export function tagged(dst: string, src: string, vid: number, type: number, payload: Buffer, tpid = ETH_P_8021Q): Buffer {
  const tag = Buffer.alloc(4);
  tag.writeUInt16BE(vid & 0xfff, 0);
  tag.writeUInt16BE(type, 2);
  return ethernet(dst, src, tpid, Buffer.concat([tag, payload]));
}

export interface Arp {
  op: 1 | 2;
  sha: string;
  spa: string;
  tha: string;
  tpa: string;
  /** Defaults: Ethernet (1), IPv4, 6, 4. */
  htype?: number;
  ptype?: number;
}

export function arp(a: Arp): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(a.htype ?? 1, 0);
  b.writeUInt16BE(a.ptype ?? ETH_P_IP, 2);
  b.writeUInt8(6, 4);
  b.writeUInt8(4, 5);
  b.writeUInt16BE(a.op, 6);
  mac(a.sha).copy(b, 8);
  ipv4(a.spa).copy(b, 14);
  mac(a.tha).copy(b, 18);
  ipv4(a.tpa).copy(b, 24);
  return b;
}

/** An IPv4 UDP datagram (UDP checksum 0: optional over IPv4). */
export function udp4(src: string, dst: string, sport: number, dport: number, data: Buffer): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + data.length, 4);
  const ip = Buffer.alloc(20);
  ip.writeUInt8(0x45, 0);
  ip.writeUInt16BE(20 + 8 + data.length, 2);
  ip.writeUInt8(64, 8);
  ip.writeUInt8(17, 9);
  ipv4(src).copy(ip, 12);
  ipv4(dst).copy(ip, 16);
  ip.writeUInt16BE(checksum(ip), 10);
  return Buffer.concat([ip, u, data]);
}

/** An IPv6 router advertisement to all nodes from `src` (link-local), with one
 *  prefix option (on-link and autonomous) and router lifetime 0, so that an
 *  accepting host adds a prefix route and an address but no default route. */
export function routerAdvertisement(src: string, prefix: string): Buffer {
  const ra = Buffer.alloc(16);
  ra.writeUInt8(134, 0); // type: router advertisement
  ra.writeUInt8(64, 4); // cur hop limit
  // router lifetime (bytes 6-7) stays 0
  const pi = Buffer.alloc(32);
  pi.writeUInt8(3, 0); // prefix information
  pi.writeUInt8(4, 1); // length in 8-byte units
  pi.writeUInt8(64, 2); // prefix length
  pi.writeUInt8(0xc0, 3); // L and A
  pi.writeUInt32BE(600, 4); // valid lifetime
  pi.writeUInt32BE(600, 8); // preferred lifetime
  ipv6(prefix).copy(pi, 16);
  const icmp = Buffer.concat([ra, pi]);
  const srcB = ipv6(src);
  const dstB = ipv6('ff02::1');
  const pseudo = Buffer.alloc(40);
  srcB.copy(pseudo, 0);
  dstB.copy(pseudo, 16);
  pseudo.writeUInt32BE(icmp.length, 32);
  pseudo.writeUInt8(58, 39);
  icmp.writeUInt16BE(checksum(Buffer.concat([pseudo, icmp])), 2);
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(icmp.length, 4);
  h.writeUInt8(58, 6);
  h.writeUInt8(255, 7);
  srcB.copy(h, 8);
  dstB.copy(h, 24);
  return Buffer.concat([h, icmp]);
}

let bindFn: ((fd: number, addr: Buffer, len: number) => number) | undefined;

/** sockaddr_ll for `ifindex`, all protocols. */
function sockaddrLl(ifindex: number): Buffer {
  const a = Buffer.alloc(20);
  a.writeUInt16LE(AF_PACKET, 0);
  a.writeUInt16BE(ETH_P_ALL, 2);
  a.writeInt32LE(ifindex, 4);
  return a;
}

/** An AF_PACKET socket on one interface: sends whole frames, captures every frame. */
export class PacketSocket {
  private fd: number;
  private constructor(fd: number) {
    this.fd = fd;
  }

  /** On interface `ifname` of the namespace `netnsPath` (e.g. /run/netns/X), or of
   *  this process's namespace when netnsPath is undefined. */
  static open(ifname: string, netnsPath?: string): PacketSocket {
    const c = libc();
    bindFn ??= c.k.load(null).func('int bind(int fd, const void *addr, uint32_t len)') as unknown as typeof bindFn;
    const home = netnsPath ? fs.openSync('/proc/thread-self/ns/net', 'r') : -1;
    const there = netnsPath ? fs.openSync(netnsPath, 'r') : -1;
    let fd = -1;
    let ifindex = 0;
    try {
      if (netnsPath && c.setns(there, CLONE_NEWNET) !== 0) throw new Error(`setns ${netnsPath}: errno ${errno()}`);
      try {
        fd = c.socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8)) as number;
        // The index as seen inside that namespace (SIOCGIFINDEX on the new socket;
        // /sys shows the namespace that mounted it).
        const ifr = Buffer.alloc(40);
        ifr.write(ifname, 'latin1');
        if (fd >= 0 && Number(c.ioctl(fd, SIOCGIFINDEX, 'void *', ifr)) === 0) ifindex = ifr.readInt32LE(16);
      } finally {
        if (netnsPath && c.setns(home, CLONE_NEWNET) !== 0) {
          process.stderr.write('frames: cannot return to the home network namespace\n');
          process.exit(99);
        }
      }
    } finally {
      if (home >= 0) fs.closeSync(home);
      if (there >= 0) fs.closeSync(there);
    }
    if (fd < 0) throw new Error(`socket(AF_PACKET): errno ${errno()}`);
    if (ifindex <= 0) {
      c.close(fd);
      throw new Error(`no interface ${ifname}${netnsPath ? ` in ${netnsPath}` : ''}`);
    }
    const addr = sockaddrLl(ifindex);
    if (bindFn!(fd, addr, addr.length) !== 0) {
      c.close(fd);
      throw new Error(`bind AF_PACKET to ${ifname}: errno ${errno()}`);
    }
    return new PacketSocket(fd);
  }

  send(frame: Buffer): void {
    const n = Number(libc().send(this.fd, frame, frame.length, 0));
    if (n !== frame.length) throw new Error(`send frame: errno ${errno()}`);
  }

  /** Frames captured so far, without waiting. */
  drain(): Buffer[] {
    const out: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = Number(libc().recv(this.fd, buf, buf.length, MSG_DONTWAIT));
      if (n < 0) {
        if (errno() === EAGAIN) return out;
        throw new Error(`recv: errno ${errno()}`);
      }
      out.push(Buffer.from(buf.subarray(0, n)));
    }
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}
