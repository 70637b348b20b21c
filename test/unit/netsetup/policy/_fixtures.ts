// Shared by the policy unit tests: a network with quotas, one with a publish
// policy, and lease records built from a few fields.
import { parseConfig } from '../../../../packages/netsetup/src/policy/config.ts';
import type { Lease } from '../../../../packages/netsetup/src/policy/leases.ts';
import { parsePublish } from '../../../../packages/shared/src/publish.ts';

export const quotaConfig = parseConfig(
  JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', quota: { users: { '1000': 2, '*': 1 }, groups: { '500': 3 } } }] }),
  'test',
);
export const quotaNet = quotaConfig.networks[0]!;

export const pubConfig = parseConfig(JSON.stringify({ networks: [{ name: 'n', bridge: 'nstest0', subnet: '10.231.0.0/24', publish: { minPort: 2000, maxPerLease: 3 } }] }), 'test');
export const pubNet = pubConfig.networks[0]!;

let next = 0;

/** A ready lease of `uid` with the next id, address, MAC, ifindex and pid. */
export const lease = (uid: number, extra: Partial<Lease> = {}): Lease => {
  const id = (next++).toString(16).padStart(8, '0');
  return { id, network: 'n', uid, groups: [], address: `10.231.0.${next + 1}`, hostVeth: `nsb${id}`, mac: `02:00:00:00:00:${(next & 255).toString(16).padStart(2, '0')}`, hostIndex: 100 + next, pid: 1000 + next, state: 'ready', created: '', published: [], ...extra };
};

/** A ready lease with published ports ("8080:80" ...). */
export const pubLease = (id: string, address: string, published: string[], uid = 1000): Lease => ({
  id,
  network: 'n',
  uid,
  groups: [],
  address,
  hostVeth: `nsb${id}`,
  hostIndex: 7,
  pid: 99,
  state: 'ready',
  created: '',
  published: published.map(parsePublish),
});
