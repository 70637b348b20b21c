// The caller's running sandboxes, for 'launcher ps' and 'launcher exec': one JSON
// file per sandbox in a directory only the caller can write, written before the
// command starts and removed when it has exited. A launcher killed outright
// leaves its file behind; such a stale entry is ignored (its pid is gone, or is
// another process now: the start time differs) and removed by the next writer.
import fs from 'node:fs';
import path from 'node:path';
import { NsboxError } from '@nsbox/shared/error';
import { libc } from '@nsbox/shared/libc';
import { LOCK_EX } from '@nsbox/shared/syscalls';

export interface Entry {
  name?: string;
  /** The sandbox's pid 1 as the host sees it. */
  pid: number;
  /** Its start time in clock ticks since boot (/proc/PID/stat field 22): with the
   *  pid, it tells the sandbox from a later process that got the same pid. */
  startTime: number;
  /** ISO time the sandbox was started. */
  started: string;
  command: string[];
  hostname: string;
  rootfs: string;
  network: 'none' | 'bridge';
  address?: string;
}

/** Where the caller's registry lives (pure): in the login session's runtime
 *  directory when there is one, else in /tmp. */
export function registryDirs(uid: number): string[] {
  return [`/run/user/${uid}/nsbox`, `/tmp/nsbox-${uid}`];
}

/** A directory of the registry is trusted only if it is a real directory of the
 *  caller's that nobody else can write. */
function checkDir(dir: string, uid: number): NsboxError | undefined {
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    return new NsboxError({
      what: `the list of running sandboxes ${dir}`,
      why: st.isDirectory() ? `it belongs to uid ${st.uid} with mode ${(st.mode & 0o7777).toString(8)}` : 'it is not a directory',
      todo: `Remove it (it must be the caller's own, mode 0700).`,
    });
  }
  return undefined;
}

/** The registry directory to write, created if needed; an NsboxError if an
 *  existing one cannot be trusted. */
export function openRegistry(uid: number): string {
  const [run, tmp] = registryDirs(uid) as [string, string];
  let dir = tmp;
  try {
    const st = fs.lstatSync(path.dirname(run));
    if (st.isDirectory() && st.uid === uid) dir = run;
  } catch {
    // no runtime directory: /tmp
  }
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new NsboxError({ what: `the list of running sandboxes ${dir}`, why: (err as Error).message });
    }
  }
  const bad = checkDir(dir, uid);
  if (bad) throw bad;
  return dir;
}

/** Field 22 of /proc/PID/stat (after the command name, which may hold spaces and ')'). */
export function parseStartTime(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const v = Number(fields[19]);
  return Number.isFinite(v) ? v : undefined;
}

export function startTimeOf(pid: number): number | undefined {
  try {
    return parseStartTime(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The owner of a process, from /proc/PID/status (its real uid). */
export function ownerOf(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function isEntry(v: unknown): v is Entry {
  const e = v as Entry;
  return typeof e === 'object' && e !== null && Number.isInteger(e.pid) && Number.isInteger(e.startTime) && Array.isArray(e.command) && typeof e.hostname === 'string';
}

/** The entry is a sandbox still running, and the caller's. */
function alive(e: Entry, uid: number): boolean {
  return startTimeOf(e.pid) === e.startTime && ownerOf(e.pid) === uid;
}

function readEntries(dir: string): { file: string; entry: Entry }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: { file: string; entry: Entry }[] = [];
  for (const n of names) {
    if (!/^\d+\.json$/.test(n)) continue;
    const file = path.join(dir, n);
    try {
      const entry: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (isEntry(entry)) out.push({ file, entry });
    } catch {
      // half-written or foreign: not an entry
    }
  }
  return out;
}

/** The caller's running sandboxes, oldest first. */
export function listSandboxes(uid: number): Entry[] {
  const out: Entry[] = [];
  for (const dir of registryDirs(uid)) {
    try {
      if (checkDir(dir, uid)) continue;
    } catch {
      continue;
    }
    for (const { entry } of readEntries(dir)) if (alive(entry, uid)) out.push(entry);
  }
  return out.sort((a, b) => a.startTime - b.startTime || a.pid - b.pid);
}

/**
 * Adds a sandbox (its pid exists, its command has not started). A name must be
 * unique among the caller's running sandboxes: checked and written under a lock
 * on the directory, so two launchers cannot both take it. Stale entries go.
 * Returns the entry's file (removing it is the undo).
 */
export function register(uid: number, entry: Entry): string {
  const dir = openRegistry(uid);
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const file = path.join(dir, `${entry.pid}.json`);
  try {
    libc().flock(fd, LOCK_EX);
    for (const { file: f, entry: e } of readEntries(dir)) {
      if (!alive(e, uid)) {
        fs.rmSync(f, { force: true });
        continue;
      }
      if (entry.name !== undefined && e.name === entry.name) {
        throw new NsboxError({ what: `--name ${entry.name}`, why: `a sandbox of yours with that name is running (pid ${e.pid})`, todo: 'Choose another name, or end that one.' });
      }
    }
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** A running sandbox of the caller's, by name or pid; otherwise an error that says
 *  whose it is or that there is none. */
export function findSandbox(uid: number, which: string): Entry {
  const all = listSandboxes(uid);
  const byName = all.find((e) => e.name === which);
  if (byName) return byName;
  if (/^\d+$/.test(which)) {
    const pid = Number(which);
    const byPid = all.find((e) => e.pid === pid);
    if (byPid) return byPid;
    const owner = ownerOf(pid);
    if (owner !== undefined && owner !== uid) {
      throw new NsboxError({ what: `exec ${which}`, why: `process ${pid} belongs to another user (uid ${owner})`, todo: 'Only your own sandboxes can be entered.' });
    }
  }
  throw new NsboxError({ what: `exec ${which}`, why: 'no running sandbox of yours has that name or pid', todo: "'launcher ps' lists them." });
}
