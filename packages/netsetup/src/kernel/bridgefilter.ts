// The bridge filter in the kernel (its rules: policy/bridgerules.ts). The table
// is written rarely (setup, a new bridge, a repair) by the nft program, by
// absolute path with a fixed environment; binding and unbinding a port happen on
// every connect and release, so they are one nf_tables transaction over netlink
// each: all five elements of a port appear or vanish together.
import fs from 'node:fs';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { errno, libc } from '@nsbox/shared/libc';
import { AF_NETLINK, NLMSG_DONE, NLMSG_ERROR, parseError, parseMessages, type Message } from '@nsbox/shared/netlink';
import * as nf from '@nsbox/shared/nfnetlink';
import { start } from '@nsbox/shared/spawn';
import { NETLINK_EXT_ACK, SOCK_CLOEXEC, SOCK_RAW, SOL_NETLINK } from '@nsbox/shared/syscalls';
import {
  bindingElements,
  decodeBound,
  expectedShape,
  shapeProblems,
  portElements,
  removalText,
  rulesetText,
  SETS,
  type FilteredNetwork,
  type FilterScope,
  type PortBinding,
  type PortElements,
} from '../policy/bridgerules.ts';
import { EEXIST, ENOENT } from '@nsbox/shared/errno';
import { EXIT } from '../exit.ts';
import { FIXED_ENV } from '../setuid/secure.ts';
import { untrusted } from '../setuid/trust.ts';

export const NFT = '/usr/sbin/nft';
const EAGAIN = 11;
const MSG_DONTWAIT = 0x40;
const RECV_SIZE = 64 * 1024;

// ---------------------------------------------------------------- the table (nft)

function nft(what: string, script: string, args = ['-f', '-']): { status: number; stderr: string; stdout: string } {
  let real: string;
  try {
    real = fs.realpathSync.native(NFT);
  } catch {
    throw new NsboxError({ what, why: `${NFT} is missing`, todo: 'Install nftables (apt-get install nftables)', exit: EXIT.CONFIG });
  }
  const problem = untrusted(real, 'file');
  if (problem) throw new NsboxError({ what, why: `refusing to run ${NFT}: ${problem.path} ${problem.why}`, todo: 'Reinstall nftables from the distribution', exit: EXIT.CONFIG });
  const child = start(NFT, args, FIXED_ENV, { stdout: 'pipe' });
  child.send(script);
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  try {
    for (let n; (n = fs.readSync(child.stdout, buf, 0, buf.length, null)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
  } finally {
    fs.closeSync(child.stdout);
  }
  return { ...child.wait(), stdout: Buffer.concat(chunks).toString('utf8') };
}

/** Replaces the host's filter table, atomically, with one binding `bound` (the
 *  live leases) for `networks` (all configured ones). Ports not in `bound` can
 *  send nothing from the moment it is in place. */
export function installTable(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[]): void {
  const what = `install the bridge filter (nftables table bridge ${scope.table})`;
  const r = nft(what, rulesetText(scope, networks, bound));
  if (r.status !== 0) {
    throw new NsboxError({ what, why: `${NFT} failed: ${r.stderr || `exit status ${r.status}`}`, todo: 'Check that the kernel has nftables with the bridge family', exit: EXIT.SYSTEM });
  }
}

/** Removes the tables (teardown); a missing one is not an error. */
export function removeTable(scope: FilterScope): void {
  for (const family of ['bridge', 'ip'] as const) {
    const what = `remove the bridge filter (nftables table ${family} ${scope.table})`;
    const r = nft(what, removalText(scope, family));
    if (r.status !== 0 && !/No such file or directory/.test(r.stderr)) {
      throw new NsboxError({ what, why: `${NFT} failed: ${r.stderr || `exit status ${r.status}`}`, todo: `Remove it by hand: nft delete table ${family} ${scope.table}`, exit: EXIT.SYSTEM });
    }
  }
}

/**
 * What is wrong with the tables now, compared with what installTable() would
 * write for `networks` (netsetup check; a repair is installTable() with the
 * live leases): missing tables, chains, rules or sets, an accept rule. Rules
 * are compared by number per chain, not by content.
 */
export function checkTables(scope: FilterScope, networks: FilteredNetwork[]): string[] {
  const expected = expectedShape(rulesetText(scope, networks, []));
  const listed: Parameters<typeof shapeProblems>[1] = [];
  const problems: string[] = [];
  for (const family of ['bridge', 'ip'] as const) {
    const what = `list the bridge filter (nftables table ${family} ${scope.table})`;
    const r = nft(what, '', ['-j', '-t', 'list', 'table', family, scope.table]);
    if (r.status !== 0) {
      if (!/No such file or directory/.test(r.stderr)) throw new NsboxError({ what, why: `${NFT} failed: ${r.stderr || `exit status ${r.status}`}`, exit: EXIT.SYSTEM });
      problems.push(`table ${family} ${scope.table} is missing`);
      continue;
    }
    try {
      listed.push(...(JSON.parse(r.stdout) as { nftables: Parameters<typeof shapeProblems>[1] }).nftables);
    } catch {
      throw new NsboxError({ what, why: `${NFT} wrote no JSON`, exit: EXIT.SYSTEM });
    }
  }
  return problems.length > 0 ? problems : shapeProblems(expected, listed);
}

// ---------------------------------------------------------------- the bridge itself

/** Link-local group addresses (01:80:c2:00:00:0X) the bridge forwards like any
 *  other frame: all but 00-02, which the kernel never lets it forward. */
export const GROUP_FWD_MASK = 0xfff8;

/**
 * The bridge learns nothing from its ports:
 * - IPv6 is off on the bridge (disable_ipv6=1; accept_ra=0 too, which stays
 *   right if IPv6 is ever turned on): no router advertisement, redirect or
 *   neighbour entry is taken from a port, and the host sends nothing IPv6 there.
 *   Sandboxes have no IPv6 yet, and the ports drop it anyway: this is the wall
 *   behind that one.
 * - Frames to link-local group addresses go through the bridge's netfilter
 *   hooks (group_fwd_mask): without it, one to 01:80:c2:00:00:0e (LLDP) skips
 *   every bridge hook and is handed to the host veth's own IP stack, where a
 *   router advertisement configures the host (seen on this kernel).
 * A host without IPv6 has no IPv6 part to set.
 */
export function quietBridge(bridge: string): void {
  if (!/^[A-Za-z0-9_-]{1,15}$/.test(bridge)) throw new NsboxError({ what: `bridge ${bridge}`, why: 'not an interface name', exit: EXIT.CONFIG });
  const v6 = `/proc/sys/net/ipv6/conf/${bridge}`;
  const settings: [string, string][] = [[`/sys/class/net/${bridge}/bridge/group_fwd_mask`, `0x${GROUP_FWD_MASK.toString(16)}`]];
  if (fs.existsSync(v6)) settings.push([`${v6}/accept_ra`, '0'], [`${v6}/disable_ipv6`, '1']);
  for (const [file, value] of settings) {
    try {
      fs.writeFileSync(file, `${value}\n`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).errno;
      throw sysError(`write ${value} to ${file}`, code === undefined ? 5 : -code, { exit: EXIT.SYSTEM });
    }
  }
}

// ---------------------------------------------------------------- ports (netlink)

/** A NETLINK_NETFILTER socket for the host's filter table. */
export class BridgeFilter {
  private fd: number;
  private seq = Math.floor(Math.random() * 0x3fffffff);
  private buf = Buffer.alloc(RECV_SIZE);
  readonly scope: FilterScope;

  private constructor(fd: number, scope: FilterScope) {
    this.fd = fd;
    this.scope = scope;
  }

  static open(scope: FilterScope): BridgeFilter {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, nf.NETLINK_NETFILTER) as number;
    if (fd < 0) throw sysError('open a netfilter netlink socket', errno(), { exit: EXIT.SYSTEM });
    c.setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, [1], 4);
    return new BridgeFilter(fd, scope);
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) & 0x7fffffff;
    return this.seq;
  }

  private ref(set: string): nf.SetRef {
    return { family: nf.NFPROTO_BRIDGE, table: this.scope.table, set };
  }

  /** Reads what is queued (without waiting unless `wait`); undefined when nothing is. */
  private receive(what: string, wait: boolean): Message[] | undefined {
    const n = Number(libc().recv(this.fd, this.buf, RECV_SIZE, wait ? 0 : MSG_DONTWAIT));
    if (n < 0) {
      const e = errno();
      if (!wait && e === EAGAIN) return undefined;
      throw sysError(`${what}: receive from netlink`, e, { exit: EXIT.SYSTEM });
    }
    return parseMessages(Buffer.from(this.buf.subarray(0, n)));
  }

  private send(bytes: Buffer, what: string): void {
    const n = Number(libc().send(this.fd, bytes, bytes.length, 0));
    if (n !== bytes.length) throw sysError(`${what}: send to netlink`, n < 0 ? errno() : 5, { exit: EXIT.SYSTEM });
  }

  /**
   * One transaction of element changes. The kernel handles a batch within
   * send() and queues its answers before returning (an ack per message, an
   * error for each failing one, or one error for a batch refused whole), so
   * they are read without waiting: nothing here can wait for an ack that never comes.
   */
  private transact(what: string, changes: { op: 'add' | 'delete'; set: string; element: nf.SetElement }[]): void {
    if (changes.length === 0) return;
    const sets = [...new Set(changes.map((c) => `${c.op}\0${c.set}`))];
    const begin = this.nextSeq();
    const messages = sets.map((key) => {
      const [op, set] = key.split('\0') as ['add' | 'delete', string];
      const elements = changes.filter((c) => c.op === op && c.set === set).map((c) => c.element);
      const seq = this.nextSeq();
      return { seq, bytes: op === 'add' ? nf.newSetElements(seq, this.ref(set), elements) : nf.delSetElements(seq, this.ref(set), elements) };
    });
    const end = this.nextSeq();
    this.send(nf.batch({ begin, end }, messages.map((m) => m.bytes)), what);
    const pending = new Set(messages.map((m) => m.seq));
    const ours = new Set([begin, end, ...pending]);
    let failure: { errno: number; message?: string } | undefined;
    while (pending.size > 0) {
      const got = this.receive(what, false);
      if (!got) break;
      for (const m of got) {
        if (m.type !== NLMSG_ERROR || !ours.has(m.seq)) continue;
        pending.delete(m.seq);
        const e = parseError(m);
        if (e.errno !== 0) failure ??= e;
      }
    }
    if (failure) throw sysError(what, failure.errno, { detail: failure.message, exit: EXIT.SYSTEM });
    if (pending.size > 0) throw new NsboxError({ what, why: 'the kernel did not answer every change', todo: 'Try again', exit: EXIT.SYSTEM });
  }

  /** Binds a port: its five elements, in one transaction. Fails (EEXIST) if the
   *  port has a group already, i.e. stale elements a sweep must remove first,
   *  and (ENOENT) if the table is missing: install it, with this binding. */
  bind(b: PortBinding): void {
    this.transact(`bind port ${b.port} to ${b.mac} and ${b.address}`, bindingElements(b).map((e) => ({ op: 'add' as const, ...e })));
  }

  /** bind(), after sweeping whatever stale elements the port has (EEXIST): a
   *  name left bound by a lease that was never cleaned. Costs a listing only then. */
  bindReplacing(b: PortBinding): void {
    try {
      this.bind(b);
    } catch (err) {
      if (!(err instanceof NsboxError) || err.errno !== EEXIST) throw err;
      const stale = this.bound().filter((p) => p.port === b.port);
      this.sweep(stale);
      this.bind(b);
    }
  }

  /** Unbinds a port exactly (release); ENOENT when one of its elements is
   *  missing, and then nothing was removed: sweep() it instead. */
  unbind(b: PortBinding): void {
    this.transact(`unbind port ${b.port}`, bindingElements(b).map((e) => ({ op: 'delete' as const, ...e })));
  }

  /** unbind(), or when the port's elements are not exactly `b`'s (ENOENT: the
   *  isolation setting changed since, or someone removed some), a sweep of
   *  whatever the port has: for release and GC, which must leave it unbound. */
  unbindAny(b: PortBinding): void {
    try {
      this.unbind(b);
    } catch (err) {
      if (!(err instanceof NsboxError) || err.errno !== ENOENT) throw err;
      this.sweep(this.bound().filter((p) => p.port === b.port));
    }
  }

  /** Removes whatever elements `ports` have, as found by bound() (GC). */
  sweep(ports: PortElements[]): void {
    // Once each: two stale ports may share a group_ip element.
    const seen = new Set<string>();
    const unique = ports.flatMap(portElements).filter((e) => {
      const id = `${e.set}:${Buffer.from(e.element.key).toString('hex')}`;
      return !seen.has(id) && seen.add(id);
    });
    this.transact(`remove the bindings of ${ports.map((p) => p.port).join(', ')}`, unique.map((e) => ({ op: 'delete' as const, ...e })));
  }

  /** Every port with elements in the table (for GC: those without a live lease
   *  are swept). Throws ENOENT when the table is missing. */
  bound(): PortElements[] {
    const dumped = { port_mac: [], port_ip: [], port_group: [], port_in_group: [], group_ip: [] } as Parameters<typeof decodeBound>[0];
    for (const set of [SETS.mac, SETS.ip, SETS.group, SETS.inGroup, SETS.groupIp]) dumped[set] = this.dump(set);
    return decodeBound(dumped);
  }

  private dump(set: string): nf.SetElement[] {
    const what = `list set ${set} of table bridge ${this.scope.table}`;
    const seq = this.nextSeq();
    this.send(nf.dumpSetElements(seq, this.ref(set)), what);
    const out: nf.SetElement[] = [];
    for (;;) {
      for (const m of this.receive(what, true)!) {
        if (m.seq !== seq) continue;
        if (m.type === NLMSG_DONE) return out;
        if (m.type === NLMSG_ERROR) {
          const e = parseError(m);
          if (e.errno !== 0) throw sysError(what, e.errno, { detail: e.message, exit: EXIT.SYSTEM });
          return out;
        }
        out.push(...nf.parseSetElements(m.payload));
      }
    }
  }
}

/** Whether an error from bind() or bound() means the table is missing. */
export const tableMissing = (err: unknown): boolean => err instanceof NsboxError && err.errno === ENOENT;

