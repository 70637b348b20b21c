// The sandbox's user namespace maps the caller (uid and gid) to root, nothing else.
import fs from 'node:fs';
import { sysError } from '@nsbox/shared/error';

export interface IdMaps {
  setgroups: 'deny';
  uidMap: string;
  gidMap: string;
}

export function callerMaps(uid: number, gid: number): IdMaps {
  return { setgroups: 'deny', uidMap: `0 ${uid} 1\n`, gidMap: `0 ${gid} 1\n` };
}

/** setgroups must be denied before an unprivileged process may write gid_map. */
export function writeMaps(pid: number, maps: IdMaps): void {
  for (const [file, content] of [['setgroups', maps.setgroups], ['uid_map', maps.uidMap], ['gid_map', maps.gidMap]] as const) {
    try {
      fs.writeFileSync(`/proc/${pid}/${file}`, content);
    } catch (err) {
      throw sysError(`cannot map the caller to root in the sandbox: write /proc/${pid}/${file}`, -((err as NodeJS.ErrnoException).errno ?? 0));
    }
  }
}
