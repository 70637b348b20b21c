// netsetup release and the holder's release (netsetup --hold at the end of its
// stdin): the lease is marked first, its veth and rules go, its record last
// (records.ts has the invariant).
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from './exit.ts';
import { applyRules, dropLeaseRules, startDropLeaseRules, tryDropLeaseRules, type RuleChange } from './kernel/iptables.ts';
import type { Config, Network } from './policy/config.ts';
import { hasLeaseRules } from './policy/firewall.ts';
import type { Caller, Lease } from './policy/leases.ts';
import { begin, deleteLink, deleteVethsNamed, end, save, thisProcess, update, withCall, type Call } from './records.ts';

/**
 * Frees leases of the caller (root: anyone's) by id or by pid. The kernel takes
 * ~15 ms to delete a veth and iptables-restore ~10 ms to delete rules (both wait
 * for RCU grace periods), so the rules go in the background while the veths are
 * deleted. The leases are first recorded as pending: killed at any point, the
 * next call's GC deletes whatever is left of them.
 */
export function release(config: Config, caller: Caller, by: { id: string } | { pid: number }): Lease[] {
  return withCall(config, (call) => releaseIn(call, caller, by));
}

function releaseIn(call: Call, caller: Caller, by: { id: string } | { pid: number }): Lease[] {
  const { config } = call;
  const s = begin(call);
  let change: RuleChange | undefined;
  try {
    const mine = (l: Lease): boolean => caller.uid === 0 || l.uid === caller.uid;
    const wanted = (l: Lease): boolean => mine(l) && ('id' in by ? l.id === by.id : l.pid === by.pid);
    const chosen = s.leases.filter(wanted);
    // A lease whose sandbox is gone was just collected by this very call: released.
    const gone = [...s.collected, ...s.busy.filter((l) => l.state === 'releasing')].filter(wanted);
    if (chosen.length === 0 && gone.length > 0) return gone;
    if (chosen.length === 0) {
      throw new NsboxError({ exit: EXIT.DENIED, what: 'id' in by ? `lease ${by.id}` : `pid ${by.pid}`, why: 'no such lease of yours', todo: 'See your leases with netsetup list' });
    }
    const rest = s.leases.filter((l) => !chosen.includes(l));
    save(s, [...rest, ...chosen.map((l): Lease => ({ ...l, state: 'pending' }))]);
    const of = (leases: Lease[], net: Network): Lease[] => leases.filter((l) => l.network === net.name);
    const ruled = chosen.filter(hasLeaseRules);
    const nets = config.networks.filter((n) => ruled.some((l) => l.network === n.name));
    // One iptables-restore at a time: the first network's in the background, any others after.
    const [first, ...others] = nets;
    const t = nets.length > 0 ? call.tools : undefined;
    if (first) change = startDropLeaseRules(t!, first, of(ruled, first));
    for (const l of chosen) deleteLink(call.rtnl, l.hostIndex, l.hostVeth);
    const started = change;
    change = undefined;
    started?.finish(of(rest, first!));
    for (const net of others) dropLeaseRules(t!, net, of(ruled, net), of(rest, net));
    save(s, rest);
    return chosen;
  } finally {
    change?.abandon();
    end(s);
  }
}

/**
 * The holder's release (netsetup --hold at end of stdin). Under the lock it only
 * marks the lease as being released, so `onLocked` comes early and every later
 * call already treats the lease as gone (it no longer counts for quotas); then,
 * outside the lock and so in parallel with other holders, it deletes the veth
 * (by name) and the rules, which wait ~10-15 ms each for the kernel; then it
 * drops the record. Killed in between, the record names a dead holder and the
 * next call's GC finishes the job.
 */
export function releaseHeld(config: Config, caller: Caller, id: string, onLocked: () => void): void {
  withCall(config, (call) => releaseHeldIn(call, caller, id, onLocked));
}

function releaseHeldIn(call: Call, caller: Caller, id: string, onLocked: () => void): void {
  const { config } = call;
  const lease = update(
    call,
    (records, state) => {
      const l = records.find((r) => r.id === id && r.state === 'ready' && (caller.uid === 0 || r.uid === caller.uid));
      if (l) state.write(records.map((r) => (r === l ? { ...l, state: 'releasing', holder: thisProcess() } : r)));
      return l;
    },
    onLocked,
  );
  if (!lease) return;
  const net = config.networks.find((n) => n.name === lease.network);
  const { rtnl } = call;
  deleteVethsNamed(rtnl, [lease.hostVeth]);
  const rulesGone = net === undefined || !hasLeaseRules(lease) || tryDropLeaseRules(call.tools, net, [lease]);
  update(call, (records, state) => {
    const rest = records.filter((l) => l.id !== id);
    // Rebuilt without it, under the lock, when the quick deletion did not apply.
    if (!rulesGone && net && rtnl.link(net.bridge)) {
      applyRules(call.tools, net, rest.filter((l) => l.state === 'ready' && l.network === net.name));
    }
    state.write(rest);
  });
}

