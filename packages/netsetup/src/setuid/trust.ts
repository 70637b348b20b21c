// Whether a path can be trusted by a setuid-root program: the file and every
// directory above it owned by root and not writable by group or others (a
// root-owned sticky directory such as /tmp is accepted as an ancestor: nobody
// else can rename or remove root's entries in it).
import fs from 'node:fs';
import path from 'node:path';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';

interface TrustProblem {
  path: string;
  why: string;
}

/** The first problem on the way from / to `file` (already a real path), if any. */
export function untrusted(file: string, kind: 'file' | 'directory'): TrustProblem | undefined {
  const parts = file.split('/').filter(Boolean);
  let dir = '/';
  for (let i = 0; i <= parts.length; i++) {
    const isLast = i === parts.length;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(dir);
    } catch (err) {
      return { path: dir, why: `cannot be examined (${(err as NodeJS.ErrnoException).code})` };
    }
    const expectDir = !isLast || kind === 'directory';
    if (st.isSymbolicLink()) return { path: dir, why: 'is a symbolic link' };
    if (expectDir && !st.isDirectory()) return { path: dir, why: 'is not a directory' };
    if (!expectDir && !st.isFile()) return { path: dir, why: 'is not a regular file' };
    if (st.uid !== 0) return { path: dir, why: `is owned by uid ${st.uid}, not root` };
    const sticky = (st.mode & 0o1000) !== 0;
    if ((st.mode & 0o022) !== 0 && !(sticky && !isLast)) {
      return { path: dir, why: `is writable by ${st.mode & 0o020 ? 'its group' : 'others'} (mode ${(st.mode & 0o7777).toString(8)})` };
    }
    if (!isLast) dir = path.join(dir, parts[i]!);
  }
  return undefined;
}

/** Refuses a configuration file that root cannot trust. */
export function requireTrusted(file: string): void {
  const p = untrusted(file, 'file');
  if (p) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `configuration ${file}`, why: `refusing to trust it: ${p.path === file ? 'it' : `directory ${p.path}`} ${p.why}`, todo: 'Every directory on the path and the file itself must be owned by root and not writable by group or others (chown root:root; chmod go-w)' });
  }
}
