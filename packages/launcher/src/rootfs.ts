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
  /** For a missing path: the nearest directory above it that exists. */
  base?: BaseDir;
}

/** An existing directory of the rootfs in which mount points may have to be made. */
export interface BaseDir {
  hostPath: string;
  /** Whether the caller may create entries in it on disk. */
  writable: boolean;
  /** Its permission bits, for the overlay that stands in for it. */
  mode: number;
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
  /** Whether ids 1..N inside are the caller's subordinate ids (see idmap.ts). */
  ids?: 'single' | 'subids';
  /** With --init: the host's static init binary to bind into the sandbox. */
  init?: string;
}

/** Where --init looks for its static init (Debian's tini package). */
export const INIT_BINARY = '/usr/bin/tini-static';

const SYSTEM_MOUNTS = ['/proc', '/dev', '/sys'];
const MAX_LINKS = 40;

export function gatherFacts(opts: Options, ids: 'single' | 'subids' = 'single'): Facts {
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
  for (const fact of targets.values()) if (!fact.exists) fact.base = baseDir(root, fact.hostPath);
  const dir = resolveInRoot(root, '/etc');
  if (dir.exists && dir.isDir) dir.base = baseDir(root, `${dir.hostPath}/x`);
  const etc = { dir, files: new Map(ETC_FILES.map((f) => [f, resolveInRoot(root, `/etc/${f}`)])) };
  return { root, targets, sources, etc, ids, ...terminal(), ...initBinary(opts) };
}

function initBinary(opts: Options): { init?: string } {
  if (!opts.init) return {};
  try {
    if (fs.statSync(INIT_BINARY).isFile()) return { init: INIT_BINARY };
  } catch {
    // said below
  }
  throw new NsboxError({ what: '--init', why: `${INIT_BINARY} is missing`, todo: "An admin installs it with 'apt-get install tini' (Debian's static tini)." });
}

/** The nearest existing directory above `hostPath` (which resolveInRoot made free of
 *  links and '..'), never above the rootfs. */
function baseDir(root: string, hostPath: string): BaseDir {
  let dir = path.dirname(hostPath);
  for (;;) {
    try {
      const st = fs.lstatSync(dir);
      if (st.isDirectory()) {
        let writable = true;
        try {
          fs.accessSync(dir, fs.constants.W_OK);
        } catch {
          writable = false;
        }
        return { hostPath: dir, writable, mode: st.mode & 0o7777 };
      }
    } catch {
      // missing: look higher
    }
    if (dir === root || dir.length <= root.length) return { hostPath: root, writable: false, mode: 0o755 };
    dir = path.dirname(dir);
  }
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
