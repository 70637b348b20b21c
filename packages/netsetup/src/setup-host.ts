// netsetup setup-host (root): the bridges, forwarding and rules made ahead of time.
import { ensureBridge } from './kernel/host.ts';
import { applyRules } from './kernel/iptables.ts';
import type { Config, Network } from './policy/config.ts';
import { begin, end, withCall } from './records.ts';

/** Root: create the bridges, forwarding and rules ahead of time. */
export function setupHost(config: Config, nets: Network[]): void {
  withCall(config, (call) => {
    const s = begin(call);
    try {
      for (const net of nets) {
        applyRules(call.tools, net, s.leases);
        ensureBridge(call.rtnl, net);
      }
    } finally {
      end(s);
    }
  });
}

