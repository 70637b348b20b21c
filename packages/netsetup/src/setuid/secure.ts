// Process hygiene for a setuid-root Node program (docs/security.md §1,
// docs/platform.md §4). Runs before anything else in main.
import fs from 'node:fs';
import sea from 'node:sea';
import { errno, libc } from '@nsbox/shared/libc';
import { NETSETUP_PATH } from '@nsbox/shared/protocol';
import { AT_SECURE, F_SETFD, PR_SET_DUMPABLE } from '@nsbox/shared/syscalls';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { mark } from '../timing.ts';

/** The whole environment of netsetup after sanitising, and of every child. */
export const FIXED_ENV: Record<string, string> = { PATH: NETSETUP_PATH, LC_ALL: 'C' };

/** Variables that nothing in Node, glibc or OpenSSL reads at startup. A setuid
 *  start with anything else re-executes itself with FIXED_ENV. */
const INERT = new Set(['PATH', 'HOME', 'TERM', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'OLDPWD', 'SHLVL', '_', 'LC_ALL', 'MAIL', 'HOSTNAME', 'COLORTERM', 'SUDO_USER', 'SUDO_UID', 'SUDO_GID', 'SUDO_COMMAND']);

export interface Privilege {
  /** Started setuid (AT_SECURE): the caller is not root. */
  secure: boolean;
  uid: number;
  gids: number[];
}

export function harden(): Privilege {
  mark('main');
  const c = libc();
  mark('koffi loaded');
  const secure = Number(c.getauxval(AT_SECURE)) !== 0;
  process.umask(0o022);
  if (secure) {
    // Coverage output would be written by root to a path the caller chose.
    // (node:v8 is loaded only then: loading it costs ~1.5 ms.)
    if (process.env.NODE_V8_COVERAGE !== undefined) process.getBuiltinModule('node:v8').stopCoverage();
    c.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (Object.keys(process.env).some((k) => !INERT.has(k))) reexec();
  }
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, FIXED_ENV);
  for (const fd of [0, 1, 2]) {
    try {
      fs.fstatSync(fd);
    } catch {
      process.exit(EXIT.USAGE);
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
 *  arguments, fixed environment. Never returns. */
function reexec(): never {
  const args = sea.isSea() ? process.argv.slice(2) : [...process.execArgv, ...process.argv.slice(1)];
  const env = Object.entries(FIXED_ENV).map(([k, v]) => `${k}=${v}`);
  // Node marks stdin/stdout/stderr close-on-exec at startup (docs/platform.md §2).
  for (const fd of [0, 1, 2]) libc().fcntl(fd, F_SETFD, 'int', 0);
  libc().execve('/proc/self/exe', ['netsetup', ...args, null], [...env, null]);
  const failed = sysError('re-execute with a clean environment', errno(), { todo: 'Check the installation' });
  process.stderr.write(`${failed.line('netsetup')}\n`);
  process.exit(EXIT.CONFIG);
}

/** Refuses a broken install: must run with euid 0 from a root-owned, not
 *  group/other-writable binary, in the initial user namespace. */
export function checkInstall(): void {
  if (process.geteuid!() !== 0) {
    const capEff = /^CapEff:\s+([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: BigInt(`0x${capEff}`) !== 0n ? 'netsetup runs with file capabilities instead of setuid root' : 'netsetup is not running as root (not installed setuid root)', todo: 'Install it with scripts/install.sh (owner root, mode 4755)' });
  }
  const exe = fs.statSync('/proc/self/exe');
  if (exe.uid !== 0 || (exe.mode & 0o022) !== 0) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: `the netsetup binary is ${exe.uid !== 0 ? `owned by uid ${exe.uid}` : 'writable by group or others'}`, todo: 'Reinstall it owned by root, mode 4755' });
  }
  const map = fs.readFileSync('/proc/self/uid_map', 'utf8').trim().split(/\s+/);
  if (map.join(' ') !== '0 0 4294967295') {
    throw new NsboxError({ exit: EXIT.CONFIG, what: 'installation', why: 'netsetup is not running in the initial user namespace', todo: 'Run it from the host, not from inside a container' });
  }
}
