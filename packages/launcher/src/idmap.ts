// The sandbox's user namespace maps the caller (uid and gid) to root, nothing else.
import fs from 'node:fs';

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
  fs.writeFileSync(`/proc/${pid}/setgroups`, maps.setgroups);
  fs.writeFileSync(`/proc/${pid}/uid_map`, maps.uidMap);
  fs.writeFileSync(`/proc/${pid}/gid_map`, maps.gidMap);
}
