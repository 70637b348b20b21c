// netsetup list: the caller's live leases (root: everyone's), after a GC.
import type { Config } from './policy/config.ts';
import type { Caller, Lease } from './policy/leases.ts';
import { begin, end, withCall } from './records.ts';

export function list(config: Config, caller: Caller): Lease[] {
  return withCall(config, (call) => {
    const s = begin(call);
    end(s);
    return s.leases.filter((l) => caller.uid === 0 || l.uid === caller.uid);
  });
}

