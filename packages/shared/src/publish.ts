// The syntax of a published port, `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]`, shared by
// the launcher (`-p`) and netsetup (`--publish`), which receives the launcher's
// text verbatim. Pure: text in, a PublishSpec or a one-line explanation out.
// Whether a user may publish it is netsetup's decision, not this module's.
import { isIPv4 } from './ipv4.ts';

export type Protocol = 'tcp' | 'udp';

export interface PublishSpec {
  /** The host address the port is published on; '0.0.0.0' = every address of the host. */
  hostAddress: string;
  hostPort: number;
  /** The port inside the sandbox. */
  port: number;
  protocol: Protocol;
}

export const ANY_ADDRESS = '0.0.0.0';
export const PUBLISH_SYNTAX = '[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]';

export class PublishSyntaxError extends Error {
  /** The text as given. */
  spec: string;
  /** What is wrong with it, without the spec. */
  reason: string;
  constructor(spec: string, reason: string) {
    super(`-p ${spec}: ${reason}`);
    this.name = 'PublishSyntaxError';
    this.spec = spec;
    this.reason = reason;
  }
}

const PORT = /^[1-9][0-9]{0,4}$/;

function port(spec: string, text: string, which: string): number {
  const n = PORT.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new PublishSyntaxError(spec, `${which} ${JSON.stringify(text)} is not a port number from 1 to 65535`);
  return n;
}

function ipv4(spec: string, text: string): string {
  if (!isIPv4(text)) {
    throw new PublishSyntaxError(spec, `host address ${JSON.stringify(text)} is not an IPv4 address such as 192.0.2.10`);
  }
  return text;
}

/** Parses `[HOSTIP:]HOSTPORT:PORT[/tcp|/udp]` (protocol tcp when omitted). */
export function parsePublish(spec: string): PublishSpec {
  const expected = `expected ${PUBLISH_SYNTAX}, e.g. 8080:80 or 192.0.2.10:5353:53/udp`;
  if (spec.includes('[') || spec.split(':').length > 3) {
    throw new PublishSyntaxError(spec, `IPv6 host addresses are not supported; give an IPv4 address or none (${PUBLISH_SYNTAX})`);
  }
  const slash = spec.indexOf('/');
  const body = slash < 0 ? spec : spec.slice(0, slash);
  const protoText = slash < 0 ? 'tcp' : spec.slice(slash + 1);
  if (protoText !== 'tcp' && protoText !== 'udp') {
    throw new PublishSyntaxError(spec, `protocol ${JSON.stringify(protoText)} is not tcp or udp`);
  }
  const parts = body.split(':');
  if (parts.length < 2 || parts.some((p) => p === '')) throw new PublishSyntaxError(spec, expected);
  const [hostText, hostPortText, portText] = parts.length === 3 ? (parts as [string, string, string]) : [undefined, parts[0]!, parts[1]!];
  if (![hostPortText, portText].every((p) => /^[0-9]+$/.test(p))) throw new PublishSyntaxError(spec, expected);
  return {
    hostAddress: hostText === undefined ? ANY_ADDRESS : ipv4(spec, hostText),
    hostPort: port(spec, hostPortText, 'host port'),
    port: port(spec, portText, 'port'),
    protocol: protoText,
  };
}

/** The canonical text of a spec: parsePublish(formatPublish(s)) equals s. */
export function formatPublish(s: PublishSpec): string {
  return `${s.hostAddress === ANY_ADDRESS ? '' : `${s.hostAddress}:`}${s.hostPort}:${s.port}/${s.protocol}`;
}
