// netsetup teardown (root): every lease's veth and binding, the bridges, the
// rules, the networks' parts of the bridge filter and the state go.
import { removeParts } from './kernel/bridgefilter.ts';
import { removeRules } from './kernel/iptables.ts';
import { HOST_SCOPE } from './policy/bridgerules.ts';
import type { Config, Network } from './policy/config.ts';
import { begin, deleteLink, deleteVethsNamed, end, unbindLeases, withCall, type Call } from './records.ts';

/** Root: delete every lease's veth, the bridges, the rules and the state. */
export function teardown(config: Config, nets: Network[]): number {
  return withCall(config, (call) => teardownIn(call, nets));
}

function teardownIn(call: Call, nets: Network[]): number {
  const s = begin(call);
  try {
    const names = new Set(nets.map((n) => n.name));
    const gone = [...s.leases, ...s.busy].filter((l) => names.has(l.network));
    deleteVethsNamed(call.rtnl, gone.map((l) => l.hostVeth));
    unbindLeases(call, gone);
    for (const net of nets) {
      removeRules(call.tools, net);
      const br = call.rtnl.link(net.bridge);
      if (br && br.kind === 'bridge') deleteLink(call.rtnl, br.index, net.bridge);
    }
    // The table itself only when no other configuration uses it (removeParts).
    removeParts(HOST_SCOPE, nets, call.rtnl.links());
    const rest = [...s.leases, ...s.busy].filter((l) => !names.has(l.network));
    if (rest.length === 0) s.state.removeFiles();
    else s.state.write(rest);
    end(s);
    if (rest.length === 0) s.state.removeDir();
    return gone.length;
  } catch (err) {
    end(s);
    throw err;
  }
}
