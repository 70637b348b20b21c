// netsetup with two networks in one configuration, against the real kernel: a
// quota counts the leases of its own network, a rebuild of one network's rules
// takes that network's leases only, and the GC deletes veths, never a link of
// another kind that took a stale lease's name. Traffic: none (rules and links are
// read back from the kernel).
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import { install, linkExists, rules, run, sandbox, scrub, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';

const U = 1000;
const SECOND = { name: 'second', bridge: 'nstest62', subnet: '10.231.62.0/24' };
let inst: Install;
const sandboxes: Sandbox[] = [];
const spawnBox = async (uid: number): Promise<Sandbox> => {
  const s = await sandbox(uid);
  sandboxes.push(s);
  return s;
};

test.before(() => {
  inst = install({ octet: 61, quota: { users: { '*': 1 } } });
  // The second network, added to the installed configuration (root's, 0644, kept).
  scrub(SECOND.bridge);
  const config = JSON.parse(fs.readFileSync(inst.configFile, 'utf8')) as { networks: object[] };
  config.networks.push({ ...SECOND, gateway: '10.231.62.1', nat: true, dns: [], quota: { users: { '*': 1 }, groups: {} } });
  fs.writeFileSync(inst.configFile, JSON.stringify(config, null, 2));
});
test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  inst?.remove();
  scrub(SECOND.bridge);
});

const connect = async (box: Sandbox, args: string[] = []): Promise<{ code: number; stderr: string; c?: Connection }> => {
  const r = await run(inst, ['--pid', String(box.pid), '--json', ...args], { uid: box.uid });
  return { code: r.code, stderr: r.stderr, ...(r.code === 0 ? { c: JSON.parse(r.stdout) as Connection } : {}) };
};

/** The lease rules (nat and filter) in the chains of `bridge`. */
const leaseRulesOf = (bridge: string): string[] =>
  [...rules(inst, 'nat').split('\n'), ...rules(inst, 'filter').split('\n')].filter((l) => l.includes(`-${bridge} `) && l.includes('nsbox:lease:'));

const records = (): { id: string; network: string }[] => {
  try {
    return (JSON.parse(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8')) as { leases: { id: string; network: string }[] }).leases;
  } catch {
    return [];
  }
};

const release = async (lease: string): Promise<void> => {
  await run(inst, ['release', lease], { uid: U });
};

test.serial("a user quota counts the leases of its own network, not the other network's", async (t) => {
  const a = await connect(await spawnBox(U), ['--network', 'second']);
  t.is(a.code, 0, a.stderr);
  const b = await connect(await spawnBox(U), ['--network', 'test']);
  t.is(b.code, 0, b.stderr);
  t.is(b.c!.bridge, inst.bridge);
  t.is(a.c!.bridge, SECOND.bridge);
  // Control: the quota of 1 is enforced on each network.
  for (const network of ['test', 'second']) {
    const full = await connect(await spawnBox(U), ['--network', network]);
    t.is(full.code, 4, `${network}: ${full.stderr}`);
    t.regex(full.stderr, new RegExp(`^netsetup: network "${network}": uid ${U} already holds 1 of 1 allowed leases\\.`));
  }
  await release(a.c!.lease);
  await release(b.c!.lease);
  t.deepEqual(records(), []);
});

test.serial("a rebuild of one network's rules takes its own leases only (a first connect, setup-host)", async (t) => {
  // A lease with a published port on the second network, before the first network's bridge exists.
  execaSync('ip', ['link', 'del', inst.bridge], { stdio: 'ignore', reject: false });
  scrub(inst.bridge);
  const a = await connect(await spawnBox(U), ['--network', 'second', '--publish', '52061:80']);
  t.is(a.code, 0, a.stderr);
  const theirs = leaseRulesOf(SECOND.bridge);
  // DNAT, FORWARD, and a hairpin MASQUERADE for each of the configuration's two subnets.
  t.is(theirs.length, 4, theirs.join('\n'));
  t.true(theirs.every((l) => l.includes(`nsbox:lease:${a.c!.lease}`)));
  // The first network's bridge is missing: this connect rebuilds its chains from the records.
  t.false(linkExists(inst.bridge));
  const b = await connect(await spawnBox(U), ['--network', 'test', '--publish', '52062:80']);
  t.is(b.code, 0, b.stderr);
  const check = (when: string): void => {
    const ours = leaseRulesOf(inst.bridge);
    t.is(ours.length, 4, `${when}: ${ours.join('\n')}`);
    t.true(ours.every((l) => l.includes(`nsbox:lease:${b.c!.lease}`)), `${when}: ${ours.join('\n')}`);
    t.deepEqual(leaseRulesOf(SECOND.bridge), theirs, `${when}: the second network's rules are unchanged`);
  };
  check('first connect');
  // setup-host (root) rebuilds every network's chains from all the records.
  const setup = await run(inst, ['setup-host']);
  t.is(setup.code, 0, setup.stderr);
  check('setup-host');
  await release(a.c!.lease);
  await release(b.c!.lease);
  t.deepEqual([...leaseRulesOf(inst.bridge), ...leaseRulesOf(SECOND.bridge)], []);
});

test.serial("the GC drops a stale lease but leaves alone a link of another kind that took its veth's name and ifindex", async (t) => {
  const box = await spawnBox(U);
  const a = await connect(box, ['--network', 'test']);
  t.is(a.code, 0, a.stderr);
  const veth = a.c!.hostVeth;
  const index = (JSON.parse(execaSync('ip', ['-j', 'link', 'show', 'dev', veth], { reject: false }).stdout) as { ifindex: number }[])[0]!.ifindex;
  // The sandbox dies: the kernel deletes the veth pair with its namespace.
  await box.kill();
  for (let i = 0; i < 100 && linkExists(veth); i++) await new Promise((r) => setTimeout(r, 50));
  t.false(linkExists(veth));
  // Root makes a bridge of the same name and ifindex.
  const add = execaSync('ip', ['link', 'add', 'name', veth, 'index', String(index), 'type', 'bridge'], { reject: false });
  t.teardown(() => void execaSync('ip', ['link', 'del', veth], { stdio: 'ignore', reject: false }));
  t.is(add.exitCode, 0, add.stderr);
  t.true(records().some((l) => l.id === a.c!.lease), 'the record is there before the GC');
  const list = await run(inst, ['list', '--json']);
  t.is(list.code, 0, list.stderr);
  // Control: the GC ran and took the lease as stale (its veth is gone).
  t.deepEqual(JSON.parse(list.stdout), []);
  t.false(records().some((l) => l.id === a.c!.lease), 'the stale record is gone');
  const shown = JSON.parse(execaSync('ip', ['-j', '-d', 'link', 'show', 'dev', veth], { reject: false }).stdout || '[]') as { ifindex: number; linkinfo?: { info_kind?: string } }[];
  t.is(shown.length, 1, 'the bridge is still there');
  t.is(shown[0]?.ifindex, index);
  t.is(shown[0]?.linkinfo?.info_kind, 'bridge');
});
