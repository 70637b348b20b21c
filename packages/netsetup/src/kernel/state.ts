// Lease state on tmpfs, under an exclusive flock that the kernel drops when the
// holder dies (SIGKILL included). The directory must be root's own (0700); files
// are opened without following symlinks and replaced by rename, so a planted
// file or link is refused and a killed writer leaves the old file intact.
import { sleepSync } from '@nsbox/shared/sleep';
import fs from 'node:fs';
import { libc, errno } from '@nsbox/shared/libc';
import { describeErrno, EAGAIN, ENOENT } from '@nsbox/shared/errno';
import { AT_FDCWD, LOCK_EX, LOCK_NB } from '@nsbox/shared/syscalls';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { parseLeaseFile, type Lease } from '../policy/leases.ts';
import { untrusted } from '../setuid/trust.ts';

const LOCK_WAIT_MS = 20_000;
const RENAME_EXCHANGE = 2;
const { O_RDWR, O_RDONLY, O_WRONLY, O_CREAT, O_NOFOLLOW } = fs.constants;

export class State {
  dir: string;
  private lockFd: number;

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
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let delay = 1; ; delay = Math.min(delay * 2, 5)) {
      if (c.flock(fd, LOCK_EX | LOCK_NB) === 0) break;
      const e = errno();
      if (e !== EAGAIN) throw sysError(`lock ${lockPath}`, e);
      if (Date.now() > deadline) {
        fs.closeSync(fd);
        throw new NsboxError({ exit: EXIT.BUSY, what: `lock ${lockPath}`, why: `another netsetup has held it for ${LOCK_WAIT_MS / 1000} s`, todo: 'Try again; if it persists, look for a stopped netsetup process' });
      }
      sleepSync(delay);
    }
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
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
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
   */
  write(leases: Lease[]): void {
    const file = `${this.dir}/leases.json`;
    const tmp = `${this.dir}/leases.json.new`;
    try {
      // The directory is root's alone (ensureDir), so truncating the scratch file is safe.
      const text = Buffer.from(`${JSON.stringify({ version: 1, leases }, null, 1)}\n`);
      // Overwritten in place, then cut to length: O_TRUNC would free all its pages first.
      const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, text, 0, text.length, 0);
        fs.ftruncateSync(fd, text.length);
      } finally {
        fs.closeSync(fd);
      }
      if (libc().renameat2(AT_FDCWD, tmp, AT_FDCWD, file, RENAME_EXCHANGE) !== 0) {
        if (errno() !== ENOENT) throw new Error(`swap ${tmp} and ${file}: ${describeErrno(errno())}`);
        fs.renameSync(tmp, file);
      }
    } catch (err) {
      throw new NsboxError({ exit: EXIT.SYSTEM, what: `write state file ${file}`, why: (err as Error).message, todo: 'Check free space on the state filesystem' });
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
    for (const f of ['leases.json', 'leases.json.new']) fs.rmSync(`${this.dir}/${f}`, { force: true });
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
