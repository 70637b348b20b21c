// The one error type of netsetup. Every user-facing failure becomes one line,
// `netsetup: <what failed>: <why>. <what to do>`, and a documented exit code.
import { describeErrno } from '@nsbox/shared/errno';

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

/** A kernel call failed: name the step and the errno. */
export class SysError extends NetsetupError {
  errno: number;
  constructor(what: string, errno: number, detail?: string) {
    super(EXIT.SYSTEM, what, `${describeErrno(errno)}${detail ? `: ${detail}` : ''}`, '');
    this.errno = errno;
  }
}
