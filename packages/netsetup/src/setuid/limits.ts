// The caller's resource limits, which a setuid program inherits. Before the FFI
// module loads (it is written to a file and mapped), limits that would make that
// fail or kill the process (SIGXFSZ) are refused in one line naming the limit;
// once it is loaded, those the caller lowered are raised (root may), so nothing
// later (state writes, sockets, children) fails because of them.
import fs from 'node:fs';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';

export interface Limit {
  soft: number;
  hard: number;
}
export interface Limits {
  nofile: Limit;
  fsize: Limit;
  as: Limit;
}

/** What netsetup needs before it can raise anything: Node itself needs ~1.1 GB of
 *  address space and ~24 fds to start; the FFI module is a ~1 MB file. */
export const NEEDS = { nofile: 64, fsize: 16 * 1024 * 1024, as: 2 * 1024 * 1024 * 1024 } as const;
/** What it raises lower limits to, once it can. */
export const RAISED = { nofile: 1024 } as const;

const ROWS: Record<keyof Limits, string> = { nofile: 'Max open files', fsize: 'Max file size', as: 'Max address space' };
const NAMES: Record<keyof Limits, { rlimit: string; ulimit: string; unit: string }> = {
  nofile: { rlimit: 'RLIMIT_NOFILE', ulimit: 'ulimit -n', unit: 'open files' },
  fsize: { rlimit: 'RLIMIT_FSIZE', ulimit: 'ulimit -f', unit: 'bytes' },
  as: { rlimit: 'RLIMIT_AS', ulimit: 'ulimit -v', unit: 'bytes' },
};

/** Parses /proc/PID/limits ("unlimited" is Infinity). */
export function parseLimits(text: string): Limits {
  const value = (v: string | undefined): number => (v === undefined || v === 'unlimited' ? Infinity : Number(v));
  const row = (key: keyof Limits): Limit => {
    const line = text.split('\n').find((l) => l.startsWith(ROWS[key]));
    const [soft, hard] = (line?.slice(ROWS[key].length).trim().split(/\s+/) ?? []) as [string?, string?];
    return { soft: value(soft), hard: value(hard) };
  };
  return { nofile: row('nofile'), fsize: row('fsize'), as: row('as') };
}

/** The first limit too low to start with, as the one-line refusal. */
export function tooLow(l: Limits): NsboxError | undefined {
  for (const key of ['nofile', 'fsize', 'as'] as const) {
    if (l[key].soft >= NEEDS[key]) continue;
    const n = NAMES[key];
    return new NsboxError({
      exit: EXIT.LIMIT,
      what: 'start-up',
      why: `your ${n.rlimit} limit (${n.ulimit}) is ${l[key].soft} ${n.unit}, below the ${NEEDS[key]} netsetup needs to start`,
      todo: `Raise it (${n.ulimit} ${key === 'nofile' ? RAISED.nofile : 'unlimited'}) and try again`,
    });
  }
  return undefined;
}

/** Which limits to raise once the FFI module is loaded: [resource, soft, hard]. */
export function raises(l: Limits): { resource: keyof Limits; soft: number; hard: number }[] {
  const out: { resource: keyof Limits; soft: number; hard: number }[] = [];
  if (l.nofile.soft < RAISED.nofile) out.push({ resource: 'nofile', soft: RAISED.nofile, hard: Math.max(l.nofile.hard, RAISED.nofile) });
  if (l.fsize.soft !== Infinity) out.push({ resource: 'fsize', soft: Infinity, hard: Infinity });
  if (l.as.soft !== Infinity) out.push({ resource: 'as', soft: Infinity, hard: Infinity });
  return out;
}

export function readLimits(): Limits {
  return parseLimits(fs.readFileSync('/proc/self/limits', 'latin1'));
}
