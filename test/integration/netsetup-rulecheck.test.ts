// The recorded generation (policy/rulecheck.ts), against the real kernel:
// netsetup installed setuid into a temporary prefix, run as an unprivileged
// user and, for its timing marks, as root. A connect records the nf_tables
// generation at which it saw the network's jumps intact; the next connect skips
// its look only while the generation is still that one. A firewall reload (any
// nf_tables change) moves it, and the jump is repaired; the control forges the
// record to the generation after the reload, and then nothing repairs the jump:
// so the record is what decides, and the test would notice a skip that hid a
// reload. The release's unbinding, tied to the recorded generation, is refused
// whole by the kernel when it is stale, and the port is unbound all the same.
// Traffic: none. Other test files change the host's nf_tables ruleset at the
// same time (their ports), so a step that needs the generation to stay put is
// tried again a few times.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import { BridgeFilter } from '../../packages/netsetup/src/kernel/bridgefilter.ts';
import { HOST_SCOPE } from '../../packages/netsetup/src/policy/bridgerules.ts';
import { formatChecked, parseChecked, type Generation } from '../../packages/netsetup/src/policy/rulecheck.ts';
import { install, run, sandbox, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';

const U = 1000;
const TRIES = 6;
const SKIPPED = 'rules known intact (generation unchanged)';

let inst: Install;
let filter: BridgeFilter;
const sandboxes: Sandbox[] = [];

test.before(() => {
  inst = install({ octet: 140, quota: { users: { '*': 40 } } });
  filter = BridgeFilter.open(HOST_SCOPE);
});

test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  filter?.close();
  inst?.remove();
});

const recordFile = (): string => `${inst.stateDir}/rules-checked`;
const recorded = (): Generation | undefined => (fs.existsSync(recordFile()) ? parseChecked(fs.readFileSync(recordFile(), 'utf8')) : undefined);
/** Writes the record as root would find it (netsetup's own format). */
const forge = (g: Generation): void => fs.writeFileSync(recordFile(), formatChecked(g), { mode: 0o600 });

const post = (): string => `NSBOX-POST-${inst.bridge}`;
const natSave = (): string[] => execaSync(`${inst.iptables}-save`, ['-t', 'nat'], { stdin: 'ignore', stderr: 'ignore' }).stdout.split('\n');
const jumps = (): string[] => natSave().filter((l) => l.startsWith('-A POSTROUTING ') && l.endsWith(`-j ${post()}`));
/** What a firewall reload does to the network: its POSTROUTING jump is gone. */
function dropJump(): void {
  const lines = jumps();
  if (lines.length > 0) execaSync(`${inst.iptables}-restore`, ['-w', '--noflush'], { input: `*nat\n${lines.map((l) => l.replace(/^-A /, '-D ')).join('\n')}\nCOMMIT\n`, stdout: 'ignore' });
}

/** A connect of a new sandbox: as U (setuid), or as root with the timing marks on stderr. */
async function connect(asRoot = false): Promise<{ c: Connection; marks: string }> {
  const s = await sandbox(U);
  sandboxes.push(s);
  const r = await run(inst, ['--pid', String(s.pid), '--json'], asRoot ? { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NETSETUP_TIMING: '1' } } : { uid: U });
  if (r.code !== 0) throw new Error(`netsetup failed (${r.code}): ${r.stderr}`);
  return { c: JSON.parse(r.stdout) as Connection, marks: r.stderr };
}

test.serial('a connect records the generation it checked; the next skips its look while nothing changed; after a reload it looks and repairs; control: a record forged past the reload hides it', async (t) => {
  // The first makes the bridge and the rules (nothing looked at, nothing recorded); the second looks.
  await connect();
  await connect();
  // Another test file's transaction between the look and the record leaves it
  // unrecorded (the generation moved by more than this call's own change): again.
  for (let i = 0; i < 5 && recorded() === undefined; i++) await connect();
  const rec = recorded();
  const now = filter.generation();
  t.truthy(rec, 'recorded');
  t.is(rec!.table, now.table, "the bridge filter table's handle");
  t.true(rec!.id <= now.id, `${rec!.id} <= ${now.id}`);

  // Nothing changed since (unless another test file's port came between: then try again).
  let skipped = false;
  for (let i = 0; i < TRIES && !skipped; i++) skipped = (await connect(true)).marks.includes(SKIPPED);
  t.true(skipped, 'a connect with the generation unchanged skips the look');
  t.is(jumps().length, 1);

  // The reload: the jump goes, the generation moves; the next connect looks and repairs.
  dropJump();
  t.is(jumps().length, 0);
  const after = await connect(true);
  t.false(after.marks.includes(SKIPPED), after.marks);
  t.is(jumps().length, 1, 'repaired');

  // Control: the same reload, but the record says the generation after it was checked.
  t.teardown(async () => {
    fs.rmSync(recordFile(), { force: true });
    if (jumps().length === 0) await connect();
  });
  let hidden = false;
  for (let i = 0; i < TRIES && !hidden; i++) {
    dropJump();
    forge(filter.generation());
    const r = await connect(true);
    hidden = r.marks.includes(SKIPPED) && jumps().length === 0;
  }
  t.true(hidden, 'with the forged record, the jump stays missing: the record decides, and this test sees a missed repair');
  fs.rmSync(recordFile(), { force: true });
  await connect();
  t.is(jumps().length, 1, 'without the record, the next connect repairs');
});

test.serial("a release's unbinding is tied to the recorded generation: stale, the kernel refuses it whole and the port is unbound anyway; current, the next one is recorded", async (t) => {
  const bound = (port: string): boolean => filter.bound().some((p) => p.port === port);

  const { c } = await connect();
  t.true(bound(c.hostVeth));
  const now = filter.generation();
  const stale = { id: now.id > 10 ? now.id - 5 : now.id + 5, table: now.table! };
  forge(stale);
  const r = await run(inst, ['release', c.lease], { uid: U });
  t.is(r.code, 0, r.stderr);
  t.false(bound(c.hostVeth), 'unbound although the tied transaction was refused');
  t.deepEqual(recorded(), stale, 'nothing new recorded');

  // Current: the unbinding is the one transaction after the record, which then moves with it.
  let moved = false;
  for (let i = 0; i < TRIES && !moved; i++) {
    const { c: d } = await connect();
    const at = filter.generation();
    forge(at);
    t.is((await run(inst, ['release', d.lease], { uid: U })).code, 0);
    t.false(bound(d.hostVeth));
    const rec = recorded();
    moved = rec !== undefined && rec.id === at.id + 1 && rec.table === at.table;
  }
  t.true(moved, 'the generation after the unbinding is recorded');
});
