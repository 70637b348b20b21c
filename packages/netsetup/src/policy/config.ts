// The root-owned configuration: networks offered to users and their quotas.
// Pure: text in, validated Config out (where the file is and whether it can be
// trusted is trust.ts's job). The format is JSON; unknown keys are errors so a
// typo never silently weakens a limit.
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { cidrRange, intToIpv4, ipv4ToInt, isIPv4, isIPv6, overlaps } from '@nsbox/shared/ipv4';
import { OPEN_EGRESS, ordered, parseEntry, parsePortRange, type Egress, type EgressEntry, type PortRange, type Verdict } from './egress.ts';
import { DEFAULT_ISOLATION, ISOLATIONS, type Isolation } from './bridgerules.ts';

export type Backend = 'auto' | 'nft' | 'legacy';

interface Quota {
  /** uid (decimal) or "*" → maximum concurrent leases of that user. */
  users: Record<string, number>;
  /** gid (decimal) → maximum concurrent leases charged to that group. */
  groups: Record<string, number>;
}

/** What non-root callers may publish on a network's host side (root: any port, any number). */
interface PublishPolicy {
  /** Lowest host port a non-root caller may publish. */
  minPort: number;
  /** Most ports one lease of a non-root caller may publish; 0 turns publishing off for them. */
  maxPerLease: number;
  /** Host port ranges a non-root caller may publish in (with minPort); undefined: any. */
  ports?: PortRange[];
}

const DEFAULT_PUBLISH: PublishPolicy = { minPort: 1024, maxPerLease: 16 };

export interface Network {
  name: string;
  bridge: string;
  /** Canonical "a.b.c.d/len" (network address). */
  subnet: string;
  gateway: string;
  prefix: number;
  mtu: number;
  nat: boolean;
  dns: string[];
  quota: Quota;
  publish: PublishPolicy;
  /** What its sandboxes may connect to through the host (egress.ts). */
  egress: Egress;
  /** Whose sandboxes reach each other directly: "user" (the default) only the
   *  same user's; "none" all (the bridge filter, bridgerules.ts). */
  isolation: Isolation;
  /** Every subnet of the configuration (parseConfig fills it in; without it,
   *  only this network's): a sandbox of any of them reaching one of this
   *  network's published ports through the host is masqueraded (hairpin). */
  subnets?: string[];
}

export interface Config {
  stateDir: string;
  iptables: Backend;
  /** How long a user's netsetup goes on taking that user's next sandboxes after
   *  its last one (serve.ts), in seconds; 0: never, one netsetup per sandbox. */
  serveSeconds: number;
  networks: Network[];
}

export const DEFAULT_SERVE_SECONDS = 30;
const MAX_SERVE_SECONDS = 3600;

export const DEFAULT_CONFIG_TEXT = `${JSON.stringify(
  {
    stateDir: '/run/nsbox',
    iptables: 'auto',
    serveSeconds: DEFAULT_SERVE_SECONDS,
    networks: [
      {
        name: 'default',
        bridge: 'nsbox0',
        subnet: '10.200.200.0/24',
        gateway: '10.200.200.1',
        mtu: 1500,
        nat: true,
        dns: [],
        quota: { users: { '*': 8 }, groups: {} },
        publish: DEFAULT_PUBLISH,
        isolation: DEFAULT_ISOLATION,
      },
    ],
  },
  null,
  2,
)}\n`;

const configError = (source: string, why: string): NsboxError =>
  new NsboxError({ exit: EXIT.CONFIG, what: `configuration ${source}`, why, todo: 'Fix the file (see packages/netsetup/README.md) as root' });

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyKeys(source: string, where: string, o: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw configError(source, `${where}: unknown key "${k}"`);
}

const IFNAME = /^[A-Za-z][A-Za-z0-9_-]{0,14}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export function parseConfig(text: string, source: string): Config {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError(source, `not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(raw)) throw configError(source, 'the top level must be an object');
  onlyKeys(source, 'top level', raw, ['stateDir', 'iptables', 'serveSeconds', 'networks']);
  const stateDir = raw.stateDir ?? '/run/nsbox';
  if (typeof stateDir !== 'string' || !/^\/[A-Za-z0-9_.\/-]*$/.test(stateDir) || stateDir.split('/').includes('..') || stateDir === '/') {
    throw configError(source, 'stateDir must be an absolute path (letters, digits, _ . - /), not /');
  }
  const iptables = raw.iptables ?? 'auto';
  if (iptables !== 'auto' && iptables !== 'nft' && iptables !== 'legacy') {
    throw configError(source, 'iptables must be "auto", "nft" or "legacy"');
  }
  const serveSeconds = raw.serveSeconds ?? DEFAULT_SERVE_SECONDS;
  if (!Number.isInteger(serveSeconds) || (serveSeconds as number) < 0 || (serveSeconds as number) > MAX_SERVE_SECONDS) {
    throw configError(source, `serveSeconds must be a whole number of seconds from 0 to ${MAX_SERVE_SECONDS}`);
  }
  if (!Array.isArray(raw.networks) || raw.networks.length === 0) throw configError(source, 'networks must be a non-empty array');
  const networks = raw.networks.map((n, i) => parseNetwork(source, `networks[${i}]`, n));
  for (let i = 0; i < networks.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = networks[i]!;
      const b = networks[j]!;
      if (a.name === b.name) throw configError(source, `two networks are named "${a.name}"`);
      if (a.bridge === b.bridge) throw configError(source, `networks "${a.name}" and "${b.name}" use the same bridge`);
      if (overlaps(a.subnet, b.subnet)) throw configError(source, `the subnets of "${a.name}" and "${b.name}" overlap`);
    }
  }
  const subnets = networks.map((n) => n.subnet);
  return { stateDir: stateDir.replace(/\/+$/, ''), iptables, serveSeconds: serveSeconds as number, networks: networks.map((n) => ({ ...n, subnets })) };
}

function parseNetwork(source: string, where: string, n: unknown): Network {
  if (!isObject(n)) throw configError(source, `${where} must be an object`);
  onlyKeys(source, where, n, ['name', 'bridge', 'subnet', 'gateway', 'mtu', 'nat', 'dns', 'quota', 'publish', 'egress', 'isolation']);
  const name = n.name ?? 'default';
  if (typeof name !== 'string' || !NAME.test(name)) throw configError(source, `${where}.name must match ${NAME}`);
  if (typeof n.bridge !== 'string' || !IFNAME.test(n.bridge)) {
    throw configError(source, `${where}.bridge must be an interface name of 1-15 characters (letters, digits, _ -)`);
  }
  if (typeof n.subnet !== 'string' || !/^[^/]+\/(0|[1-9][0-9]?)$/.test(n.subnet) || !isIPv4(n.subnet.split('/')[0]!) || Number(n.subnet.split('/')[1]) > 32) {
    throw configError(source, `${where}.subnet must be an IPv4 CIDR such as 10.200.200.0/24`);
  }
  const prefix = Number(n.subnet.split('/')[1]);
  if (prefix < 8 || prefix > 29) throw configError(source, `${where}.subnet: the prefix length must be between 8 and 29`);
  const { network, broadcast } = cidrRange(n.subnet);
  const subnet = `${intToIpv4(network)}/${prefix}`;
  const gatewayText = n.gateway ?? intToIpv4(network + 1);
  if (typeof gatewayText !== 'string' || !isIPv4(gatewayText)) {
    throw configError(source, `${where}.gateway must be an IPv4 address`);
  }
  const gw = ipv4ToInt(gatewayText);
  if (gw <= network || gw >= broadcast) {
    throw configError(source, `${where}.gateway must be a host address inside ${subnet}`);
  }
  const mtu = n.mtu ?? 1500;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535) {
    throw configError(source, `${where}.mtu must be an integer from 576 to 65535`);
  }
  const nat = n.nat ?? true;
  if (typeof nat !== 'boolean') throw configError(source, `${where}.nat must be true or false`);
  const dns = n.dns ?? [];
  if (!Array.isArray(dns) || dns.some((d) => typeof d !== 'string' || !(isIPv4(d) || isIPv6(d)))) {
    throw configError(source, `${where}.dns must be an array of IP addresses`);
  }
  const isolation = n.isolation ?? DEFAULT_ISOLATION;
  if (typeof isolation !== 'string' || !(ISOLATIONS as readonly string[]).includes(isolation)) {
    throw configError(source, `${where}.isolation must be ${ISOLATIONS.map((i) => `"${i}"`).join(' or ')}`);
  }
  return {
    name,
    bridge: n.bridge,
    subnet,
    gateway: intToIpv4(gw),
    prefix,
    mtu,
    nat,
    dns: dns as string[],
    quota: parseQuota(source, `${where}.quota`, n.quota ?? { users: { '*': 8 } }),
    publish: parsePublishPolicy(source, `${where}.publish`, n.publish ?? {}),
    egress: n.egress === undefined ? OPEN_EGRESS : parseEgress(source, `${where}.egress`, n.egress),
    isolation: isolation as Isolation,
    subnets: [subnet],
  };
}

function parsePublishPolicy(source: string, where: string, p: unknown): PublishPolicy {
  if (!isObject(p)) throw configError(source, `${where} must be an object`);
  onlyKeys(source, where, p, ['minPort', 'maxPerLease', 'ports']);
  const int = (key: 'minPort' | 'maxPerLease', min: number, max: number): number => {
    const v = p[key] ?? DEFAULT_PUBLISH[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw configError(source, `${where}.${key} must be an integer from ${min} to ${max}`);
    return v;
  };
  const policy: PublishPolicy = { minPort: int('minPort', 1, 65535), maxPerLease: int('maxPerLease', 0, 65535) };
  if (p.ports === undefined) return policy;
  const ranges = Array.isArray(p.ports) && p.ports.length <= MAX_LIST ? p.ports.map((r) => (typeof r === 'string' ? parsePortRange(r) : undefined)) : [undefined];
  if (ranges.some((r) => r === undefined)) {
    throw configError(source, `${where}.ports must be a list of at most ${MAX_LIST} port ranges such as "8000-8999" or "443"`);
  }
  return { ...policy, ports: ranges as PortRange[] };
}

/** At most this many entries in a list (each becomes a rule). */
const MAX_LIST = 256;

function parseEgress(source: string, where: string, e: unknown): Egress {
  if (!isObject(e)) throw configError(source, `${where} must be an object`);
  onlyKeys(source, where, e, ['allow', 'deny', 'default']);
  const verdict = e.default ?? 'allow';
  if (verdict !== 'allow' && verdict !== 'deny') throw configError(source, `${where}.default must be "allow" or "deny"`);
  const entries: EgressEntry[] = [];
  for (const key of ['allow', 'deny'] as Verdict[]) {
    const list = e[key] ?? [];
    if (!Array.isArray(list) || list.length > MAX_LIST || list.some((x) => typeof x !== 'string')) {
      throw configError(source, `${where}.${key} must be a list of at most ${MAX_LIST} strings`);
    }
    for (const text of list as string[]) {
      const entry = parseEntry(key, text);
      if (typeof entry === 'string') throw configError(source, `${where}.${key}: ${entry}`);
      entries.push(entry);
    }
  }
  return { entries: ordered(entries), default: verdict };
}

function parseQuota(source: string, where: string, q: unknown): Quota {
  if (!isObject(q)) throw configError(source, `${where} must be an object`);
  onlyKeys(source, where, q, ['users', 'groups']);
  const table = (key: 'users' | 'groups'): Record<string, number> => {
    const t = q[key] ?? {};
    if (!isObject(t)) throw configError(source, `${where}.${key} must be an object`);
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(t)) {
      const idOk = /^(0|[1-9][0-9]{0,9})$/.test(k) && Number(k) < 2 ** 32 - 1;
      if (!(idOk || (key === 'users' && k === '*'))) {
        throw configError(source, `${where}.${key}: "${k}" must be a numeric ${key === 'users' ? 'uid or "*"' : 'gid'}`);
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 65535) {
        throw configError(source, `${where}.${key}.${k} must be an integer from 0 to 65535`);
      }
      out[k] = v;
    }
    return out;
  };
  return { users: table('users'), groups: table('groups') };
}

export function findNetwork(config: Config, name: string | undefined): Network | undefined {
  return name === undefined ? config.networks[0] : config.networks.find((n) => n.name === name);
}
