// netsetup teardown (root): every lease's veth, the bridges, the rules and the state go.
import { removeRules } from './kernel/iptables.ts';
import type { Config, Network } from './policy/config.ts';
import { begin, deleteLink, deleteVethsNamed, end, withCall, type Call } from './records.ts';

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
    for (const net of nets) {
      removeRules(call.tools, net);
      const br = call.rtnl.link(net.bridge);
      if (br && br.kind === 'bridge') deleteLink(call.rtnl, br.index, net.bridge);
    }
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
