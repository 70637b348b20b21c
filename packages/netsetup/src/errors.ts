// The one error type of netsetup. Every user-facing failure becomes one line,
// `netsetup: <what failed>: <why>. <what to do>`, and a documented exit code.

export const EXIT = {
  OK: 0,
  /** Unexpected internal failure (a bug). */
  INTERNAL: 1,
  /** Bad command line. */
  USAGE: 2,
  /** The target pid is not one the caller may configure, or the caller may not do this. */
  DENIED: 3,
  /** The caller's (or their group's) lease quota, or the subnet, is exhausted. */
  QUOTA: 4,
  /** Broken installation or configuration (ownership, permissions, syntax, overlap). */
  CONFIG: 5,
  /** A kernel or iptables operation failed. */
  SYSTEM: 6,
  /** Another netsetup held the state lock for too long. */
  BUSY: 7,
  /** A requested host port is already published by another lease or bound by a host socket. */
  CONFLICT: 8,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class NetsetupError extends Error {
  code: ExitCode;
  constructor(code: ExitCode, what: string, why: string, todo = '') {
    super(`${what}: ${why}.${todo ? ` ${todo}` : ''}`);
    this.code = code;
  }
}

export const fail = (code: ExitCode, what: string, why: string, todo = ''): never => {
  throw new NetsetupError(code, what, why, todo);
};

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM (operation not permitted)', 2: 'ENOENT (no such file or directory)', 3: 'ESRCH (no such process)',
  9: 'EBADF (bad file descriptor)', 12: 'ENOMEM (out of memory)', 13: 'EACCES (permission denied)',
  16: 'EBUSY (device or resource busy)', 17: 'EEXIST (already exists)', 19: 'ENODEV (no such device)',
  22: 'EINVAL (invalid argument)', 23: 'ENFILE', 24: 'EMFILE (too many open files)', 95: 'EOPNOTSUPP (not supported)',
  98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL', 101: 'ENETUNREACH (network unreachable)', 100: 'ENETDOWN (network down)',
  105: 'ENOBUFS', 11: 'EAGAIN',
};

export const errnoText = (errno: number): string => ERRNO_NAMES[errno] ?? `errno ${errno}`;

/** A kernel call failed: name the step and the errno. */
export class SysError extends NetsetupError {
  errno: number;
  constructor(what: string, errno: number, detail?: string) {
    super(EXIT.SYSTEM, what, `${errnoText(errno)}${detail ? `: ${detail}` : ''}`, '');
    this.errno = errno;
  }
}
