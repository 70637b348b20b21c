// Which host ports a caller may publish to their sandbox. Pure: the network's
// policy, the caller, the requested ports and the facts about the host (live
// leases, its addresses, its bound sockets) in; nothing out, or the one error
// that says which port is refused and what to do. Checked before anything is
// created, so a refused request leaves no lease, veth or rule behind.
// The rules that do the publishing are in firewall.ts.
import { ANY_ADDRESS, formatPublish, type Protocol, type PublishSpec } from '@nsbox/shared/publish';
import type { Network } from './config.ts';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import type { Caller, Lease } from './leases.ts';

/** A socket bound on the host (kernel/sockets.ts reads them). */
export interface BoundSocket {
  protocol: Protocol;
  /** The IPv4 address it receives on; 0.0.0.0 for a wildcard (IPv4 or dual-stack IPv6). */
  address: string;
  port: number;
}

export interface HostFacts {
  /** IPv4 addresses on the host's interfaces. */
  addresses: string[];
  /** Listening TCP and unconnected UDP sockets of the host. */
  sockets: BoundSocket[];
}

/** Two publications take the same traffic: same protocol and host port, and the
 *  same address or either on every address. */
export function clash(a: Pick<PublishSpec, 'hostAddress' | 'hostPort' | 'protocol'>, b: Pick<PublishSpec, 'hostAddress' | 'hostPort' | 'protocol'>): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && (a.hostAddress === b.hostAddress || a.hostAddress === ANY_ADDRESS || b.hostAddress === ANY_ADDRESS);
}

const isLoopback = (address: string): boolean => address.startsWith('127.');

export function admitPublish(net: Network, caller: Caller, specs: PublishSpec[], leases: Lease[], host: HostFacts): void {
  const root = caller.uid === 0;
  const { minPort, maxPerLease } = net.publish;
  const refuse = (code: (typeof EXIT)[keyof typeof EXIT], s: PublishSpec, why: string, todo: string): never => {
    throw new NsboxError({ exit: code, what: `publish ${formatPublish(s)}`, why, todo: todo });
  };

  specs.forEach((s, i) => {
    const earlier = specs.slice(0, i).find((e) => clash(e, s));
    if (earlier) refuse(EXIT.USAGE, s, `host port ${s.hostPort}/${s.protocol} is also in publish ${formatPublish(earlier)}`, 'Give each host port once');
  });
  if (!root && specs.length > 0 && maxPerLease === 0) {
    throw new NsboxError({ exit: EXIT.DENIED, what: `network "${net.name}"`, why: 'it lets only root publish ports (publish.maxPerLease is 0)', todo: 'Ask the administrator to raise publish.maxPerLease in the configuration' });
  }
  if (!root && specs.length > maxPerLease) {
    throw new NsboxError({ exit: EXIT.QUOTA, what: `network "${net.name}"`, why: `${specs.length} ports requested, a sandbox may publish at most ${maxPerLease}`, todo: 'Publish fewer ports or ask the administrator to raise publish.maxPerLease' });
  }
  for (const s of specs) {
    if (isLoopback(s.hostAddress)) {
      refuse(EXIT.DENIED, s, "publishing on the host's loopback (127.0.0.0/8) is not supported", 'Leave the address out (every address of the host) or give another address of the host');
    }
    if (!root && s.hostPort < minPort) {
      refuse(
        EXIT.DENIED,
        s,
        `host port ${s.hostPort} is below ${minPort}, the lowest port network "${net.name}" lets users other than root publish`,
        `Publish a host port from ${minPort} up, or ask the administrator to lower publish.minPort of network "${net.name}" in the configuration`,
      );
    }
    if (s.hostAddress !== ANY_ADDRESS && !host.addresses.includes(s.hostAddress)) {
      refuse(EXIT.DENIED, s, `${s.hostAddress} is not an address of this host`, "Give one of the host's addresses (ip -4 addr), or none for all of them");
    }
  }
  for (const s of specs) {
    for (const l of leases) {
      const other = l.published.find((p) => clash(p, s));
      if (other) {
        const whose = l.uid === caller.uid ? `your lease ${l.id}` : 'another sandbox';
        refuse(EXIT.CONFLICT, s, `host port ${s.hostPort}/${s.protocol} is already published by ${whose} (${formatPublish(other)})`, 'Choose another host port');
      }
    }
    const bound = host.sockets.find((b) => clash({ ...b, hostPort: b.port, hostAddress: b.address }, s) && !isLoopback(b.address));
    if (bound) {
      refuse(EXIT.CONFLICT, s, `host port ${s.hostPort}/${s.protocol} is in use on the host (a socket is bound to ${bound.address}:${bound.port})`, 'Choose another host port');
    }
  }
}
