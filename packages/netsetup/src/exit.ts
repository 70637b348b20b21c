// netsetup's exit codes (documented in packages/netsetup/README.md). Failures are
// NsboxErrors (@nsbox/shared/error) carrying one of these; main prints their line,
// `netsetup: <what failed>: <why>. <what to do>`. One without a code is a failed
// kernel call: SYSTEM.

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
