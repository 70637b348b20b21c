// netsetup --hold, the way the launcher runs it: it stays, shrugs off the
// terminal's signals, and releases the lease when its stdin closes.
import test from 'ava';
import { execa } from 'execa';
import fs from 'node:fs';
import { hostVeths, install, ownRules, run, sandbox, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';

const U = 1000;
let inst: Install;
const boxes: Sandbox[] = [];

test.before(() => {
  inst = install({ octet: 84 });
});
test.after.always(async () => {
  for (const b of boxes) await b.kill();
  inst?.remove();
});

/** netsetup run as `uid` the way the launcher runs it: stdin, stdout and stderr pipes. */
const holdAs = (uid: number, args: string[]) =>
  execa(inst.bin, args, { uid, gid: uid, env: { PATH: '/usr/bin:/bin' }, extendEnv: false, reject: false, stripFinalNewline: false, forceKillAfterDelay: false });

const state = (pid: number): string => /^State:\s+(\S)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';

test.serial('a holder ignores Ctrl-C, Ctrl-Z and hang-ups, and releases the lease at end of stdin', async (t) => {
  const box = await sandbox(U);
  boxes.push(box);
  const holder = holdAs(U, ['--pid', String(box.pid), '--json', '--hold']);
  const exited = new Promise<number | null>((res) => holder.on('exit', (code) => res(code)));
  let stderr = '';
  holder.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((res) => {
    let out = '';
    holder.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) res(out);
    });
  });
  const c = JSON.parse(line) as Connection;
  t.deepEqual(hostVeths(inst.bridge), [c.hostVeth]);

  for (const sig of ['SIGINT', 'SIGTSTP', 'SIGHUP', 'SIGQUIT'] as const) {
    process.kill(holder.pid!, sig);
    await new Promise((r) => setTimeout(r, 150));
    t.is(holder.exitCode, null, `still there after ${sig}`);
    t.not(state(holder.pid!), 'T', `not stopped by ${sig}`);
  }
  t.deepEqual(hostVeths(inst.bridge), [c.hostVeth], 'still connected');

  let rest = '';
  holder.stdout.on('data', (d: Buffer) => (rest += d.toString()));
  holder.stdin.end();
  t.is(await exited, 0, stderr);
  t.is(stderr, '');
  t.is(rest, `${JSON.stringify({ releasing: c.lease })}\n`, 'it says when it holds the lock for the release');
  t.deepEqual(hostVeths(inst.bridge), [], 'the veth is gone');
  t.false(ownRules(inst, 'filter').includes(`nsbox:lease:${c.lease}`));
  t.is((await run(inst, ['list', '--json'], { uid: U })).stdout.trim(), '[]');
});

test.serial('a holder whose sandbox died meanwhile exits cleanly at end of stdin', async (t) => {
  const box = await sandbox(U);
  const holder = holdAs(U, ['--pid', String(box.pid), '--json', '--hold']);
  let stderr = '';
  holder.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((res) => holder.on('exit', (code) => res(code)));
  await new Promise<void>((res) => holder.stdout.once('data', () => res()));
  await box.kill();
  // Someone else's call collects the lease first.
  for (let i = 0; i < 50 && hostVeths(inst.bridge).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  await run(inst, ['list'], { uid: U });
  holder.stdin.end();
  t.is(await exited, 0, stderr);
  t.is(stderr, '');
});

test.serial('a holder killed in the middle of its release: the next call finishes it', async (t) => {
  const box = await sandbox(U);
  boxes.push(box);
  const holder = holdAs(U, ['--pid', String(box.pid), '--json', '--hold']);
  const exited = new Promise<void>((res) => holder.on('exit', () => res()));
  let out = '';
  const lines = (n: number): Promise<void> =>
    new Promise((res) => {
      const check = (): void => {
        if (out.split('\n').length > n) res();
      };
      holder.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        check();
      });
      check();
    });
  await lines(1);
  const c = JSON.parse(out.split('\n')[0]!) as Connection;
  await box.kill();
  holder.stdin.end();
  await lines(2);
  holder.kill('SIGKILL');
  await exited;
  const list = await run(inst, ['list', '--json'], { uid: 0 });
  t.is(list.stdout.trim(), '[]');
  t.deepEqual(hostVeths(inst.bridge), []);
  t.false(ownRules(inst, 'filter').includes(`nsbox:lease:${c.lease}`));
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(c.lease), 'no record left');
});

test.serial('with --pid -, netsetup starts first and reads the pid from stdin; with none it does nothing; a bad one is refused', async (t) => {
  const holdFromStdin = (): { child: ReturnType<typeof holdAs>; out: () => string; err: () => string; exited: Promise<number | null> } => {
    const child = holdAs(U, ['--pid', '-', '--json', '--hold']);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    return { child, out: () => out, err: () => err, exited };
  };
  // Started before the sandbox exists, as the launcher does.
  const h = holdFromStdin();
  await new Promise((r) => setTimeout(r, 300));
  const box = await sandbox(U);
  boxes.push(box);
  h.child.stdin!.write(`${box.pid}\n`);
  for (let i = 0; i < 100 && !h.out().includes('\n'); i++) await new Promise((r) => setTimeout(r, 20));
  const c = JSON.parse(h.out().split('\n')[0]!) as Connection;
  t.is(c.pid, box.pid);
  t.deepEqual(hostVeths(inst.bridge), [c.hostVeth]);
  h.child.stdin!.end();
  t.is(await h.exited, 0, h.err());
  t.deepEqual(hostVeths(inst.bridge), []);

  // No pid before end-of-file: nothing asked, nothing done, nothing said.
  const none = holdFromStdin();
  none.child.stdin!.end();
  t.is(await none.exited, 0);
  t.is(none.out() + none.err(), '');

  const bad = holdFromStdin();
  bad.child.stdin!.end('12x\n');
  t.is(await bad.exited, 2);
  t.regex(bad.err(), /^netsetup: --pid "12x": not a process id/);
  t.is((await run(inst, ['list', '--json'], { uid: U })).stdout.trim(), '[]');
});

test.serial('a lease being set up by a live netsetup is left alone by other calls, and collected once that netsetup is gone', async (t) => {
  // The record a connect leaves while it creates the veth outside the lock:
  // pending, with the connecting process as holder (here a stand-in process).
  const standIn = execa('sleep', ['30'], { stdio: 'ignore', reject: false, forceKillAfterDelay: false });
  await new Promise((r) => setTimeout(r, 100));
  const stat = fs.readFileSync(`/proc/${standIn.pid}/stat`, 'utf8');
  const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const address = inst.gateway.replace(/\.1$/, '.2');
  const lease = {
    id: '0badcafe', network: 'test', uid: U, groups: [], address, hostVeth: 'nsb0badcafe', hostIndex: 0, pid: standIn.pid,
    state: 'pending', holder: { pid: standIn.pid, start }, created: new Date().toISOString(), published: [],
  };
  fs.mkdirSync(inst.stateDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(`${inst.stateDir}/leases.json`, `${JSON.stringify({ version: 1, leases: [lease] })}\n`, { mode: 0o600 });
  const box = await sandbox(U);
  boxes.push(box);
  const r = await run(inst, ['--pid', String(box.pid), '--json'], { uid: U });
  t.is(r.code, 0, r.stderr);
  t.not((JSON.parse(r.stdout) as Connection).address, address, 'its address is taken');
  t.true(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(lease.id), 'still on record');
  standIn.kill('SIGKILL');
  await new Promise((res) => standIn.once('exit', res));
  t.is((await run(inst, ['list'], { uid: U })).code, 0);
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(lease.id), 'collected');
  t.is((await run(inst, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);
});
