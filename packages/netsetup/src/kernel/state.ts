// Lease state on tmpfs, under an exclusive flock that the kernel drops when the
// holder dies (SIGKILL included). The directory must be root's own (0700); files
// are opened without following symlinks and replaced by rename, so a planted
// file or link is refused and a killed writer leaves the old file intact.
import fs from 'node:fs';
import { libc, errno } from '@nsbox/shared/libc';
import { EAGAIN as EWOULDBLOCK, EINTR, ENOENT } from '@nsbox/shared/errno';
import { AT_FDCWD, LOCK_EX, LOCK_NB } from '@nsbox/shared/syscalls';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { parseLeaseFile, type Lease } from '../policy/leases.ts';
import { CHECKED_LENGTH, formatChecked, parseChecked, type Generation } from '../policy/rulecheck.ts';
import { untrusted } from '../setuid/trust.ts';
import { withDeadline } from './deadline.ts';

/** How long a call waits for the lock before giving up (exit 7). */
export const LOCK_WAIT_MS = 20_000;
const RENAME_EXCHANGE = 2;
const { O_RDWR, O_RDONLY, O_WRONLY, O_CREAT, O_NOFOLLOW } = fs.constants;

/** How many times the lock has been taken, from the first 8 bytes of the lock file. */
function holders(fd: number): bigint {
  const b = Buffer.alloc(8);
  try {
    return fs.readSync(fd, b, 0, 8, 0) === 8 ? b.readBigUInt64LE(0) : 0n;
  } catch {
    return 0n;
  }
}

/** Counts this holder in (under the lock): what tells waiters the lock moves. */
function countHolder(fd: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE((holders(fd) + 1n) & 0xffffffffffffffffn, 0);
  try {
    fs.writeSync(fd, b, 0, 8, 0);
  } catch {
    // A lock file that cannot be written (full /run) only makes waiters give up sooner.
  }
}

export class State {
  dir: string;
  private lockFd: number;
  /** Set by removeFiles(): nothing more is recorded in a directory on its way out. */
  private removed = false;
  /** Set by read() when there was no lease file: no records at all (a first
   *  call, one after teardown, or records removed by hand). */
  fresh = false;

  private constructor(dir: string, lockFd: number) {
    this.dir = dir;
    this.lockFd = lockFd;
  }

  /** Takes the lock; the directory must have passed ensureDir(). */
  static lock(dir: string): State {
    const lockPath = `${dir}/lock`;
    let fd: number;
    try {
      fd = fs.openSync(lockPath, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
    } catch (err) {
      throw new NsboxError({ exit: EXIT.CONFIG, what: `state lock ${lockPath}`, why: `cannot open it (${(err as NodeJS.ErrnoException).code})`, todo: 'Remove it as root (netsetup teardown)' });
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.uid !== 0) {
      fs.closeSync(fd);
      throw new NsboxError({ exit: EXIT.CONFIG, what: `state lock ${lockPath}`, why: 'is not a root-owned regular file', todo: 'Remove it as root' });
    }
    const c = libc();
    // Free (the common case): no timer. Taken: a blocking flock, interrupted
    // after LOCK_WAIT_MS (kernel/deadline.ts), so waiting costs no polling. The
    // limit is on one holder, not on the queue: every holder counts itself in the
    // lock file, so a waiter behind many short holders (hundreds of sandboxes
    // starting at once) waits on while the count moves.
    if (c.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const first = errno();
      if (first !== EWOULDBLOCK) {
        fs.closeSync(fd);
        throw sysError(`lock ${lockPath}`, first);
      }
      for (let seen = holders(fd); ; ) {
        const got = withDeadline(LOCK_WAIT_MS, () => {
          if (c.flock(fd, LOCK_EX) === 0) return 'done';
          const e = errno();
          if (e === EINTR) return 'again';
          fs.closeSync(fd);
          throw sysError(`lock ${lockPath}`, e);
        });
        if (got) break;
        const now = holders(fd);
        if (now !== seen) {
          seen = now;
          continue;
        }
        fs.closeSync(fd);
        throw new NsboxError({ exit: EXIT.BUSY, what: `lock ${lockPath}`, why: `another netsetup has held it for ${LOCK_WAIT_MS / 1000} s`, todo: 'Try again; if it persists, look for a stopped netsetup process' });
      }
    }
    countHolder(fd);
    return new State(dir, fd);
  }

  unlock(): void {
    fs.closeSync(this.lockFd);
  }

  read(): Lease[] {
    const file = `${this.dir}/leases.json`;
    let fd: number;
    try {
      fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.fresh = true;
        return [];
      }
      throw new NsboxError({ exit: EXIT.CONFIG, what: `state file ${file}`, why: `cannot open it (${(err as NodeJS.ErrnoException).code})`, todo: 'Remove it as root (netsetup teardown)' });
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.uid !== 0) throw new NsboxError({ exit: EXIT.CONFIG, what: `state file ${file}`, why: 'is not a root-owned regular file', todo: 'Remove it as root' });
      return parseLeaseFile(fs.readFileSync(fd, 'utf8')).leases;
    } catch (err) {
      if (err instanceof NsboxError) throw err;
      throw new NsboxError({ exit: EXIT.CONFIG, what: `state file ${file}`, why: `cannot be read (${(err as Error).message})`, todo: 'Run netsetup teardown as root' });
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Replaces the lease file atomically: the new content goes to leases.json.new,
   * which is then swapped with leases.json (renameat2 RENAME_EXCHANGE). Swapping
   * rather than renaming over it keeps the old inode as the next write's scratch
   * file: freeing an inode costs ~0.1-0.2 ms on tmpfs, and a connect writes twice.
   * The whole record is written (short writes are continued) and its size checked
   * before the swap; a full filesystem fails the call and leaves leases.json as it
   * was. No fsync: the records live on tmpfs and are not meant to outlive a boot.
   */
  write(leases: Lease[]): void {
    const file = `${this.dir}/leases.json`;
    const tmp = `${this.dir}/leases.json.new`;
    // The directory is root's alone (ensureDir), so truncating the scratch file is safe.
    const text = Buffer.from(`${JSON.stringify({ version: 1, leases }, null, 1)}\n`);
    try {
      // Overwritten in place, then cut to length: O_TRUNC would free all its pages first.
      const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_NOFOLLOW, 0o600);
      try {
        for (let at = 0; at < text.length; ) {
          const n = fs.writeSync(fd, text, at, text.length - at, at);
          if (n <= 0) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
          at += n;
        }
        fs.ftruncateSync(fd, text.length);
        if (fs.fstatSync(fd).size !== text.length) throw Object.assign(new Error('size mismatch'), { code: 'EIO' });
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOSPC' || code === 'EDQUOT' ? `the state filesystem is full (${code}); ${file} is unchanged` : code === 'EFBIG' ? `a file size limit stops it (EFBIG); ${file} is unchanged` : `${(err as Error).message}; ${file} is unchanged`;
      throw new NsboxError({ exit: EXIT.SYSTEM, what: `write state file ${tmp}`, why, todo: `Free space on the filesystem of ${this.dir} (df ${this.dir}), then try again` });
    }
    if (libc().renameat2(AT_FDCWD, tmp, AT_FDCWD, file, RENAME_EXCHANGE) !== 0) {
      const e = errno();
      if (e !== ENOENT) throw sysError(`swap ${tmp} and ${file}`, e, { todo: 'Run netsetup teardown as root' });
      try {
        fs.renameSync(tmp, file);
      } catch (err) {
        throw new NsboxError({ exit: EXIT.SYSTEM, what: `rename ${tmp} to ${file}`, why: (err as Error).message, todo: 'Run netsetup teardown as root' });
      }
    }
  }

  /**
   * Records the nf_tables generation at which the jumps were last seen intact
   * (policy/rulecheck.ts): one fixed-length pwrite over the old record, under
   * the lock (so one writer at a time; a rename would cost a freed inode, and
   * a truncation its page). rulesChecked() reads it without the lock; a read
   * that catches half a write fails the record's check. Best effort: a record
   * that cannot be written only costs the next call a look.
   */
  recordChecked(g: Generation): void {
    if (this.removed) return;
    try {
      const fd = fs.openSync(`${this.dir}/${CHECKED}`, O_WRONLY | O_CREAT | O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, formatChecked(g), 0, 'latin1');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      // A short or failed write fails the record's check: the next call looks.
    }
  }

  /** After unlock (teardown): the lock file and the directory, if empty. */
  removeDir(): void {
    fs.rmSync(`${this.dir}/lock`, { force: true });
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // Not empty or already gone: leave it.
    }
  }

  /** Removes the files (teardown); keeps the lock file until unlock. */
  removeFiles(): void {
    this.removed = true;
    for (const f of ['leases.json', 'leases.json.new', CHECKED]) fs.rmSync(`${this.dir}/${f}`, { force: true });
    fs.rmSync(`${this.dir}/${WAITING}`, { recursive: true, force: true });
  }
}

/** The file of the generation at which the network's jumps were last seen intact. */
const CHECKED = 'rules-checked';

/** The recorded generation (State.recordChecked), read without the lock (dir must
 *  have passed ensureDir()); undefined when there is none or it is not one. */
export function rulesChecked(dir: string): Generation | undefined {
  let fd: number;
  try {
    fd = fs.openSync(`${dir}/${CHECKED}`, O_RDONLY | O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(CHECKED_LENGTH + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    return parseChecked(buf.toString('latin1', 0, n));
  } catch {
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes sure the state directory exists and is root's alone (0700, on a trusted path). */
export function ensureDir(dir: string): void {
  if (fs.lstatSync(dir, { throwIfNoEntry: false }) === undefined) {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new NsboxError({ exit: EXIT.CONFIG, what: `state directory ${dir}`, why: `cannot create it (${(err as NodeJS.ErrnoException).code})`, todo: 'Check the stateDir setting and that its parent exists' });
      }
    }
  }
  const problem = untrusted(dir, 'directory');
  const st = fs.lstatSync(dir);
  if (problem || (st.mode & 0o077) !== 0) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `state directory ${dir}`, why: `refusing to use it: ${problem ? `${problem.path === dir ? 'it' : problem.path} ${problem.why}` : `its mode is ${(st.mode & 0o7777).toString(8)}, not 700`}`, todo: 'Remove it (netsetup creates it root-owned, mode 700) or set stateDir to a root-only location' });
  }
}

/** The directory of the `--pid -` wait slots, inside the state directory. */
const WAITING = 'waiting';

/**
 * One of `max` wait slots of `uid` (dir must have passed ensureDir()): files
 * `waiting/UID.K`, each held by an exclusive flock while a `--pid -` waits for its
 * pid, so the kernel frees a slot when its holder exits, however it exits.
 * Returns the slot's fd (closing it frees the slot), or undefined when all are taken.
 */
export function takeWaitSlot(dir: string, uid: number, max: number): number | undefined {
  const slots = `${dir}/${WAITING}`;
  try {
    fs.mkdirSync(slots, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new NsboxError({ exit: EXIT.CONFIG, what: `directory ${slots}`, why: `cannot create it (${(err as NodeJS.ErrnoException).code})`, todo: 'Run netsetup teardown as root' });
  }
  const st = fs.lstatSync(slots);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o077) !== 0) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `directory ${slots}`, why: 'is not a root-only directory', todo: 'Run netsetup teardown as root' });
  }
  const c = libc();
  for (let k = 0; k < max; k++) {
    const fd = fs.openSync(`${slots}/${uid}.${k}`, O_RDWR | O_CREAT | O_NOFOLLOW, 0o600);
    if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) return fd;
    fs.closeSync(fd);
  }
  return undefined;
}
