// Pins the target once: a pidfd and an fd of /proc/PID/ns/net, opened a single
// time and checked through those fds only (a pid can be reused between a check
// and a use). "No such process" and "not yours" give the same error, so the
// helper tells nobody anything about other users' processes.
import fs from 'node:fs';
import { libc } from '@nsbox/shared/libc';
import { currentArch, NS_GET_OWNER_UID, NS_GET_USERNS, SYSCALLS, SYS_pidfd_send_signal } from '@nsbox/shared/syscalls';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';

export interface Target {
  pid: number;
  pidfd: number;
  netnsFd: number;
  /** Whether the pinned process is still alive (it may not have been reused). */
  alive(): boolean;
  close(): void;
}

export const notYours = (pid: number): NsboxError =>
  new NsboxError({ exit: EXIT.DENIED, what: `pid ${pid}`, why: 'no such process of yours in a network namespace of your own', todo: 'Give the pid of a process you started in its own user and network namespace (e.g. unshare -Urn)' });

function pidfdAlive(pidfd: number): boolean {
  return Number(libc().syscall(SYS_pidfd_send_signal, 'int', pidfd, 'int', 0, 'void *', null, 'unsigned int', 0)) === 0;
}

function closeFd(fd: number): void {
  if (fd >= 0) libc().close(fd);
}

/** The host's own network namespace is the one this process started in. */
export function pin(pid: number, callerUid: number, homeNetns: fs.Stats): Target {
  const c = libc();
  const pidfd = Number(c.syscall(SYSCALLS.pidfd_open[currentArch()], 'long', pid, 'long', 0));
  if (pidfd < 0) throw notYours(pid);
  let netnsFd = -1;
  let usernsFd = -1;
  try {
    let status: string;
    try {
      netnsFd = fs.openSync(`/proc/${pid}/ns/net`, 'r');
      status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      throw notYours(pid);
    }
    // Both were opened while the pidfd's process was alive, so they are its.
    if (!pidfdAlive(pidfd)) throw notYours(pid);
    const uids = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/m.exec(status);
    if (!uids) throw notYours(pid);
    if (callerUid !== 0 && uids.slice(1).some((u) => Number(u) !== callerUid)) throw notYours(pid);

    const ns = fs.fstatSync(netnsFd);
    if (ns.ino === homeNetns.ino && ns.dev === homeNetns.dev) {
      throw new NsboxError({ exit: EXIT.DENIED, what: `pid ${pid}`, why: "it is in the host's network namespace", todo: 'Start the process in its own user and network namespace (e.g. unshare -Urn) and give that pid' });
    }
    if (callerUid !== 0) {
      usernsFd = Number(c.ioctl(netnsFd, NS_GET_USERNS));
      if (usernsFd < 0) throw notYours(pid);
      const owner = Buffer.alloc(4);
      if (Number(c.ioctl(usernsFd, NS_GET_OWNER_UID, 'void *', owner)) !== 0) throw notYours(pid);
      const userns = fs.fstatSync(usernsFd);
      const home = fs.statSync('/proc/self/ns/user');
      // The initial user namespace is owned by uid 0; a caller's own one by them.
      if (owner.readUInt32LE(0) !== callerUid || userns.ino === home.ino) throw notYours(pid);
    }
  } catch (err) {
    closeFd(usernsFd);
    closeFd(netnsFd);
    closeFd(pidfd);
    throw err;
  }
  closeFd(usernsFd);
  return {
    pid,
    pidfd,
    netnsFd,
    alive: () => pidfdAlive(pidfd),
    close() {
      closeFd(netnsFd);
      closeFd(pidfd);
    },
  };
}

/** Parses a pid argument strictly: decimal, no sign, no leading zero, in range. */
export function parsePid(text: string): number | undefined {
  if (!/^[1-9][0-9]{0,6}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 4194304 ? n : undefined;
}
