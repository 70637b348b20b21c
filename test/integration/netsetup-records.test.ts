// Lease records lost while sandboxes ran (the state directory removed by hand):
// the bridge filter still holds their bindings, and their owners' group pairs
// would let those owners reach the next sandbox given the address. The first
// call with no lease file sweeps the bindings of this configuration's addresses
// whose veth is gone, and leaves one whose sandbox still runs. Run as two
// unprivileged users with netsetup installed setuid root; traffic: none.
import test from 'ava';
import fs from 'node:fs';
import { BridgeFilter } from '../../packages/netsetup/src/kernel/bridgefilter.ts';
import { HOST_SCOPE } from '../../packages/netsetup/src/policy/bridgerules.ts';
import { hostVeths, install, run, sandbox, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';
import { requireRoot, sleep } from '../helpers/sandbox.ts';

requireRoot();
const UA = 4360;
const UB = 4361;
let inst: Install;
const sandboxes: Sandbox[] = [];

test.before(() => {
  inst = install({ octet: 153 });
});

test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  inst?.remove();
});

async function connect(uid: number): Promise<{ s: Sandbox; c: Connection }> {
  const s = await sandbox(uid);
  sandboxes.push(s);
  const r = await run(inst, ['--pid', String(s.pid), '--json'], { uid });
  if (r.code !== 0) throw new Error(`netsetup failed (${r.code}): ${r.stderr}`);
  return { s, c: JSON.parse(r.stdout) as Connection };
}

const bound = (): ReturnType<BridgeFilter['bound']> => {
  const f = BridgeFilter.open(HOST_SCOPE);
  try {
    return f.bound();
  } finally {
    f.close();
  }
};

test.serial('records lost: the next call sweeps the bindings of gone sandboxes, so the next owner of an address shares it with no one; a running one keeps its binding', async (t) => {
  const gone = await connect(UA);
  const running = await connect(UA);
  await gone.s.kill();
  for (let i = 0; i < 50 && hostVeths(inst.bridge).includes(gone.c.hostVeth); i++) await sleep(100);
  t.false(hostVeths(inst.bridge).includes(gone.c.hostVeth), 'its veth went with its namespace');
  fs.rmSync(inst.stateDir, { recursive: true, force: true });
  // The control: nothing has looked yet, and the lost lease's pair is still there.
  t.deepEqual(bound().find((p) => p.port === gone.c.hostVeth)?.groupAddresses, [{ group: UA, address: gone.c.address }]);

  const next = await connect(UB);
  t.is(next.c.address, gone.c.address, 'the address is given again (no record has it)');
  const ports = bound();
  t.is(ports.find((p) => p.port === gone.c.hostVeth), undefined, 'the lost lease\'s binding is gone');
  t.deepEqual(ports.filter((p) => p.addresses.includes(next.c.address)).flatMap((p) => p.groupAddresses), [{ group: UB, address: next.c.address }], 'only the new owner\'s pair');
  t.deepEqual(ports.find((p) => p.port === running.c.hostVeth)?.addresses, [running.c.address], 'the running sandbox keeps its binding');
});
