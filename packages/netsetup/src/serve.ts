// A user's netsetup server. The netsetup a launcher runs (--hold --json) has,
// once it has answered, nothing left to do but wait for its sandbox's end; it
// also takes the same user's next sandboxes meanwhile, and for serveSeconds
// (the configuration) after the last one: a launcher that finds it saves a whole
// netsetup start, about a third of a networked start's CPU.
//
// What keeps it as strict as a netsetup per sandbox (docs/security.md §8):
// - It listens on an abstract unix socket named after its caller's uid and its
//   own binary (protocol.ts serverName). Anyone may connect; a connection whose
//   peer (SO_PEERCRED, recorded by the kernel at connect()) is not that uid is
//   closed unread. Anyone may also bind the name first: the launcher then sees a
//   listener that is not root and runs its own netsetup.
// - A request is the command line the launcher would have given netsetup,
//   parsed by the same parseArgs with the same caps; only the launcher's form is
//   taken (--pid PID --json --hold, --publish, --network). The caller is the
//   peer's uid, gid and groups (SO_PEERGROUPS), as a command line's would be.
// - Nothing waits on a client: every socket is non-blocking, a request must come
//   within PID_WAIT_MS, a line that does not fit the socket at once is dropped
//   with its client (the GC finishes a lease nobody holds), at most MAX_CLIENTS
//   connections are open (a launcher refused runs its own netsetup), and stderr
//   (the first launcher's) is let go: no other sandbox's error goes there, and no
//   script reading it waits for this process.
// - Every request loads the configuration again and first checks that this
//   binary is still the one installed, and so does the server every second:
//   after an upgrade or an uninstall it stops serving and leaves once idle.
// - A lease held for HAND_OVER_MS goes to a supervisor of its own, a child (as a
//   holder's own lease goes to the supervisor it execs): the server holds
//   nothing for long and leaves serveSeconds after its last request.
//
// The same loop serves every user when root runs `netsetup serve` (an admin's
// service, docs/security.md §9): then any peer's connection is read, as its
// own caller's, at most MAX_USER_CLIENTS of one uid and MAX_SYSTEM_CLIENTS in
// all, and it serves until its binary is replaced or removed. Stopping it takes
// no sandbox's network (a ready lease lives while its veth does); the leases it
// held then (those under HAND_OVER_MS old) are collected by the first call
// after their sandbox ends, instead of at once.
import fs from 'node:fs';
import { NsboxError } from '@nsbox/shared/error';
import { errno, libc } from '@nsbox/shared/libc';
import { formatAnswer, parseServerRequest, releasingLine, serverErrorLine, serverName, systemServerName } from '@nsbox/shared/protocol';
import { reap } from '@nsbox/shared/spawn';
import { acceptOne, listenAbstract, peerCredentials, peerGroups, type PeerCredentials } from '@nsbox/shared/unixsocket';
import { currentArch, SYSCALLS } from '@nsbox/shared/syscalls';
import { connect } from './connect.ts';
import { EXIT } from './exit.ts';
import { spawnHolder } from './hold.ts';
import { releaseHeld } from './release.ts';
import type { Config, Network } from './policy/config.ts';
import type { Caller } from './policy/leases.ts';
import type { Invocation } from './cli.ts';

/** Connections a user's server keeps open at once; more are closed unread. */
export const MAX_CLIENTS = 256;
/** Connections the server of every user keeps open at once, and of one user:
 *  more are closed unread (those launchers run their own netsetup), so one user's
 *  connections never fill it for the others, nor its fds (at least 1024: every
 *  netsetup raises a lower limit, setuid/limits.ts). */
export const MAX_SYSTEM_CLIENTS = 512;
export const MAX_USER_CLIENTS = 128;
/** A request line's most bytes: the caps of a command line (cli.ts MAX_ARG_BYTES) and JSON's quoting. */
const MAX_REQUEST = 4 * 8192;
/** How often a server looks whether its binary is still the one installed. */
const CHECK_MS = 1000;
const POLLIN = 1;
const POLLOUT = 4;

export interface ServeContext {
  /** user: its caller's sandboxes, while its own lease lasts and serveSeconds
   *  after the last; system: every user's, until its binary is replaced
   *  (`netsetup serve`, run by root). */
  mode: 'user' | 'system';
  /** The uid whose sandboxes this server takes (its own caller), and that caller. */
  caller: Caller;
  /** This process's own lease (user mode), held through stdin (its end) and stdout (the releasing line). */
  ownLease?: string;
  /** The configuration the own lease was made with, and its file. */
  config: Config;
  configFile: string;
  /** How long a held lease stays with the server before it goes to a supervisor. */
  handOverMs: number;
  /** How long a request may take to arrive after its connection. */
  requestMs: number;
  /** cli.ts parseArgs: a request is parsed exactly as a command line. */
  parse(argv: string[]): Invocation;
  /** The configuration (installation checked, as for every call) and its file. */
  load(): { config: Config; source: string };
  /** The network a request names, or the configuration's first. */
  network(config: Config, name: string | undefined): Network;
}

interface Held {
  id: string;
  config: Config;
  configFile: string;
  caller: Caller;
  /** When it goes to a supervisor. */
  handOverAt: number;
}

interface Client {
  fd: number;
  /** The peer as the kernel recorded it at connect() (in a user's server, its uid is the server's caller's). */
  creds: PeerCredentials;
  /** Until its request has come: what has, and by when the rest must. */
  request?: { parts: Buffer[]; size: number; deadline: number };
  held?: Held;
}

/**
 * Serves the caller's next sandboxes until the own lease is over and no request
 * has come for serveSeconds (system mode: every user's, until the binary is
 * replaced). Returns false at once, having done nothing, when it cannot listen
 * (serving is off, the name is taken: another netsetup of this user serves);
 * the caller then holds its lease as before (system mode: refuses).
 */
export function serve(ctx: ServeContext): boolean {
  const system = ctx.mode === 'system';
  if (!system && ctx.config.serveSeconds === 0) return false;
  const binary = fs.realpathSync.native('/proc/self/exe');
  const nameOf = (st: fs.BigIntStats): string => (system ? systemServerName(st) : serverName(ctx.caller.uid, st));
  const name = nameOf(fs.statSync('/proc/self/exe', { bigint: true }));
  let listening = listenAbstract(name, system ? 256 : 64);
  if (listening === undefined) return false;
  // A user's server has the first launcher's stderr; the system's is the admin's.
  if (!system) detachStderr();
  const c = libc();
  const clients = new Map<number, Client>();
  const supervisors = new Set<number>();
  let own: Held | undefined = ctx.ownLease !== undefined ? { id: ctx.ownLease, config: ctx.config, configFile: ctx.configFile, caller: ctx.caller, handOverAt: Date.now() + ctx.handOverMs } : undefined;
  const serveMsOf = (config: Config): number => (system ? Number.POSITIVE_INFINITY : config.serveSeconds * 1000);
  let serveMs = serveMsOf(ctx.config);
  let idleSince = Date.now();
  const stopListening = (): void => {
    if (listening !== undefined) c.close(listening);
    listening = undefined;
  };
  const drop = (client: Client): void => {
    clients.delete(client.fd);
    c.close(client.fd);
    idleSince = Date.now();
  };
  // Only the very binary installed serves: an upgrade (another file at the same
  // path) or a removal ends the serving, and the launcher runs the new one.
  const stillInstalled = (): boolean => {
    try {
      return nameOf(fs.statSync(binary, { bigint: true })) === name;
    } catch {
      return false;
    }
  };

  // A client's request, once readable: answered and held, or dropped.
  const take = (client: Client): void => {
    const line = readRequest(client);
    if (line === undefined) return;
    if (line === false) return drop(client);
    if (!stillInstalled()) {
      // Closed unanswered: the launcher runs the installed netsetup itself.
      stopListening();
      return drop(client);
    }
    const held = answer(ctx, client, line);
    if (!held) return drop(client);
    serveMs = serveMsOf(held.config);
    client.request = undefined;
    client.held = held;
  };

  let checked = Date.now();
  for (;;) {
    for (const pid of supervisors) if (reap(pid)) supervisors.delete(pid);
    const now = Date.now();
    // Uninstalled or upgraded meanwhile: no new sandboxes, and gone once idle.
    if (listening !== undefined && now - checked >= CHECK_MS) {
      if (!stillInstalled()) stopListening();
      checked = now;
    }
    if (own && now >= own.handOverAt) {
      own = handOver(own, 0, 1, supervisors) ? undefined : { ...own, handOverAt: Number.POSITIVE_INFINITY };
      if (!own) forgetStdio();
    }
    for (const client of clients.values()) {
      if (client.request && now >= client.request.deadline) drop(client);
      else if (client.held && now >= client.held.handOverAt) {
        if (handOver(client.held, client.fd, client.fd, supervisors)) drop(client);
        else client.held.handOverAt = Number.POSITIVE_INFINITY;
      }
    }
    if (!own && clients.size === 0 && (listening === undefined || now - idleSince >= serveMs)) break;

    const watched: number[] = [];
    if (listening !== undefined) watched.push(listening);
    if (own) watched.push(0);
    watched.push(...clients.keys());
    const deadlines = [
      own?.handOverAt ?? Number.POSITIVE_INFINITY,
      ...[...clients.values()].map((x) => x.request?.deadline ?? x.held?.handOverAt ?? Number.POSITIVE_INFINITY),
      !own && clients.size === 0 ? idleSince + serveMs : Number.POSITIVE_INFINITY,
    ];
    const next = Math.min(...deadlines);
    const timeout = Math.max(0, Math.min(next - Date.now(), listening !== undefined ? CHECK_MS : 60_000));
    const ready = pollIn(watched, timeout);

    for (const fd of ready) {
      if (fd === listening) {
        for (let s = acceptOne(fd); s !== undefined; s = acceptOne(fd)) {
          // Only the caller's own connections are read (a user's server); the
          // rest, and any beyond the caps, are closed unread (a launcher then
          // runs its own netsetup).
          const creds = peerCredentials(s);
          const admitted = system
            ? creds !== undefined && clients.size < MAX_SYSTEM_CLIENTS && [...clients.values()].filter((x) => x.creds.uid === creds.uid).length < MAX_USER_CLIENTS
            : creds?.uid === ctx.caller.uid && clients.size < MAX_CLIENTS;
          if (!admitted || creds === undefined) {
            c.close(s);
            continue;
          }
          const client: Client = { fd: s, creds, request: { parts: [], size: 0, deadline: Date.now() + ctx.requestMs } };
          clients.set(s, client);
          // A launcher writes its request as soon as it has its pid: often there already.
          take(client);
        }
      } else if (fd === 0 && own) {
        if (ended(0)) {
          release(own, 1);
          own = undefined;
          forgetStdio();
          idleSince = Date.now();
        }
      } else {
        const client = clients.get(fd);
        if (!client) continue;
        if (client.held) {
          if (ended(fd)) {
            release(client.held, fd);
            drop(client);
          }
          continue;
        }
        take(client);
      }
    }
  }
  stopListening();
  return true;
}

/** Takes one request: the answer line, and the lease held; undefined after a
 *  refusal (its line sent). */
function answer(ctx: ServeContext, client: Client, line: string): Held | undefined {
  try {
    const argv = parseServerRequest(line);
    if (!argv) throw new NsboxError({ exit: EXIT.USAGE, what: 'request', why: 'not a netsetup request', todo: 'Install the launcher and netsetup from the same version' });
    const inv = ctx.parse(argv);
    if (inv.command !== 'connect' || typeof inv.pid !== 'number' || !inv.json || !inv.hold || inv.config !== undefined) {
      throw new NsboxError({ exit: EXIT.USAGE, what: 'request', why: 'a server takes only a launcher\'s --pid PID --json --hold', todo: 'Run netsetup itself for anything else' });
    }
    const groups = peerGroups(client.fd);
    if (!groups) throw new NsboxError({ exit: EXIT.SYSTEM, what: 'request', why: 'the groups of the connection cannot be read', todo: 'Try again' });
    const caller: Caller = { uid: client.creds.uid, gids: [...new Set([client.creds.gid, ...groups])] };
    const { config, source } = ctx.load();
    const answered = connect(config, ctx.network(config, inv.network), caller, inv.pid, inv.publish);
    const held: Held = { id: answered.lease, config, configFile: source, caller, handOverAt: Date.now() + ctx.handOverMs };
    if (!sendAll(client.fd, formatAnswer(answered, true))) {
      // The launcher cannot take its answer: the lease goes as if it had ended.
      release(held, -1);
      return undefined;
    }
    return held;
  } catch (err) {
    const known = err instanceof NsboxError;
    const message = known ? err.line('netsetup') : `netsetup: internal error: ${(err as Error)?.message ?? String(err)}. Please report this`;
    sendAll(client.fd, serverErrorLine(message, known ? (err.exit ?? EXIT.SYSTEM) : EXIT.INTERNAL));
    return undefined;
  }
}

/** Releases a held lease: marked under the lock, the releasing line to `out`
 *  (-1: nowhere), then the veth and rules. A failure leaves it to the GC. */
function release(held: Held, out: number): void {
  try {
    releaseHeld(held.config, held.caller, held.id, () => {
      if (out >= 0) sendAll(out, releasingLine(held.id, true));
    });
  } catch {
    // The record names a dead holder or a gone veth soon: the next call's GC.
  }
}

/** Hands a held lease to a supervisor child (hold.ts); false if none could start. */
function handOver(held: Held, input: number, output: number, supervisors: Set<number>): boolean {
  const pid = spawnHolder(input, output, held.id, true, held.configFile);
  if (typeof pid !== 'number') return false;
  supervisors.add(pid);
  return true;
}

/** Reads what a client has sent of its request: the line once whole, undefined
 *  while it is not, false when the client has gone or sent too much. */
function readRequest(client: Client): string | false | undefined {
  const r = client.request!;
  const buf = Buffer.alloc(8192);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(client.fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') return undefined;
      if (code === 'EINTR') continue;
      return false;
    }
    if (n === 0) return false;
    const nl = buf.subarray(0, n).indexOf(10);
    r.parts.push(Buffer.from(buf.subarray(0, nl >= 0 ? nl : n)));
    r.size += nl >= 0 ? nl : n;
    if (r.size > MAX_REQUEST) return false;
    if (nl >= 0) return Buffer.concat(r.parts).toString('utf8');
  }
}

/** Whether fd, which poll(2) found readable, has reached its end; what it reads
 *  is dropped. One read: it cannot block then, and no file flags of the
 *  caller's stdin are changed. */
function ended(fd: number): boolean {
  const buf = Buffer.alloc(256);
  try {
    return fs.readSync(fd, buf, 0, buf.length, null) === 0;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code !== 'EAGAIN' && code !== 'EINTR';
  }
}

/** Writes `text` in one go without waiting; false when it did not all fit. */
function sendAll(fd: number, text: string): boolean {
  const bytes = Buffer.from(text);
  try {
    const sent = Number(libc().send(fd, bytes, bytes.length, MSG_DONTWAIT | MSG_NOSIGNAL));
    if (sent >= 0 || errno() !== ENOTSOCK) return sent === bytes.length;
    // A pipe (the own lease's stdout) is no socket: written only if poll(2) finds
    // room now (a line fits a free pipe buffer whole), so nothing waits for it.
    return pollOut(fd) && fs.writeSync(fd, bytes) === bytes.length;
  } catch {
    return false;
  }
}
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const ENOTSOCK = 88;

/** Whether fd can be written now. */
function pollOut(fd: number): boolean {
  const buf = Buffer.alloc(8);
  buf.writeInt32LE(fd, 0);
  buf.writeInt16LE(POLLOUT, 4);
  return (libc().poll(buf, 1, 0) as number) === 1 && (buf.readInt16LE(6) & POLLOUT) !== 0;
}

/** The fds of `fds` that poll(2) finds readable (or closed) within `timeout` ms. */
function pollIn(fds: number[], timeout: number): number[] {
  const buf = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => {
    buf.writeInt32LE(fd, 8 * i);
    buf.writeInt16LE(POLLIN, 8 * i + 4);
  });
  if ((libc().poll(buf, fds.length, timeout) as number) <= 0) return [];
  return fds.filter((_, i) => buf.readInt16LE(8 * i + 6) !== 0);
}

/** /dev/null in place of fd 0 and 1: the first launcher's pipes are its own again. */
function forgetStdio(): void {
  const nul = fs.openSync('/dev/null', 'r+');
  for (const fd of [0, 1]) libc().syscall(SYSCALLS.dup3[currentArch()], 'int', nul, 'int', fd, 'int', 0);
  fs.closeSync(nul);
}

function detachStderr(): void {
  const nul = fs.openSync('/dev/null', 'w');
  libc().syscall(SYSCALLS.dup3[currentArch()], 'int', nul, 'int', 2, 'int', 0);
  fs.closeSync(nul);
}
