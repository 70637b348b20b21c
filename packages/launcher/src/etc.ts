// The sandbox's /etc: its hostname, a hosts file naming it, and a resolv.conf with
// DNS servers it can reach. Which files, their contents (pure, but for reading the
// host's resolv.conf files in etcContents), and the steps that put them in place,
// mounted over the rootfs's files, never written into the rootfs on disk. The
// contents are filled into the stub's program just before it is released (the
// address is only known once netsetup has run).
import fs from 'node:fs';
import type { Step } from '@nsbox/shared/program';
import { AT_FDCWD, MS_BIND, O_CLOEXEC, O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY } from '@nsbox/shared/syscalls';
import { isIPv4 } from '@nsbox/shared/ipv4';
import type { Options } from './options.ts';
import type { Facts } from './rootfs.ts';
import { isUnder, mount, str } from './steps.ts';

export const ETC_FILES = ['hostname', 'hosts', 'resolv.conf'] as const;
export type EtcFile = (typeof ETC_FILES)[number];

/** Room reserved in the stub's program for each file's content. */
const ETC_CAPACITY: Record<EtcFile, number> = { hostname: 80, hosts: 512, 'resolv.conf': 2048 };

function hostnameFile(hostname: string): string {
  return `${hostname}\n`;
}

/** localhost, and the sandbox's own name on its address (127.0.1.1 without a network). */
export function hostsFile(hostname: string, address: string | undefined): string {
  const short = hostname.split('.')[0]!;
  const names = short === hostname ? hostname : `${hostname} ${short}`;
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${address ?? '127.0.1.1'}\t${names}\n`;
}

interface Resolver {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): Resolver {
  const r: Resolver = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...values] = line.split(/\s+/);
    if (key === 'nameserver' && values[0]) r.nameservers.push(values[0]);
    else if (key === 'search' || key === 'domain') r.search = values;
    else if (key === 'options') r.options.push(...values);
  }
  return r;
}

const isLoopback = (a: string): boolean => a.startsWith('127.');

/**
 * The sandbox's resolv.conf. Servers come from the network's configuration if it
 * names any, else from the host's resolv.conf. A host resolver on 127.0.0.0/8
 * (systemd-resolved's 127.0.0.53, a local dnsmasq) is the host's own loopback and
 * unreachable from the sandbox, so it is replaced by the upstream servers that
 * resolver uses (`upstream`: the contents of e.g. /run/systemd/resolve/resolv.conf).
 * The sandbox has IPv4 only, so IPv6 servers are left out.
 */
export function resolvConf(networkDns: string[], host: string | undefined, upstream: (string | undefined)[]): string {
  const hostResolver = parseResolvConf(host ?? '');
  let servers = networkDns.filter(isIPv4);
  let source = 'the network configuration';
  if (servers.length === 0) {
    servers = hostResolver.nameservers.filter((s) => isIPv4(s) && !isLoopback(s));
    source = "the host's resolv.conf";
    if (servers.length === 0 && hostResolver.nameservers.some(isLoopback)) {
      for (const text of upstream) {
        servers = parseResolvConf(text ?? '').nameservers.filter((s) => isIPv4(s) && !isLoopback(s));
        if (servers.length > 0) {
          source = "the upstream servers of the host's local resolver";
          break;
        }
      }
    }
  }
  const lines = [`# written by the launcher from ${source}`];
  if (servers.length === 0) lines[0] = '# no DNS server reachable from the sandbox is known: set "dns" in netsetup.conf';
  for (const s of servers.slice(0, 3)) lines.push(`nameserver ${s}`);
  if (hostResolver.search.length > 0) lines.push(`search ${hostResolver.search.join(' ')}`);
  const options = hostResolver.options.filter((o) => o !== 'trust-ad');
  if (options.length > 0) lines.push(`options ${options.join(' ')}`);
  return `${lines.join('\n')}\n`.slice(0, ETC_CAPACITY['resolv.conf']);
}

/** The files of /etc the launcher provides: hostname and hosts always, resolv.conf with a network. */
function etcFilesFor(opts: Options): EtcFile[] {
  return opts.net === 'none' ? ['hostname', 'hosts'] : ['hostname', 'hosts', 'resolv.conf'];
}

/** The files of /etc the launcher provides that the rootfs lacks, and that no user
 *  mount covers: the plan puts an overlay on /etc for them (see plan.ts). */
export function etcMissing(opts: Options, facts: Facts): EtcFile[] {
  const { dir, files } = facts.etc;
  if (!dir.exists || !dir.isDir) return [];
  return wantedFiles(opts).filter((f) => {
    const fact = files.get(f)!;
    return !fact.exists || fact.isDir;
  });
}

function wantedFiles(opts: Options): EtcFile[] {
  const covered = (p: string): boolean => opts.mounts.some((m) => isUnder(p, m.target));
  return etcFilesFor(opts).filter((f) => !covered(`/etc/${f}`));
}

/**
 * /etc/hostname, /etc/hosts and /etc/resolv.conf without touching the rootfs on
 * disk. A file the rootfs has gets a bind mount of a file made in the /dev tmpfs
 * (then unlinked there). The missing ones (etcMissing) are created in /etc when it
 * is an overlay with a tmpfs on top (`overlaid`: the plan made it so). The
 * contents are slots named after the files, filled in before release (the address
 * is only known once netsetup has run). A user mount on /etc or on the file itself
 * wins.
 */
export function etcSteps(opts: Options, facts: Facts, dev: string, overlaid: boolean): Step[] {
  const { dir, files } = facts.etc;
  if (!dir.exists || !dir.isDir) return [];
  const steps: Step[] = [];
  const write = (f: EtcFile, at: string, flags: number): Step[] => [
    { what: `create /etc/${f}`, call: 'openat', args: [AT_FDCWD, str(at), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW | flags, 0o644], save: true },
    { what: `write /etc/${f}`, call: 'write', args: ['saved', { slot: f, capacity: ETC_CAPACITY[f] }, { slotLength: f }] },
    { what: `write /etc/${f}`, call: 'close', args: ['saved'] },
  ];
  const missing = etcMissing(opts, facts);
  for (const f of wantedFiles(opts).filter((x) => !missing.includes(x))) {
    const staged = `${dev}/.nsbox-${f}`;
    steps.push(
      ...write(f, staged, 0),
      mount(`bind /etc/${f}`, staged, files.get(f)!.hostPath, null, MS_BIND),
      { what: `bind /etc/${f}`, call: 'unlinkat', args: [AT_FDCWD, str(staged), 0] },
    );
  }
  if (!overlaid) return steps;
  for (const f of missing) {
    const at = `${dir.hostPath}/${f}`;
    // A dangling symlink (resolv.conf -> /run/...) is replaced, never followed.
    steps.push({ what: `replace /etc/${f}`, call: 'unlinkat', args: [AT_FDCWD, str(at), 0], soft: true }, ...write(f, at, 0));
  }
  return steps;
}

/** What goes into each file of etcFilesFor(opts), given the network's lease (none without a network). */
export function etcContents(opts: Options, lease: { address: string; dns: string[] } | undefined): [EtcFile, string][] {
  return etcFilesFor(opts).map((file) => {
    if (file === 'hostname') return [file, hostnameFile(opts.hostname)];
    if (file === 'hosts') return [file, hostsFile(opts.hostname, lease?.address)];
    return [file, resolvConf(lease?.dns ?? [], readIfAny('/etc/resolv.conf'), UPSTREAM_RESOLVERS.map(readIfAny))];
  });
}

/** Where local resolvers keep the upstream servers they forward to. */
const UPSTREAM_RESOLVERS = ['/run/systemd/resolve/resolv.conf', '/run/NetworkManager/no-stub-resolv.conf'];

function readIfAny(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
