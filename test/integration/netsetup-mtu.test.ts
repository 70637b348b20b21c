// The network's MTU on its bridge and on every veth, against the real kernel.
// A bridge whose MTU the kernel manages follows its ports' smallest MTU and
// falls to 1500 when its last port goes; netsetup used to give the next veth
// that, not the configured MTU (a third less throughput at 65520). Checked from
// both sides: the host's links and eth0 inside. The control shows the kernel
// behaviour the first test would catch. Traffic: none (links are read back).
import test from 'ava';
import { execaSync } from 'execa';
import { hostVeths, inNetns, install, run, sandbox, scrub, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';

const U = 1000;
const MTU = 9000;
const CONTROL_BRIDGE = 'nstest122';
const CONTROL_PORT = 'nstest122p';
let inst: Install;
const sandboxes: Sandbox[] = [];

test.before(() => {
  inst = install({ octet: 121, mtu: MTU });
});
test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  inst?.remove();
  execaSync('ip', ['link', 'del', CONTROL_PORT], { reject: false, stdio: 'ignore' });
  scrub(CONTROL_BRIDGE);
});

const mtuOf = (name: string): number => (JSON.parse(execaSync('ip', ['-j', 'link', 'show', 'dev', name]).stdout) as { mtu: number }[])[0]!.mtu;
const eth0Mtu = (pid: number): number => (JSON.parse(inNetns(pid, ['ip', '-j', 'link', 'show', 'dev', 'eth0']).stdout) as { mtu: number }[])[0]!.mtu;

async function connect(t: { is: (a: unknown, b: unknown, m?: string) => void }): Promise<{ box: Sandbox; c: Connection }> {
  const box = await sandbox(U);
  sandboxes.push(box);
  const r = await run(inst, ['--pid', String(box.pid), '--json'], { uid: U });
  t.is(r.code, 0, r.stderr);
  return { box, c: JSON.parse(r.stdout) as Connection };
}

async function release(lease: string): Promise<void> {
  const r = await run(inst, ['release', lease], { uid: U });
  if (r.code !== 0) throw new Error(`release ${lease}: ${r.stderr}`);
}

test.serial("the bridge keeps the network's MTU when its last sandbox goes, and each veth gets it on both ends", async (t) => {
  const first = await connect(t);
  t.is(first.c.mtu, MTU);
  t.is(mtuOf(inst.bridge), MTU);
  t.is(mtuOf(first.c.hostVeth), MTU, 'host end');
  t.is(eth0Mtu(first.box.pid), MTU, 'eth0 inside');

  await release(first.c.lease);
  t.deepEqual(hostVeths(inst.bridge), [], 'the bridge has no port left');
  t.is(mtuOf(inst.bridge), MTU, 'the empty bridge kept its MTU');

  const second = await connect(t);
  t.is(second.c.mtu, MTU);
  t.is(mtuOf(second.c.hostVeth), MTU, 'host end');
  t.is(eth0Mtu(second.box.pid), MTU, 'eth0 inside');
  await release(second.c.lease);
});

test.serial('an MTU changed by hand on the bridge is put back by the next connection', async (t) => {
  execaSync('ip', ['link', 'set', 'dev', inst.bridge, 'mtu', '1500']);
  t.is(mtuOf(inst.bridge), 1500);
  const { box, c } = await connect(t);
  t.is(c.mtu, MTU);
  t.is(mtuOf(inst.bridge), MTU);
  t.is(mtuOf(c.hostVeth), MTU, 'host end');
  t.is(eth0Mtu(box.pid), MTU, 'eth0 inside');
  await release(c.lease);
});

test.serial('control: a bridge given its MTU at creation falls to 1500 when its last port goes', (t) => {
  // What netsetup used to do (the MTU in the creating request), made with iproute2.
  scrub(CONTROL_BRIDGE);
  execaSync('ip', ['link', 'add', CONTROL_BRIDGE, 'mtu', String(MTU), 'type', 'bridge']);
  execaSync('ip', ['link', 'add', CONTROL_PORT, 'mtu', String(MTU), 'type', 'veth', 'peer', 'name', `${CONTROL_PORT}x`, 'mtu', String(MTU)]);
  execaSync('ip', ['link', 'set', CONTROL_PORT, 'master', CONTROL_BRIDGE]);
  t.is(mtuOf(CONTROL_BRIDGE), MTU);
  execaSync('ip', ['link', 'del', CONTROL_PORT]);
  t.is(mtuOf(CONTROL_BRIDGE), 1500, 'the kernel lowered it: the check above would see it');
  execaSync('ip', ['link', 'del', CONTROL_BRIDGE]);
});
