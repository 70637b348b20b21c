// The contract between the launcher and netsetup, in one place for both sides:
// how the launcher runs netsetup (argv and environment), the answer netsetup
// prints for a connected sandbox, and the line that says its lease is being
// released. A change here changes both programs together.
import { formatPublish, type PublishSpec } from './publish.ts';

/** The environment the launcher gives netsetup, and netsetup's own PATH: a setuid
 *  netsetup re-executes itself on anything but inert variables (docs/security.md). */
export const NETSETUP_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
export const NETSETUP_ENV: Record<string, string> = { PATH: NETSETUP_PATH };

/** The interface a sandbox's veth end gets. */
export const SANDBOX_IFNAME = 'eth0';

/** `netsetup --pid - --json --hold [--publish SPEC]...`: netsetup starts before the
 *  sandbox exists, reads its pid from the first line of stdin, prints an Answer,
 *  holds the lease until stdin reaches end-of-file, and then prints a Releasing line.
 *  With `pid`, `--pid PID` (see noWaitSlotLine). */
export function holdArgs(publish: string[], pid: number | '-' = '-'): string[] {
  const args = ['--pid', String(pid), '--json', '--hold'];
  for (const p of publish) args.push('--publish', p);
  return args;
}

/** What netsetup answers for a connected sandbox (`--json`, one line). */
export interface Answer {
  lease: string;
  network: string;
  pid: number;
  interface: string;
  address: string;
  prefix: number;
  cidr: string;
  gateway: string;
  mtu: number;
  dns: string[];
  bridge: string;
  hostVeth: string;
  /** Host ports forwarded to `address`, in the order asked for. */
  published: PublishSpec[];
}

/** The answer's line, `--json` or for people. */
export function formatAnswer(a: Answer, json: boolean): string {
  if (json) return `${JSON.stringify(a)}\n`;
  const published = a.published.length > 0 ? `, published ${a.published.map(formatPublish).join(',')}` : '';
  return `${a.interface} ${a.cidr} via ${a.gateway} mtu ${a.mtu} on ${a.bridge} (host ${a.hostVeth}, lease ${a.lease}${published})\n`;
}

/** The answer from netsetup's `--json` line, or undefined when the line is not one
 *  (a netsetup of another version). */
export function parseAnswer(line: string): Answer | undefined {
  try {
    const a = JSON.parse(line) as Answer;
    if (typeof a?.address !== 'string' || typeof a.lease !== 'string') return undefined;
    a.dns ??= [];
    a.published ??= [];
    return a;
  } catch {
    return undefined;
  }
}

/** The holder's second line: the lease is marked as being released, so every
 *  later netsetup call already treats it as gone and the launcher may exit. */
export function releasingLine(lease: string, json: boolean): string {
  return json ? `${JSON.stringify({ releasing: lease })}\n` : `releasing ${lease}\n`;
}

/** netsetup's only line (`--json`) when a `--pid -` finds all of its caller's
 *  wait slots taken: it has done nothing and exits 4 without a message on stderr
 *  (the caller's terminal), so that a launcher can run `netsetup --pid PID`
 *  instead, which waits for nothing, once the pid exists. */
export function noWaitSlotLine(max: number): string {
  return `${JSON.stringify({ noWaitSlot: max })}\n`;
}

/** Whether netsetup's line is noWaitSlotLine(). */
export function isNoWaitSlot(line: string): boolean {
  try {
    return Number.isInteger((JSON.parse(line) as { noWaitSlot?: unknown })?.noWaitSlot);
  } catch {
    return false;
  }
}

/**
 * The abstract socket on which a user's netsetup server takes that user's next
 * sandboxes (packages/netsetup/src/serve.ts): one per user and per installed
 * binary, named after its device, inode and modification time, so that another
 * install, or an upgrade, never reaches a server of another binary.
 */
export function serverName(uid: number, binary: { dev: bigint; ino: bigint; mtimeNs: bigint }): string {
  return `nsbox-netsetup/${uid}/${binary.dev}/${binary.ino}/${binary.mtimeNs}`;
}

/**
 * The abstract socket of a netsetup that serves every user (`netsetup serve`,
 * run by root, e.g. as a service): one per installed binary, like serverName.
 * "all" is no uid, so it never meets a user's server.
 */
export function systemServerName(binary: { dev: bigint; ino: bigint; mtimeNs: bigint }): string {
  return `nsbox-netsetup/all/${binary.dev}/${binary.ino}/${binary.mtimeNs}`;
}

/** The launcher's one request to a server: the arguments it would have given a
 *  netsetup it ran (holdArgs with the pid, and --network), as one JSON line. */
export function serverRequest(args: string[]): string {
  return `${JSON.stringify({ argv: args })}\n`;
}

/** The arguments of a request line, or undefined when it is not one. */
export function parseServerRequest(line: string): string[] | undefined {
  try {
    const argv = (JSON.parse(line) as { argv?: unknown })?.argv;
    return Array.isArray(argv) && argv.every((a) => typeof a === 'string') ? argv : undefined;
  } catch {
    return undefined;
  }
}

/** A server's refusal: the line a netsetup run by the launcher would have
 *  written to the launcher's stderr, and its exit code. */
export function serverErrorLine(message: string, exit: number): string {
  return `${JSON.stringify({ error: message, exit })}\n`;
}

/** The refusal in a server's line, or undefined when the line is not one. */
export function parseServerError(line: string): { error: string; exit: number } | undefined {
  try {
    const e = JSON.parse(line) as { error?: unknown; exit?: unknown };
    return typeof e?.error === 'string' && Number.isInteger(e.exit) ? { error: e.error, exit: e.exit as number } : undefined;
  } catch {
    return undefined;
  }
}
