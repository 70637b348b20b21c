// netsetup setup-host (root): the bridges, forwarding and rules made ahead of
// time, and the bridge filter made or repaired.
import { ensureTable, quietBridge, repairTable } from './kernel/bridgefilter.ts';
import { ensureBridge } from './kernel/host.ts';
import { applyRules } from './kernel/iptables.ts';
import { HOST_SCOPE } from './policy/bridgerules.ts';
import type { Config, Network } from './policy/config.ts';
import { begin, end, leaseBindings, withCall } from './records.ts';

/** Root: create the bridges, forwarding and rules ahead of time. */
export function setupHost(config: Config, nets: Network[]): void {
  withCall(config, (call) => {
    const s = begin(call);
    try {
      for (const net of nets) {
        applyRules(call.tools, net, s.leases);
        ensureBridge(call.rtnl, net);
      }
      // Every bridge of the configuration, existing ones included (made by an
      // older netsetup), is quiet; the filter is made, or repaired in place
      // (other configurations' ports keep their elements), and this
      // configuration's live ports are bound again exactly.
      for (const net of config.networks) if (call.rtnl.link(net.bridge)) quietBridge(net.bridge);
      const bound = leaseBindings(config, s.leases);
      ensureTable(HOST_SCOPE, config.networks, bound);
      repairTable(HOST_SCOPE, config.networks, bound);
      for (const b of bound) call.filter.bindReplacing(b);
    } finally {
      end(s);
    }
  });
}

