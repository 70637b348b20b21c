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
