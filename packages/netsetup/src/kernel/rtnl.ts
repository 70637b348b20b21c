// The rtnetlink socket: sends codec messages (shared/netlink.ts) and collects
// acks and dumps. A socket belongs to the network namespace its creator was in at
// socket() time; openIn() creates one inside another namespace by entering it on
// this thread only (setns affects the calling thread) and returning at once.
import { EIO, ENODEV } from '@nsbox/shared/errno';
import * as nl from '@nsbox/shared/netlink';
import { libc, errno } from '@nsbox/shared/libc';
import { CLONE_NEWNET, NETLINK_EXT_ACK, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK } from '@nsbox/shared/syscalls';
import { sysError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';

const RECV_SIZE = 64 * 1024;

export class Rtnl {
  fd: number;
  private seq = Math.floor(Math.random() * 0x7fffffff);
  private buf = Buffer.alloc(RECV_SIZE);

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** A socket in the calling thread's current network namespace. */
  static open(): Rtnl {
    const c = libc();
    const fd = c.socket(nl.AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, nl.NETLINK_ROUTE) as number;
    if (fd < 0) throw sysError('open a netlink socket', errno());
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, [1], 4);
    return new Rtnl(fd);
  }

  /** A socket inside the namespace `netnsFd`; `homeFd` is this process's own. */
  static openIn(netnsFd: number, homeFd: number): Rtnl {
    const c = libc();
    if (c.setns(netnsFd, CLONE_NEWNET) !== 0) throw sysError("enter the target's network namespace", errno());
    let sock: Rtnl | undefined;
    let failure: unknown;
    try {
      sock = Rtnl.open();
    } catch (err) {
      failure = err;
    }
    if (c.setns(homeFd, CLONE_NEWNET) !== 0) {
      // Staying in the target's namespace would make every later step (and every
      // child, such as iptables) act there: stop at once. The lease is still
      // pending, so the next call's GC removes what this one made.
      process.stderr.write(`${sysError('return to the host network namespace', errno(), { todo: 'Run netsetup again' }).line('netsetup')}\n`);
      process.exit(EXIT.INTERNAL);
    }
    if (failure) throw failure;
    return sock!;
  }

  close(): void {
    libc().close(this.fd);
  }

  nextSeq(): number {
    this.seq = (this.seq + 1) & 0x7fffffff;
    return this.seq;
  }

  private send(bytes: Buffer, what: string): void {
    const n = Number(libc().send(this.fd, bytes, bytes.length, 0));
    if (n !== bytes.length) throw sysError(`${what}: send to netlink`, n < 0 ? errno() : EIO);
  }

  private receive(what: string): nl.Message[] {
    const n = Number(libc().recv(this.fd, this.buf, RECV_SIZE, 0));
    if (n < 0) throw sysError(`${what}: receive from netlink`, errno());
    return nl.parseMessages(Buffer.from(this.buf.subarray(0, n)));
  }

  /**
   * Sends requests built with sequence numbers from nextSeq() (several at once in
   * one datagram; the kernel handles them in order) and waits for each one's ack
   * (every request is sent with NLM_F_ACK, so a get ends with one too). Returns per
   * request, in order, the errno (0 = done) with the kernel's extended-ack message
   * when it gave one, and the other messages it answered with (a get's reply).
   */
  batch(requests: { seq: number; bytes: Buffer }[], what: string): { errno: number; message?: string; replies: nl.Message[] }[] {
    const bytes = Buffer.concat(requests.map((r) => r.bytes));
    for (let at = 0; at + nl.NLMSG_HDRLEN <= bytes.length; at += (bytes.readUInt32LE(at) + 3) & ~3) {
      bytes.writeUInt16LE(bytes.readUInt16LE(at + 6) | nl.NLM_F_ACK, at + 6);
    }
    this.send(bytes, what);
    const replies = new Map<number, nl.Message[]>(requests.map((r) => [r.seq, []]));
    const results = new Map<number, { errno: number; message?: string }>();
    while (results.size < requests.length) {
      for (const m of this.receive(what)) {
        if (!replies.has(m.seq)) continue;
        if (m.type === nl.NLMSG_ERROR) results.set(m.seq, nl.parseError(m));
        else replies.get(m.seq)!.push(m);
      }
    }
    return requests.map((r) => ({ ...results.get(r.seq)!, replies: replies.get(r.seq)! }));
  }

  /** One request that must succeed. */
  do(what: string, build: (seq: number) => Buffer): void {
    const seq = this.nextSeq();
    const [r] = this.batch([{ seq, bytes: build(seq) }], what);
    if (r!.errno !== 0) throw sysError(what, r!.errno, { detail: r!.message });
  }

  /** A dump request: every message of the reply (NLMSG_DONE ends it). */
  dump(what: string, build: (seq: number) => Buffer): nl.Message[] {
    const seq = this.nextSeq();
    this.send(build(seq), what);
    const out: nl.Message[] = [];
    for (;;) {
      for (const m of this.receive(what)) {
        if (m.seq !== seq) continue;
        if (m.type === nl.NLMSG_DONE) return out;
        if (m.type === nl.NLMSG_ERROR) {
          const e = nl.parseError(m);
          if (e.errno !== 0) throw sysError(what, e.errno, { detail: e.message });
          return out;
        }
        out.push(m);
      }
    }
  }

  /** One link by name, or undefined (ENODEV). */
  link(name: string): nl.Link | undefined {
    const seq = this.nextSeq();
    this.send(nl.getLinkByName(seq, name), `look up ${name}`);
    for (;;) {
      for (const m of this.receive(`look up ${name}`)) {
        if (m.seq !== seq) continue;
        if (m.type === nl.RTM_NEWLINK) return nl.parseLink(m.payload);
        if (m.type === nl.NLMSG_ERROR) {
          const e = nl.parseError(m);
          if (e.errno === ENODEV) return undefined;
          throw sysError(`look up ${name}`, e.errno, { detail: e.message });
        }
      }
    }
  }

  links(): nl.Link[] {
    return this.dump('list links', nl.dumpLinks).filter((m) => m.type === nl.RTM_NEWLINK).map((m) => nl.parseLink(m.payload));
  }

  addresses(): nl.Address[] {
    return this.dump('list addresses', nl.dumpAddresses).filter((m) => m.type === nl.RTM_NEWADDR).map((m) => nl.parseAddress(m.payload));
  }

  routes(): nl.Route[] {
    return this.dump('list routes', nl.dumpRoutes).filter((m) => m.type === nl.RTM_NEWROUTE).map((m) => nl.parseRoute(m.payload));
  }
}
