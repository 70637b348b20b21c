// Building blocks of the stub's program (pure): one step or a few for a mount, a
// read-only attribute or a file made as a mount point. Shared by plan.ts and etc.ts.
import type { Arg, Step } from '@nsbox/shared/program';
import { AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY, MS_NODEV, MS_NOSUID, O_CLOEXEC, O_CREAT, O_NOFOLLOW, O_PATH, O_WRONLY } from '@nsbox/shared/syscalls';

export const str = (s: string): Arg => ({ str: s });

export function mount(what: string, source: string | null, target: string, fstype: string | null, flags: number, data?: string): Step {
  return { what, call: 'mount', args: [source === null ? 0 : str(source), str(target), fstype === null ? 0 : str(fstype), flags, data === undefined ? 0 : str(data)] };
}

export function readOnly(what: string, target: string, recursive: boolean): Step {
  const attr = new Uint8Array(32);
  new DataView(attr.buffer).setBigUint64(0, BigInt(MOUNT_ATTR_RDONLY), true);
  return { what, call: 'mount_setattr', args: [AT_FDCWD, str(target), recursive ? AT_RECURSIVE : 0, { bytes: attr }, 32] };
}

export function createFile(what: string, hostPath: string, soft: boolean): Step[] {
  return [
    { what, call: 'openat', args: [AT_FDCWD, str(hostPath), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0o644], save: true, soft },
    { what, call: 'close', args: ['saved'], soft },
  ];
}

export function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** The fd number the lower directory of an overlay is kept at while a tmpfs covers
 *  it: the overlay names it as /proc/self/fd/N (the host's /proc until pivot_root),
 *  which still leads to the directory under the tmpfs. */
export const LOWER_FD = 900;

/**
 * Puts an overlay on the directory `dir` (a host path in the rootfs), with the
 * directory as its lower layer and a tmpfs as its upper layer: entries can then be
 * made in it (mount points, /etc files) without writing the rootfs on disk. The
 * tmpfs is mounted on `dir` itself (holding the upper and work directories) and
 * the overlay on top of it, so nothing outside the rootfs is needed. The
 * overlay's root shows `mode` (the directory's own).
 */
export function overlay(what: string, dir: string, mode: number): Step[] {
  return [
    { what, call: 'openat', args: [AT_FDCWD, str(dir), O_PATH | O_CLOEXEC], save: true },
    { what, call: 'dup3', args: ['saved', LOWER_FD, O_CLOEXEC] },
    { what, call: 'close', args: ['saved'] },
    mount(what, 'tmpfs', dir, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=0700'),
    { what, call: 'mkdirat', args: [AT_FDCWD, str(`${dir}/upper`), 0o755] },
    { what, call: 'fchmodat', args: [AT_FDCWD, str(`${dir}/upper`), mode] },
    { what, call: 'mkdirat', args: [AT_FDCWD, str(`${dir}/work`), 0o700] },
    mount(what, 'overlay', dir, 'overlay', 0, `lowerdir=/proc/self/fd/${LOWER_FD},upperdir=${dir}/upper,workdir=${dir}/work`),
    { what, call: 'close', args: [LOWER_FD] },
  ];
}

/** overlay() takes its paths in a mount option string: these characters would break it. */
export const canOverlay = (dir: string): boolean => !/[,:\\=]/.test(dir);
