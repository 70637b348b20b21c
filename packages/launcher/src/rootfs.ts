// Looks at the rootfs and the bind sources on the host before anything is created:
// the facts the plan is made from. Paths inside the sandbox are resolved the way
// the sandbox will see them, with symlinks followed relative to the rootfs.
import fs from 'node:fs';
import path from 'node:path';
import { NsboxError, sysError } from '@nsbox/shared/error';
import { ETC_FILES, type EtcFile } from './etc.ts';
import type { Options } from './options.ts';

export interface PathFact {
  /** Where the path lands on the host, inside the rootfs. */
  hostPath: string;
  exists: boolean;
  isDir: boolean;
}

export interface Facts {
  root: string;
  /** Resolved mount targets, by sandbox path. */
  targets: Map<string, PathFact>;
  /** Bind sources, by the path the user gave. */
  sources: Map<string, { hostPath: string; isDir: boolean }>;
  /** /etc and the files the launcher provides in it. */
  etc: { dir: PathFact; files: Map<EtcFile, PathFact> };
  /** The terminal on stdin (a host path such as /dev/pts/3), if there is one. */
  terminal?: string;
}

const SYSTEM_MOUNTS = ['/proc', '/dev', '/sys'];
const MAX_LINKS = 40;

export function gatherFacts(opts: Options): Facts {
  const todo = 'Give --rootfs a directory (scripts/make-rootfs.sh DIR makes one).';
  let root: string;
  try {
    root = fs.realpathSync(opts.rootfs);
  } catch (err) {
    throw sysError(`rootfs ${opts.rootfs}`, -((err as NodeJS.ErrnoException).errno ?? 0), { todo });
  }
  if (!fs.statSync(root).isDirectory()) throw new NsboxError({ what: `rootfs ${opts.rootfs}`, why: 'not a directory', todo });
  const targets = new Map<string, PathFact>();
  for (const t of [...SYSTEM_MOUNTS, ...opts.mounts.map((m) => m.target)]) {
    if (!targets.has(t)) targets.set(t, resolveInRoot(root, t));
  }
  const sources = new Map<string, { hostPath: string; isDir: boolean }>();
  for (const m of opts.mounts) {
    if (m.source === undefined) continue;
    let hostPath: string;
    try {
      hostPath = fs.realpathSync(m.source);
    } catch {
      throw new NsboxError({ what: `--${m.kind} ${m.source}:${m.target}`, why: `the source ${m.source} does not exist on the host` });
    }
    sources.set(m.source, { hostPath, isDir: fs.statSync(hostPath).isDirectory() });
  }
  const etc = { dir: resolveInRoot(root, '/etc'), files: new Map(ETC_FILES.map((f) => [f, resolveInRoot(root, `/etc/${f}`)])) };
  return { root, targets, sources, etc, ...terminal() };
}

/** The caller's terminal, when stdin is one: it becomes the sandbox's /dev/console. */
function terminal(): { terminal?: string } {
  try {
    if (!fs.fstatSync(0).isCharacterDevice()) return {};
    const p = fs.readlinkSync('/proc/self/fd/0');
    return /^\/dev\/(pts\/\d+|tty\w*)$/.test(p) ? { terminal: p } : {};
  } catch {
    return {};
  }
}

/**
 * Resolves an absolute sandbox path against `root` as the kernel would with `root`
 * as `/`: `..` at the root stays at the root, absolute links start again at the
 * root, and the result never leaves it (not even through a missing or non-directory
 * component followed by `..`). The host path it returns has no symlink and no `..`
 * in it, so the stub's calls on it (which follow links as the host sees them) land
 * where the sandbox will see them. What lies past a missing component is resolved
 * by name: the plan creates it.
 */
export function resolveInRoot(root: string, sandboxPath: string): PathFact {
  const pending = sandboxPath.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let missing = false;
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = path.join(root, ...done, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(host);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_LINKS) return { hostPath: host, exists: false, isDir: false };
      const target = fs.readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    done.push(part);
    missing = st === undefined || (!st.isDirectory() && pending.length > 0);
  }
  const hostPath = path.join(root, ...done);
  if (missing) return { hostPath, exists: false, isDir: false };
  const st = fs.statSync(hostPath);
  return { hostPath, exists: true, isDir: st.isDirectory() };
}
