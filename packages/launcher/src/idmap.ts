// The sandbox's user namespace: root inside is the caller. When the caller has
// subordinate ids (/etc/subuid, /etc/subgid) and the system's setuid helpers
// newuidmap/newgidmap are installed, ids 1..N inside are the caller's ranges and
// setgroups works, so package managers, useradd, su and daemons that drop
// privileges work; the helpers write those maps, never the launcher. Otherwise the
// caller alone is mapped (what an unprivileged process may write itself).
import fs from 'node:fs';
import os from 'node:os';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { start, type Child } from '@nsbox/shared/spawn';

export const SUBUID = '/etc/subuid';
export const SUBGID = '/etc/subgid';
/** Absolute paths: the launcher never looks the setuid helpers up in PATH. */
export const NEWUIDMAP = '/usr/bin/newuidmap';
export const NEWGIDMAP = '/usr/bin/newgidmap';
/** The kernel takes at most 340 lines per map; one is the caller's. */
const MAX_RANGES = 339;

export interface SubidRange {
  start: number;
  count: number;
  /** Where it is written, for messages: "/etc/subuid line 3 'alice:100000:65536'". */
  source: string;
}

export type IdMaps =
  | { kind: 'single'; setgroups: 'deny'; uidMap: string; gidMap: string }
  | { kind: 'subids'; uidArgs: string[]; gidArgs: string[]; uidRanges: SubidRange[]; gidRanges: SubidRange[] };

export function callerMaps(uid: number, gid: number): IdMaps {
  return { kind: 'single', setgroups: 'deny', uidMap: `0 ${uid} 1\n`, gidMap: `0 ${gid} 1\n` };
}

/** The ranges of /etc/subuid or /etc/subgid text that belong to a user, by name or
 *  by number, in file order (as shadow's helpers read them). */
export function parseSubids(text: string, file: string, name: string | undefined, id: number): SubidRange[] {
  const out: SubidRange[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [owner, start, count] = line.split(':');
    if (owner !== name && owner !== String(id)) return;
    if (!/^\d+$/.test(start ?? '') || !/^\d+$/.test(count ?? '')) return;
    const r = { start: Number(start), count: Number(count), source: `${file} line ${i + 1} '${line}'` };
    if (r.count > 0 && r.start + r.count <= 2 ** 32 - 1) out.push(r);
  });
  return out.slice(0, MAX_RANGES);
}

/** The helper's arguments after the pid: the caller at 0, then the ranges from 1 on. */
export function helperArgs(id: number, ranges: SubidRange[]): string[] {
  const args = ['0', String(id), '1'];
  let inside = 1;
  for (const r of ranges) {
    if (inside + r.count > 2 ** 32 - 1) break;
    args.push(String(inside), String(r.start), String(r.count));
    inside += r.count;
  }
  return args;
}

/** Which maps (pure): subordinate ids when the caller has both kinds and both helpers exist. */
export function chooseMaps(uid: number, gid: number, uidRanges: SubidRange[], gidRanges: SubidRange[], helpers: boolean): IdMaps {
  if (!helpers || uidRanges.length === 0 || gidRanges.length === 0) return callerMaps(uid, gid);
  return { kind: 'subids', uidArgs: helperArgs(uid, uidRanges), gidArgs: helperArgs(gid, gidRanges), uidRanges, gidRanges };
}

/** The caller's maps, from the files and the helpers installed. A missing file or
 *  helper means the single mapping, silently. */
export function readCallerMaps(uid: number, gid: number): IdMaps {
  const read = (file: string): string => {
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const subuid = read(SUBUID);
  const subgid = subuid === '' ? '' : read(SUBGID);
  if (subuid === '' || subgid === '') return callerMaps(uid, gid);
  let name: string | undefined;
  try {
    name = os.userInfo().username;
  } catch {
    name = undefined;
  }
  const helpers = [NEWUIDMAP, NEWGIDMAP].every((f) => {
    try {
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  });
  return chooseMaps(uid, gid, parseSubids(subuid, SUBUID, name, uid), parseSubids(subgid, SUBGID, name, gid), helpers);
}

/** Writes the maps of the (waiting) sandbox process `pid`. With subordinate ids the
 *  two helpers run at once; a refusal is one line naming the helper's reason and the
 *  lines of /etc/subuid or /etc/subgid to fix. */
export function writeMaps(pid: number, maps: IdMaps): void {
  startMaps(pid, maps)();
}

/** writeMaps in two halves: the helpers start now and the returned function waits
 *  for them (idempotent), so the launcher can work meanwhile. */
export function startMaps(pid: number, maps: IdMaps): () => void {
  if (maps.kind === 'single') {
    writeSingle(pid, maps);
    return () => {};
  }
  const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  const run = (helper: string, args: string[]): Child | NsboxError => {
    try {
      return start(helper, [String(pid), ...args], env);
    } catch (err) {
      return new NsboxError({ what: `cannot map the subordinate ids: ${helper}`, why: (err as Error).message });
    }
  };
  const children: [string, Child | NsboxError, SubidRange[]][] = [
    [NEWUIDMAP, run(NEWUIDMAP, maps.uidArgs), maps.uidRanges],
    [NEWGIDMAP, run(NEWGIDMAP, maps.gidArgs), maps.gidRanges],
  ];
  let done = false;
  return () => {
    if (done) return;
    done = true;
    waitHelpers(children);
  };
}

function waitHelpers(children: [string, Child | NsboxError, SubidRange[]][]): void {
  let failure: NsboxError | undefined;
  for (const [helper, child, ranges] of children) {
    if (child instanceof NsboxError) {
      failure ??= child;
      continue;
    }
    const outcome = child.wait();
    if (outcome.status === 0) continue;
    const why = outcome.stderr.replace(/^[\w/]*new[ug]idmap: /, '').replace(/\.$/, '') || `exit status ${outcome.status}`;
    failure ??= new NsboxError({
      what: `cannot map the subordinate ids: ${helper} refused`,
      why,
      todo: `Check ${ranges.map((r) => r.source).join(', ')} (an admin fixes it, or removes it to get the single mapping).`,
    });
  }
  if (failure) throw failure;
}

/** setgroups must be denied before an unprivileged process may write gid_map. */
function writeSingle(pid: number, maps: Extract<IdMaps, { kind: 'single' }>): void {
  for (const [file, content] of [['setgroups', maps.setgroups], ['uid_map', maps.uidMap], ['gid_map', maps.gidMap]] as const) {
    try {
      fs.writeFileSync(`/proc/${pid}/${file}`, content);
    } catch (err) {
      throw sysError(`cannot map the caller to root in the sandbox: write /proc/${pid}/${file}`, -((err as NodeJS.ErrnoException).errno ?? 0));
    }
  }
}
