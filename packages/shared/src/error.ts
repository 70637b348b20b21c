// The one error type of nsbox, used by launcher, netsetup and shared alike (crun's
// crun_make_error is the model): a failure a person can act on carries what failed,
// why, what to do, and optionally the errno and the exit code. The program's main
// prints it as one line, `PROGRAM: WHAT: WHY. TODO`, and exits with its code.
import { describeErrno, errnoName } from './errno.ts';

export interface ErrorParts {
  /** The step or object that failed: "create the veth", "--rootfs /x". */
  what: string;
  /** Why, in words; for a kernel call, describeErrno's "Permission denied (EACCES)". */
  why: string;
  /** What the reader can do about it; empty when there is nothing to say. */
  todo?: string;
  /** The exit code; undefined lets the program choose its default for failures. */
  exit?: number;
  /** The errno of the kernel call that failed, if one did. */
  errno?: number;
  /** Already told: by a child (netsetup) on the shared stderr, or by netsetup's
   *  --json line for the program that runs it. Print nothing more, just exit. */
  reported?: boolean;
}

export class NsboxError extends Error {
  readonly what: string;
  readonly why: string;
  readonly todo: string;
  readonly exit: number | undefined;
  readonly errno: number | undefined;
  readonly reported: boolean;

  constructor(parts: ErrorParts) {
    super(`${parts.what}: ${parts.why}.${parts.todo ? ` ${parts.todo}` : ''}`);
    this.what = parts.what;
    this.why = parts.why;
    this.todo = parts.todo ?? '';
    this.exit = parts.exit;
    this.errno = parts.errno;
    this.reported = parts.reported ?? false;
  }

  /** "EACCES" for errno 13; undefined when no kernel call failed. */
  get errnoName(): string | undefined {
    return this.errno === undefined ? undefined : errnoName(this.errno);
  }

  /** The line a person reads: `PROGRAM: WHAT: WHY. TODO`. */
  line(program: string): string {
    return `${program}: ${this.message}`;
  }
}

/** A kernel call failed: name the step and the errno ("mmap the stub's stack: Cannot allocate memory (ENOMEM)"). */
export function sysError(what: string, errno: number, opts: { detail?: string; todo?: string; exit?: number } = {}): NsboxError {
  const why = `${describeErrno(errno)}${opts.detail ? `: ${opts.detail}` : ''}`;
  return new NsboxError({ what, why, todo: opts.todo, exit: opts.exit, errno });
}
