// The launcher's side of netsetup, the setuid helper that gives the sandbox its
// network: finding it, checking it is installed setuid root, and running it.
import fs from 'node:fs';
import path from 'node:path';
import { holdArgs, isNoWaitSlot, NETSETUP_ENV, parseAnswer, parseServerError, serverName, systemServerName, serverRequest, type Answer } from '@nsbox/shared/protocol';
import { NsboxError } from '@nsbox/shared/error';
import { readLine, start, type Child } from '@nsbox/shared/spawn';
import { connectAbstract, peerCredentials, shutdownWrite } from '@nsbox/shared/unixsocket';
import { EXIT_LAUNCHER } from './outcome.ts';

const INSTALL_HINT = "Install it as root with 'scripts/install.sh' (netsetup root:root, mode 4755)";

/** Where to look for netsetup, in order (pure). */
export function netsetupCandidates(explicit: string | undefined, launcherPath: string, pathVar: string | undefined): string[] {
  if (explicit !== undefined) return [explicit];
  const dirs = [path.dirname(launcherPath), ...(pathVar ?? '').split(':').filter((d) => d.startsWith('/'))];
  return [...new Set(dirs.map((d) => path.join(d, 'netsetup')))];
}

export function findNetsetup(candidates: string[]): string | undefined {
  return candidates.find((c) => {
    try {
      return fs.statSync(c).isFile();
    } catch {
      return false;
    }
  });
}

export function missingError(explicit: string | undefined): NsboxError {
  if (explicit !== undefined) {
    return new NsboxError({ what: `netsetup ${explicit}`, why: 'does not exist, so the sandbox cannot get a network', todo: 'Give --netsetup the installed helper, or use --net none.', exit: EXIT_LAUNCHER });
  }
  return new NsboxError({ what: 'netsetup', why: 'not installed (looked next to the launcher and in PATH), so the sandbox cannot get a network', todo: `${INSTALL_HINT}, or use --net none.`, exit: EXIT_LAUNCHER });
}

/** netsetup only works when it runs as root: a root-owned setuid file. */
export function checkSetuidRoot(file: string): void {
  const st = fs.statSync(file);
  if (st.uid !== 0 || (st.mode & 0o4000) === 0 || (st.mode & 0o001) === 0) {
    throw new NsboxError({
      what: file,
      why: `not setuid root (owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}), so it cannot configure the network`,
      todo: `${INSTALL_HINT}, or use --net none.`,
      exit: EXIT_LAUNCHER,
    });
  }
}

export interface Connection {
  lease: Answer;
  /** The netsetup that holds the lease and releases it when its stdin closes. */
  holder: Child;
}

/** A netsetup started before its pid is known (or a user's netsetup server that
 *  takes it), and how to start one with the pid when that fails. */
export interface Pending extends Child {
  /** Gives it the pid; returns its first line ('' when it said nothing). */
  ask(pid: number): string;
  /** Starts the same netsetup with `--pid PID` in place of `--pid -`. */
  startWith(pid: number): Child;
  /** A user's netsetup server, not a netsetup of this launcher's own. */
  server: boolean;
}

function netsetupArgs(publish: string[], pid: number | '-', network: string | undefined): string[] {
  return [...holdArgs(publish, pid), ...(network !== undefined ? ['--network', network] : [])];
}

function run(file: string, args: string[]): Child {
  try {
    return start(file, args, NETSETUP_ENV, { stdout: 'pipe', stderr: 'inherit' });
  } catch (err) {
    if (err instanceof NsboxError) throw new NsboxError({ what: `run netsetup ${file}`, why: `${err.what}: ${err.why}`, todo: err.todo, exit: EXIT_LAUNCHER, errno: err.errno });
    throw err;
  }
}

/**
 * Starts `netsetup --pid - --json --hold` before the sandbox exists, so that its
 * start overlaps the launcher's work; connect() then gives it the pid. Holding,
 * netsetup stays after configuring and releases the lease as soon as its stdin
 * closes: when the launcher is done, or killed. One netsetup start per sandbox,
 * unless a netsetup of this user is still serving (openServer): then none.
 */
export function startNetsetup(file: string, publish: string[], network?: string): Pending {
  const child = run(file, netsetupArgs(publish, '-', network));
  return Object.assign(child, {
    server: false,
    ask(pid: number) {
      child.write(`${pid}\n`);
      return readLine(child.stdout);
    },
    startWith: (pid: number) => run(file, netsetupArgs(publish, pid, network)),
  });
}

/**
 * A netsetup server for this very binary, if one is listening
 * (packages/netsetup/src/serve.ts): the admin's, serving every user (`netsetup
 * serve`), else this user's, the holder of an earlier sandbox still running as
 * root. It takes this sandbox and saves it a netsetup start. An abstract socket
 * is anyone's to bind: only a listener that is root counts (another user can
 * take the name, never be root), else this launcher starts its own netsetup as
 * always.
 */
export function openServer(file: string, publish: string[], network?: string): Pending | undefined {
  let binary: fs.BigIntStats;
  try {
    binary = fs.statSync(file, { bigint: true });
  } catch {
    return undefined;
  }
  let fd: number | undefined;
  for (const name of [systemServerName(binary), serverName(process.getuid!(), binary)]) {
    try {
      fd = connectAbstract(name);
    } catch {
      fd = undefined;
    }
    if (fd === undefined) continue;
    if (peerCredentials(fd)?.uid === 0) break;
    fs.closeSync(fd);
    fd = undefined;
  }
  if (fd === undefined) return undefined;
  const sock = fd;
  let open = true;
  const close = (): void => {
    if (open) fs.closeSync(sock);
    open = false;
  };
  const write = (text: string): void => {
    try {
      fs.writeSync(sock, text);
    } catch {
      // The server has gone: its answer is then EOF, and connect() starts a netsetup.
    }
  };
  return {
    pid: 0,
    server: true,
    stdout: sock,
    get stdin() {
      return open ? sock : -1;
    },
    send: (text: string) => {
      write(text);
      shutdownWrite(sock);
    },
    write,
    closeInput: () => shutdownWrite(sock),
    wait: () => {
      close();
      return { status: 0, stderr: '' };
    },
    ask(pid: number) {
      write(serverRequest(netsetupArgs(publish, pid, network)));
      return readLine(sock);
    },
    startWith: (pid: number) => run(file, netsetupArgs(publish, pid, network)),
  };
}

/**
 * Connects pid's network namespace through the netsetup from startNetsetup() or
 * openServer(). On failure netsetup has printed its own one-line message (its
 * stderr is ours); a server sends it instead, and the launcher prints it.
 *
 * netsetup bounds how many `--pid -` of one user wait for their pid at once (a
 * caller must not pile up waiting root processes). When many sandboxes of the
 * user start at once, this one may find them all taken: netsetup then says so on
 * stdout alone, and the launcher, which has the pid by now, runs netsetup again
 * with it (`--pid PID`), which waits for nothing. Only those starts lose the
 * overlap; the others keep it, and nothing shows on the terminal.
 */
export function connect(pending: Pending, file: string, pid: number): Connection {
  let holder: Child = pending;
  let output = pending.ask(pid);
  const refused = pending.server ? parseServerError(output) : undefined;
  if (refused) {
    // What netsetup would have written to our stderr had the launcher run it.
    cancel(holder);
    process.stderr.write(`${refused.error}\n`);
    throw new NsboxError({ what: 'netsetup', why: 'refused or failed', exit: EXIT_LAUNCHER, reported: true });
  }
  // A server that ended without an answer (it stopped serving): a netsetup of our own.
  if (isNoWaitSlot(output) || (pending.server && output === '')) {
    cancel(holder);
    holder = pending.startWith(pid);
    output = readLine(holder.stdout);
  }
  if (output === '') {
    cancel(holder);
    throw new NsboxError({ what: 'netsetup', why: 'refused or failed', exit: EXIT_LAUNCHER, reported: true });
  }
  const lease = parseAnswer(output);
  if (lease) return { lease, holder };
  cancel(holder);
  throw new NsboxError({
    what: `netsetup ${file}`,
    why: `gave an answer the launcher does not understand (${JSON.stringify(output.slice(0, 80))})`,
    todo: 'Install the launcher and netsetup from the same version.',
    exit: EXIT_LAUNCHER,
  });
}

/**
 * Lets the holding netsetup release the lease. It answers once it has marked
 * the lease as being released under the state lock: from then on every other
 * netsetup call sees it gone, and the launcher need not wait for the kernel to
 * delete the veth and rules (~20 ms).
 */
export function release(holder: Child): void {
  holder.closeInput();
  readLine(holder.stdout);
  fs.closeSync(holder.stdout);
}

/** Ends a netsetup that failed or is not wanted (given no pid, it does
 *  nothing): EOF, then reap it. */
export function cancel(holder: Child): void {
  // A server's socket: wait() closes it (there is no child to reap).
  if (!('server' in holder && holder.server)) fs.closeSync(holder.stdout);
  holder.wait();
}
