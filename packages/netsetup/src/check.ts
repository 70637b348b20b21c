// netsetup check, the bridge filter's part: the tables as they must be, and
// every live lease's port bound exactly as its record says.
import { checkTables, tableMissing } from './kernel/bridgefilter.ts';
import { HOST_SCOPE } from './policy/bridgerules.ts';
import type { Config } from './policy/config.ts';
import { begin, end, leaseBinding, withCall } from './records.ts';

/**
 * What is wrong with the bridge filter, in words (empty: nothing). Before any
 * bridge of the configuration exists, or while no lease is live, a missing
 * table is no problem: it is made with the first bridge or before the next
 * port (connect, setup-host). A tampered one always is.
 */
export function filterProblems(config: Config): string[] {
  return withCall(config, (call) => {
    const names = new Set(call.rtnl.links().map((k) => k.name));
    if (!config.networks.some((n) => names.has(n.bridge))) return [];
    const s = begin(call);
    end(s);
    const problems = checkTables(HOST_SCOPE, config.networks);
    // No port to filter yet (a bridge left by a version without the filter, or
    // every sandbox gone): the next connect makes the tables before its port.
    if (s.leases.length === 0 && problems.every((p) => / is missing$/.test(p))) return [];
    if (problems.length > 0) return problems;
    let bound;
    try {
      bound = call.filter.bound();
    } catch (err) {
      if (tableMissing(err)) return [`table bridge ${HOST_SCOPE.table} is missing`];
      throw err;
    }
    for (const l of s.leases) {
      const net = config.networks.find((n) => n.name === l.network);
      if (!net || l.mac === undefined) continue;
      const want = leaseBinding(net, { ...l, mac: l.mac });
      const got = bound.find((p) => p.port === want.port);
      const exact =
        got !== undefined &&
        got.macs.join() === want.mac &&
        got.addresses.join() === want.address &&
        got.groups.join() === String(want.group) &&
        got.inGroups.join() === String(want.group) &&
        got.groupAddresses.length === 1 &&
        got.groupAddresses[0]!.group === want.group;
      if (!exact) problems.push(`lease ${l.id}: port ${l.hostVeth} is ${got ? 'bound differently' : 'not bound'} in table bridge ${HOST_SCOPE.table}`);
    }
    return problems;
  });
}
