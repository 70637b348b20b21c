// Leases: what netsetup has handed out, and the pure decisions about them (who may
// take one more, which records are stale). Stored by state.ts.
import type { PublishSpec } from '@nsbox/shared/publish';
import type { Network } from './config.ts';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';

export interface Lease {
  /** 8 lowercase hex digits; also names the host veth ("nsb" + id). */
  id: string;
  network: string;
  uid: number;
  /** Groups this lease is charged to (those with a quota the caller used). */
  groups: number[];
  address: string;
  hostVeth: string;
  /** The MAC of the sandbox's end, chosen by netsetup and recorded before the
   *  veth exists: with hostVeth, address and uid it is what the bridge filter
   *  binds and, after any crash, unbinds. Missing only in records written
   *  before the filter: such a lease is stale (see partition). */
  mac?: string;
  /** Host ifindex of hostVeth once created (0 while pending). */
  hostIndex: number;
  pid: number;
  /** "pending" from before the veth is created until the call finished;
   *  "releasing" while its holder (netsetup --hold) deletes its veth and rules. */
  state: 'pending' | 'ready' | 'releasing';
  /** The netsetup that is setting it up or releasing it outside the state lock
   *  (pid and start time, against pid reuse). */
  holder?: Holder;
  created: string;
  /** Host ports forwarded to this lease's address (rules tagged with the lease). */
  published: PublishSpec[];
}

interface LeaseFile {
  version: 1;
  leases: Lease[];
}

export const hostVethName = (id: string): string => `nsb${id}`;
export const LEASE_ID = /^[0-9a-f]{8}$/;

export interface Caller {
  uid: number;
  /** Real gid and supplementary groups. */
  gids: number[];
}

/** Which groups to charge a new lease to, or a quota error. Root is not limited. */
export function admit(net: Network, leases: Lease[], caller: Caller): number[] {
  if (caller.uid === 0) return [];
  const mine = leases.filter((l) => l.network === net.name && l.uid === caller.uid).length;
  const userLimit = net.quota.users[String(caller.uid)] ?? net.quota.users['*'];
  const groupLimits = caller.gids
    .filter((g, i, all) => all.indexOf(g) === i && net.quota.groups[String(g)] !== undefined)
    .map((g) => ({ gid: g, limit: net.quota.groups[String(g)]! }));
  if (userLimit === undefined && groupLimits.length === 0) {
    throw new NsboxError({ exit: EXIT.DENIED, what: `network "${net.name}"`, why: `uid ${caller.uid} is not allowed to use it`, todo: 'Ask the administrator to add you to its quota' });
  }
  if (userLimit !== undefined && mine >= userLimit) {
    throw new NsboxError({ exit: EXIT.QUOTA, what: `network "${net.name}"`, why: `uid ${caller.uid} already holds ${mine} of ${userLimit} allowed leases`, todo: 'Release one (netsetup list; netsetup release ID) or ask the administrator for a higher quota' });
  }
  for (const { gid, limit } of groupLimits) {
    const used = leases.filter((l) => l.network === net.name && l.groups.includes(gid)).length;
    if (used >= limit) {
      throw new NsboxError({ exit: EXIT.QUOTA, what: `network "${net.name}"`, why: `group ${gid} already holds ${used} of ${limit} allowed leases`, todo: 'Release one or ask the administrator for a higher quota' });
    }
  }
  return groupLimits.map((g) => g.gid);
}

export interface Holder {
  pid: number;
  /** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
  start: number;
}

interface HostLink {
  index: number;
  name: string;
  kind?: string;
}

/** Whether `k` is the host veth made for lease `l`: same name, ifindex and kind. */
export const isLeaseVeth = (l: Lease, k: HostLink): boolean => k.name === l.hostVeth && k.index === l.hostIndex && k.kind === 'veth';

/** Splits leases into live ones, stale ones, and busy ones. A pending or
 *  releasing lease is busy while the netsetup named as its holder lives (it is
 *  being set up or released outside the lock), else stale, as is a ready lease
 *  whose host veth (same name and ifindex) is gone or that has no MAC recorded
 *  (made before the bridge filter). */
export function partition(
  leases: Lease[],
  links: HostLink[],
  holderAlive: (h: Holder) => boolean,
): { live: Lease[]; stale: Lease[]; busy: Lease[] } {
  const live: Lease[] = [];
  const stale: Lease[] = [];
  const busy: Lease[] = [];
  // By name (unique in a namespace): one pass over each list, not one over the
  // links per lease (a host with many sandboxes has many of both).
  const byName = new Map(links.map((k) => [k.name, k]));
  for (const l of leases) {
    if (l.state !== 'ready') {
      (l.holder && holderAlive(l.holder) ? busy : stale).push(l);
      continue;
    }
    // A ready lease recorded without a MAC was made before the bridge filter:
    // its port cannot be bound, so it could send nothing anyway.
    const k = byName.get(l.hostVeth);
    (l.mac !== undefined && k !== undefined && isLeaseVeth(l, k) ? live : stale).push(l);
  }
  return { live, stale, busy };
}

/** `ms` since the epoch as ISO 8601 UTC, exactly like Date.prototype.toISOString
 *  for years 0-9999, without a Date: the first Date costs ~0.15 ms (V8 sets up
 *  its time zone cache). Days to a civil date after H. Hinnant's days_from_civil. */
export function isoTime(ms: number): string {
  const days = Math.floor(ms / 86_400_000);
  const inDay = ms - days * 86_400_000;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  const h = Math.floor(inDay / 3_600_000);
  const m = Math.floor(inDay / 60_000) % 60;
  const sec = Math.floor(inDay / 1000) % 60;
  return `${p(year, 4)}-${p(month)}-${p(day)}T${p(h)}:${p(m)}:${p(sec)}.${p(inDay % 1000, 3)}Z`;
}

export function parseLeaseFile(text: string): LeaseFile {
  const raw = JSON.parse(text) as LeaseFile;
  if (raw?.version !== 1 || !Array.isArray(raw.leases)) throw new Error('unknown lease file format');
  // Records written before publishing existed have no "published".
  for (const l of raw.leases) l.published ??= [];
  return raw;
}
