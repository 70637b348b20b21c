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
  additionText,
  bindingElements,
  creationText,
  decodeBound,
  keptParts,
  NOTHING_KEPT,
  partRemovalTexts,
  repairText,
  expectedShape,
  shapeProblems,
  portElements,
  removalText,
  rulesetText,
  SETS,
  type FilteredNetwork,
  type FilterScope,
  type KeptParts,
  type PortBinding,
  type PortElements,
} from '../policy/bridgerules.ts';
import { EEXIST, ENOENT } from '@nsbox/shared/errno';
import type { Generation } from '../policy/rulecheck.ts';
import { EXIT } from '../exit.ts';
import { FIXED_ENV } from '../setuid/secure.ts';
import { untrusted } from '../setuid/trust.ts';

export const NFT = '/usr/sbin/nft';
const EAGAIN = 11;
/** The kernel's answer to a batch whose generation no longer holds (NFNL_BATCH_GENID). */
export const ERESTART = 85;
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
export function installTable(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[], kept: KeptParts = NOTHING_KEPT): void {
  const what = `install the bridge filter (nftables table bridge ${scope.table})`;
  const r = nft(what, rulesetText(scope, networks, bound, kept));
  if (r.status !== 0) {
    throw new NsboxError({ what, why: `${NFT} failed: ${r.stderr || `exit status ${r.status}`}`, todo: 'Check that the kernel has nftables with the bridge family', exit: EXIT.SYSTEM });
  }
}

/**
 * Makes sure the tables exist and hold `networks`' parts, without replacing
 * tables that exist: one host table serves every configuration (and test
 * install) on the host, and their ports stay bound. Missing: created whole,
 * with `bound`. There: `networks`' ranges and bridges added. When that does not
 * apply (a part overlaps a different one, a table or set is missing): replaced
 * by replaceTable(), which keeps every other port and network.
 */
export function ensureTable(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[]): void {
  const what = `install the bridge filter (nftables table bridge ${scope.table})`;
  const created = nft(what, creationText(scope, networks, bound));
  if (created.status === 0) return;
  if (!/File exists/.test(created.stderr)) {
    throw new NsboxError({ what, why: `${NFT} failed: ${created.stderr || `exit status ${created.status}`}`, todo: 'Check that the kernel has nftables with the bridge family', exit: EXIT.SYSTEM });
  }
  const text = additionText(scope, networks);
  if (text === '' || nft(what, text).status === 0) return;
  repairTable(scope, networks, bound);
}

/** `nft -j list table` of both families (a missing one lists nothing). */
function listTables(scope: FilterScope): Parameters<typeof repairText>[2] {
  const listed: Parameters<typeof repairText>[2] = [];
  for (const family of ['bridge', 'ip'] as const) {
    const r = nft(`list the bridge filter (nftables table ${family} ${scope.table})`, '', ['-j', 'list', 'table', family, scope.table]);
    if (r.status !== 0) continue;
    try {
      listed.push(...(JSON.parse(r.stdout) as { nftables: Parameters<typeof repairText>[2] }).nftables);
    } catch {
      // Unreadable: repaired as if empty.
    }
  }
  return listed;
}

/**
 * Repairs the tables in place (netsetup setup-host; a table whose parts could
 * not be added): the rules written afresh, `networks`' parts put right, every
 * port's elements left as they are (repairText). Where that cannot apply (a
 * set of the wrong type), they are replaced, keeping what they hold for others.
 * The caller rebinds its own ports.
 */
export function repairTable(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[]): void {
  const what = `repair the bridge filter (nftables table bridge ${scope.table})`;
  if (nft(what, repairText(scope, networks, listTables(scope))).status === 0) return;
  replaceTable(scope, networks, bound, { owned: networks, drop: [] });
}

/**
 * Replaces the tables with `networks`' parts and `bound`, keeping what the
 * tables hold for others: every other port's binding and every network not in
 * `owned` (this configuration's, written afresh). Ports in `drop` go. Returns
 * the number of ports bound afterwards. (A port another configuration binds
 * between the listing here and the replacement is lost: it sends nothing until
 * that sandbox reconnects; never more than its binding allowed.)
 */
export function replaceTable(scope: FilterScope, networks: FilteredNetwork[], bound: PortBinding[], o: { owned: FilteredNetwork[]; drop: string[] }): number {
  let ports: ReturnType<BridgeFilter['bound']> = [];
  try {
    ports = processFilter(scope).bound();
  } catch (err) {
    if (!tableMissing(err)) throw err;
  }
  const listed = listTables(scope);
  const drop = new Set([...o.drop, ...bound.map((b) => b.port)]);
  const kept = keptParts(listed, ports, o.owned, drop);
  installTable(scope, networks, bound, kept);
  return bound.length + kept.bindings.length;
}

/**
 * Teardown of `networks`: their ranges and bridges leave the tables (their
 * ports were unbound already). The tables themselves go only when nothing at
 * all is left in them: no port bound, no network's parts (another
 * configuration's sandboxes must never lose their filter), and no port veth on
 * the host. A connect binds its port before making its veth, so a table with
 * nothing bound has no connect midway to lose.
 */
export function removeParts(scope: FilterScope, networks: FilteredNetwork[], links: { name: string; kind?: string }[]): void {
  const what = `remove networks from the bridge filter (nftables table bridge ${scope.table})`;
  for (const text of partRemovalTexts(scope, networks)) nft(what, text);
  // Veths only: a bridge may be named like a port (nsbox0).
  if (links.some((k) => k.kind === 'veth' && k.name.startsWith(scope.portPrefix))) return;
  try {
    if (processFilter(scope).bound().length > 0) return;
  } catch (err) {
    if (tableMissing(err)) return removeTable(scope);
    throw err;
  }
  for (const [family, set] of [['bridge', 'isolated'], ['ip', 'bridges']] as const) {
    const r = nft(what, '', ['-j', 'list', 'set', family, scope.table, set]);
    if (r.status !== 0) continue;
    const items = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
    if (items.some((i) => (i.set?.elem ?? []).length > 0)) return;
  }
  removeTable(scope);
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
  private transact(what: string, changes: { op: 'add' | 'delete'; set: string; element: nf.SetElement }[], genid?: number): void {
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
    this.send(nf.batch({ begin, end, ...(genid === undefined ? {} : { genid }) }, messages.map((m) => m.bytes)), what);
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

  /** bind(), after sweeping the stale elements in its way (EEXIST): the port's
   *  own, left by a lease that was never cleaned, and those of another port that
   *  bound the same address and whose veth is gone (records lost, a crashed
   *  test: the address was free in the records, so no live lease has it). A port
   *  that exists is never swept. Costs a listing only then. */
  bindReplacing(b: PortBinding): void {
    try {
      this.bind(b);
      return;
    } catch (err) {
      if (!(err instanceof NsboxError) || err.errno !== EEXIST) throw err;
    }
    const ports = this.bound();
    const gone = (port: string): boolean => !fs.existsSync(`/sys/class/net/${port}`);
    const stale = ports.filter((p) => p.port === b.port || (p.addresses.includes(b.address) && gone(p.port)));
    if (stale.length > 0) this.sweep(stale);
    // The address's group pair may be left alone, its port's elements gone.
    if (!ports.some((p) => p.addresses.includes(b.address) && !gone(p.port))) {
      const pair = bindingElements(b).find((e) => e.set === SETS.groupIp)!;
      try {
        this.transact(`remove a stale pair of ${b.address}`, [{ op: 'delete' as const, ...pair }]);
      } catch (err) {
        if (!(err instanceof NsboxError) || err.errno !== ENOENT) throw err;
      }
    }
    this.bind(b);
  }

  /** Unbinds a port exactly (release); ENOENT when one of its elements is
   *  missing, and then nothing was removed: sweep() it instead. With `genid`,
   *  only if the ruleset's generation is still that one (else ERESTART, and
   *  nothing was removed): then the generation afterwards is the next one. */
  unbind(b: PortBinding, genid?: number): void {
    this.transact(`unbind port ${b.port}`, bindingElements(b).map((e) => ({ op: 'delete' as const, ...e })), genid);
  }

  /**
   * The ruleset's generation and this filter's table handle, in one round trip
   * (two requests in one datagram; neither is a transaction, ~0.05 ms): what
   * policy/rulecheck.ts compares. The table is undefined when it is missing.
   */
  generation(): Generation {
    const what = 'read the nf_tables generation';
    const genSeq = this.nextSeq();
    const tableSeq = this.nextSeq();
    this.send(Buffer.concat([nf.getGeneration(genSeq), nf.getTable(tableSeq, nf.NFPROTO_BRIDGE, this.scope.table)]), what);
    let id: number | undefined;
    let table: string | undefined;
    const acked = new Set<number>();
    while (acked.size < 2) {
      for (const m of this.receive(what, true)!) {
        if (m.seq === genSeq && m.type === nf.nftType(nf.NFT_MSG_NEWGEN)) id = nf.parseGeneration(m.payload);
        else if (m.seq === tableSeq && m.type === nf.nftType(nf.NFT_MSG_NEWTABLE)) table = nf.parseTableHandle(m.payload);
        else if (m.type === NLMSG_ERROR && (m.seq === genSeq || m.seq === tableSeq)) {
          const e = parseError(m);
          // A missing table (ENOENT) is an answer; anything else is a failure.
          if (e.errno !== 0 && !(m.seq === tableSeq && e.errno === ENOENT)) throw sysError(what, e.errno, { detail: e.message, exit: EXIT.SYSTEM });
          acked.add(m.seq);
        }
      }
    }
    if (id === undefined) throw new NsboxError({ what, why: 'the kernel answered without one', todo: 'Try again', exit: EXIT.SYSTEM });
    return { id, ...(table === undefined ? {} : { table }) };
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

  /** Whether the port's MAC element is there: one lookup, no transaction
   *  (~0.1 ms; a transaction that fails waits for an RCU grace period). False
   *  too when the table is missing. */
  isBound(b: PortBinding): boolean {
    const what = `look up port ${b.port}`;
    const [mac] = bindingElements(b);
    const seq = this.nextSeq();
    this.send(nf.getSetElements(seq, this.ref(mac!.set), [mac!.element]), what);
    let found = false;
    for (;;) {
      for (const m of this.receive(what, true)!) {
        if (m.seq !== seq) continue;
        if (m.type !== NLMSG_ERROR) {
          found = true;
          continue;
        }
        const e = parseError(m);
        if (e.errno === 0) return found;
        if (e.errno === ENOENT) return false;
        throw sysError(what, e.errno, { detail: e.message, exit: EXIT.SYSTEM });
      }
    }
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

/**
 * The process's socket for `scope`, opened on first use and closed only by the
 * exit. Closing a netfilter socket soon after a commit waits for an RCU grace
 * period (nf_tables' netlink notifier flushes the commit's pending destroy
 * work, which begins with synchronize_rcu): 5-10 ms on a busy machine, which a
 * Call closed before its answer made every connect's caller wait. So a
 * one-shot netsetup answers first and the exit pays, and a serving one never
 * closes it between requests. (Answers on the socket carry their sequence
 * numbers: one a failed call left unread is ignored by the next.)
 */
export function processFilter(scope: FilterScope): BridgeFilter {
  let f = processFilters.get(scope.table);
  if (!f) processFilters.set(scope.table, (f = BridgeFilter.open(scope)));
  return f;
}
const processFilters = new Map<string, BridgeFilter>();

/** Whether an error from bind() or bound() means the table is missing. */
export const tableMissing = (err: unknown): boolean => err instanceof NsboxError && err.errno === ENOENT;

