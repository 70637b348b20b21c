// The files the sandbox gets in /etc (pure): its hostname, a hosts file naming it,
// and a resolv.conf with DNS servers it can reach. They are mounted over the
// rootfs's files, never written into the rootfs.

export const ETC_FILES = ['hostname', 'hosts', 'resolv.conf'] as const;
export type EtcFile = (typeof ETC_FILES)[number];

/** Room reserved in the stub's program for each file's content. */
export const ETC_CAPACITY: Record<EtcFile, number> = { hostname: 80, hosts: 512, 'resolv.conf': 2048 };

export function hostnameFile(hostname: string): string {
  return `${hostname}\n`;
}

/** localhost, and the sandbox's own name on its address (127.0.1.1 without a network). */
export function hostsFile(hostname: string, address: string | undefined): string {
  const short = hostname.split('.')[0]!;
  const names = short === hostname ? hostname : `${hostname} ${short}`;
  return `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${address ?? '127.0.1.1'}\t${names}\n`;
}

export interface Resolver {
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

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const isIPv4 = (a: string): boolean => IPV4.test(a) && a.split('.').every((o) => Number(o) <= 255);
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
