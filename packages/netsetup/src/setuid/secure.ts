// Process hygiene for a setuid-root Node program (docs/security.md §1,
// docs/platform.md §4). Runs first in main, after setuid/early.ts.
import fs from 'node:fs';
import sea from 'node:sea';
import { errno, libc } from '@nsbox/shared/libc';
import { AT_SECURE, F_SETFD, PR_SET_DUMPABLE } from '@nsbox/shared/syscalls';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { FIXED_ENV, INERT } from './early.ts';
import { raises, readLimits, tooLow } from './limits.ts';
import { EXIT } from '../exit.ts';
import { mark } from '../timing.ts';

export { FIXED_ENV } from './early.ts';

export interface Privilege {
  /** Started setuid (AT_SECURE): the caller is not root. */
  secure: boolean;
  uid: number;
  gids: number[];
}

const RLIMIT = { fsize: 1, nofile: 7, as: 9 } as const;
const RLIM_INFINITY = 0xffffffffffffffffn;

/**
 * Hardening after early.ts (coverage stopped, environment clean or re-executed):
 * the caller's limits are checked before the FFI module loads and raised after
 * (setuid/limits.ts), no core dumps, umask, fixed environment, fds 0-2 open,
 * then fully root. Throws an NsboxError for a refusal; main.ts prints it.
 */
export function harden(): Privilege {
  mark('main');
  const limits = readLimits();
  const low = tooLow(limits);
  if (low) throw low;
  const c = libc();
  mark('koffi loaded');
  const secure = Number(c.getauxval(AT_SECURE)) !== 0;
  process.umask(0o022);
  if (secure) {
    c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (Object.keys(process.env).some((k) => !INERT.has(k))) reexec();
  }
  // Root may raise them (a caller running it as itself cannot: then they stay).
  for (const r of raises(limits)) {
    const v = Buffer.alloc(16);
    v.writeBigUInt64LE(r.soft === Infinity ? RLIM_INFINITY : BigInt(r.soft), 0);
    v.writeBigUInt64LE(r.hard === Infinity ? RLIM_INFINITY : BigInt(r.hard), 8);
    c.setrlimit(RLIMIT[r.resource], v);
  }
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, FIXED_ENV);
  for (const fd of [0, 1, 2]) {
    try {
      fs.fstatSync(fd);
    } catch {
      throw new NsboxError({ exit: EXIT.USAGE, what: 'start-up', why: `file descriptor ${fd} is not open`, todo: 'Run netsetup with stdin, stdout and stderr open' });
    }
  }
  const caller = { secure, uid: process.getuid!(), gids: [...new Set([process.getgid!(), ...process.getgroups!()])] };
  // Become root entirely (real, effective, saved ids; no supplementary groups of
  // the caller), so children such as iptables run as plain root, not as a
  // half-privileged mixture the caller could signal or influence.
  if (process.geteuid!() === 0) {
    process.setgroups!([0]);
    process.setgid!(0);
    process.setuid!(0);
  }
  return caller;
}

/** Replaces this process with a fresh start of the same executable, same
 *  arguments, fixed environment (execve(2): Node's own process.execve would run
 *  its exit hooks first). Never returns. */
function reexec(): never {
  const args = sea.isSea() ? process.argv.slice(2) : [...process.execArgv, ...process.argv.slice(1)];
  const env = Object.entries(FIXED_ENV).map(([k, v]) => `${k}=${v}`);
  // Node marks stdin/stdout/stderr close-on-exec at startup (docs/platform.md §2).
  for (const fd of [0, 1, 2]) libc().fcntl(fd, F_SETFD, 'int', 0);
  libc().execve('/proc/self/exe', ['netsetup', ...args, null], [...env, null]);
  throw sysError('re-execute with a clean environment', errno(), { todo: 'Check the installation', exit: EXIT.CONFIG });
}

/** Refuses a broken install: must run with euid 0 from a root-owned, not
 *  group/other-writable binary with one link, in the initial user namespace. */
export function checkInstall(): void {
  if (process.geteuid!() !== 0) {
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: BigInt(`0x${capEff}`) !== 0n ? 'netsetup runs with file capabilities instead of setuid root' : 'netsetup is not running as root (not installed setuid root)', todo: 'Install it with scripts/install.sh (owner root, mode 4755)' });
  }
  const exe = fs.statSync('/proc/self/exe');
  if (exe.uid !== 0 || (exe.mode & 0o022) !== 0) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: `the netsetup binary is ${exe.uid !== 0 ? `owned by uid ${exe.uid}` : 'writable by group or others'}`, todo: 'Reinstall it owned by root, mode 4755' });
  }
  if (exe.nlink > 1) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: `the netsetup binary has ${exe.nlink} hard links (a link elsewhere would run it without its configuration, or keep an old version alive)`, todo: 'Remove the other links (find / -xdev -samefile BINARY), or reinstall with scripts/install.sh' });
  }
  const map = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
  if (map.join(' ') !== '0 0 4294967295') {
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: 'netsetup is not running in the initial user namespace', todo: 'Run it from the host, not from inside a container' });
  }
}
