// --info-fd: JSON lines for scripts, one when the sandbox has started and one when
// it has exited. The fd is made close-on-exec so neither the sandbox nor netsetup
// inherits it (a script reading it to EOF would otherwise wait for them).
import fs from 'node:fs';
import type { Exit } from '@nsbox/shared/clone';
import { NsboxError } from '@nsbox/shared/error';
import { libc } from '@nsbox/shared/libc';
import { F_SETFD } from '@nsbox/shared/syscalls';
import type { Answer } from '@nsbox/shared/protocol';
import { EXIT_LAUNCHER } from './outcome.ts';

const FD_CLOEXEC = 1;

export interface StartedEvent {
  event: 'started';
  pid: number;
  network: 'bridge' | 'none';
  interface?: string;
  address?: string;
  prefix?: number;
  gateway?: string;
  mtu?: number;
  dns?: string[];
  lease?: string;
  published?: unknown[];
}

export type ExitedEvent = { event: 'exited'; code: number } | { event: 'exited'; signal: number };

/** The started line (pure). */
export function startedEvent(pid: number, lease: Answer | undefined): StartedEvent {
  if (!lease) return { event: 'started', pid, network: 'none' };
  const { interface: iface, address, prefix, gateway, mtu, dns, published } = lease;
  return { event: 'started', pid, network: 'bridge', interface: iface, address, prefix, gateway, mtu, dns, lease: lease.lease, published };
}

export function exitedEvent(exit: Exit): ExitedEvent {
  return exit.signal !== undefined ? { event: 'exited', signal: exit.signal } : { event: 'exited', code: exit.code };
}

export interface Info {
  /** The fd the lines go to (the supervisor writes the exited line there). */
  fd: number;
  started(pid: number, lease: Answer | undefined): void;
  exited(exit: Exit): void;
}

export function openInfo(fd: number): Info {
  try {
    fs.fstatSync(fd);
  } catch {
    throw new NsboxError({ what: `--info-fd ${fd}`, why: 'not an open file descriptor', todo: 'Open it in the calling shell (e.g. 3>info.jsonl).', exit: EXIT_LAUNCHER });
  }
  libc().fcntl(fd, F_SETFD, 'int', FD_CLOEXEC);
  const write = (event: object): void => {
    try {
      fs.writeSync(fd, `${JSON.stringify(event)}\n`);
    } catch {
      // A reader that went away must not change the sandbox's exit status.
    }
  };
  return {
    fd,
    started: (pid, lease) => write(startedEvent(pid, lease)),
    exited: (exit) => write(exitedEvent(exit)),
  };
}
