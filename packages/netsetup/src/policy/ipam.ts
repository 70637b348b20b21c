// Address allocation inside a network's subnet. Pure: the subnet, the gateway and
// the addresses already leased in, the address to use out.
import { cidrRange, intToIpv4, ipv4ToInt } from '@nsbox/shared/ipv4';
import type { Network } from './config.ts';

/** The lowest host address of the subnet that is not the gateway and not in use,
 *  or undefined when the subnet is full. */
export function allocate(net: Pick<Network, 'subnet' | 'gateway'>, inUse: Iterable<string>): string | undefined {
  const { network, broadcast } = cidrRange(net.subnet);
  const taken = new Set<number>([ipv4ToInt(net.gateway)]);
  for (const a of inUse) taken.add(ipv4ToInt(a));
  for (let n = network + 1; n < broadcast; n++) if (!taken.has(n)) return intToIpv4(n);
  return undefined;
}

export function broadcastOf(net: Pick<Network, 'subnet'>): string {
  return intToIpv4(cidrRange(net.subnet).broadcast);
}

/** How many leases the subnet can hold (hosts minus the gateway). */
export function capacity(net: Pick<Network, 'subnet'>): number {
  const { network, broadcast } = cidrRange(net.subnet);
  return broadcast - network - 2;
}
