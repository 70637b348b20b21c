// Unix stream sockets in the abstract namespace, through koffi, synchronous:
// what the launcher and a user's netsetup server (packages/netsetup/src/serve.ts)
// talk over. An abstract name belongs to the network namespace and to whoever
// binds it first, with no file permissions: so neither side trusts the name,
// each checks the other's credentials as the kernel recorded them at connect()
// (SO_PEERCRED, SO_PEERGROUPS).
import { libc, errno } from './libc.ts';
import { SOCK_CLOEXEC } from './syscalls.ts';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERGROUPS = 59;
const SHUT_WR = 1;
const ERANGE = 34;
/** sun_path's size: the name, after its leading NUL, fits in 107 bytes. */
const SUN_PATH = 108;

/** struct sockaddr_un for an abstract name, and the length that names it exactly
 *  (an abstract name is its bytes up to the length, NULs included). */
function abstractAddress(name: string): { addr: Buffer; len: number } {
  const bytes = Buffer.from(name);
  if (bytes.length + 1 > SUN_PATH) throw new Error(`abstract socket name too long: ${name}`);
  const addr = Buffer.alloc(2 + SUN_PATH);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 3);
  return { addr, len: 3 + bytes.length };
}

/** A socket connected to `name`; undefined when nobody listens there (or the
 *  socket cannot be made: the caller goes its other way). */
export function connectAbstract(name: string): number | undefined {
  const c = libc();
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) return undefined;
  const { addr, len } = abstractAddress(name);
  if (c.connect(fd, addr, len) !== 0) {
    c.close(fd);
    return undefined;
  }
  return fd;
}

/** A non-blocking listening socket bound to `name`; undefined when the name is taken. */
export function listenAbstract(name: string, backlog: number): number | undefined {
  const c = libc();
  const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
  if (fd < 0) return undefined;
  const { addr, len } = abstractAddress(name);
  if (c.bind(fd, addr, len) !== 0 || c.listen(fd, backlog) !== 0) {
    c.close(fd);
    return undefined;
  }
  return fd;
}

/** The next pending connection (non-blocking, close-on-exec), or undefined. */
export function acceptOne(fd: number): number | undefined {
  const s = libc().accept4(fd, null, null, SOCK_CLOEXEC | SOCK_NONBLOCK) as number;
  return s >= 0 ? s : undefined;
}

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** Who connected (or listened), as the kernel recorded it at connect() time. */
export function peerCredentials(fd: number): PeerCredentials | undefined {
  const buf = Buffer.alloc(12);
  const len = [12];
  if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0) return undefined;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/** The peer's supplementary groups at connect() time. */
export function peerGroups(fd: number): number[] | undefined {
  for (let room = 64; room <= 65536; room *= 4) {
    const buf = Buffer.alloc(room * 4);
    const len = [buf.length];
    if (libc().getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, len) === 0) {
      return Array.from({ length: len[0]! / 4 }, (_, i) => buf.readUInt32LE(i * 4));
    }
    if (errno() !== ERANGE) return undefined;
  }
  return undefined;
}

/** Ends our side's writing: the peer reads EOF, and we can still read its answer. */
export function shutdownWrite(fd: number): void {
  libc().shutdown(fd, SHUT_WR);
}
