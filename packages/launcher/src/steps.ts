// Building blocks of the stub's program (pure): one step or a few for a mount, a
// read-only attribute or a file made as a mount point. Shared by plan.ts and etc.ts.
import type { Arg, Step } from '@nsbox/shared/program';
import { AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY, O_CLOEXEC, O_CREAT, O_NOFOLLOW, O_WRONLY } from '@nsbox/shared/syscalls';

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
