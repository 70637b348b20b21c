// Issue 10, classes 4, 5, 6, 9 and 11: a hostile local user against the installed
// setuid netsetup's lock, start-up, waiting, location and state writes. Each test
// performs the attack for real as an unprivileged user, shows it fails and the
// victim keeps working, and has a control that shows the test would notice a
// success. Subnets 10.231.{111,113}.0/24; traffic: none.
import test from 'ava';
import { execa, execaSync, type ResultPromise } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostVeths, install, oneLineError, run, sandbox, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';

const U = 1000;
const OTHER = 1001;
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
let inst: Install;
let userDir: string;
const sandboxes: Sandbox[] = [];
/** Started here; any still running are killed at the end. */
const children: ResultPromise[] = [];
const cleanups: (() => void)[] = [];

const spawnBox = async (uid: number): Promise<Sandbox> => {
  const s = await sandbox(uid);
  sandboxes.push(s);
  return s;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const alive = (c: ResultPromise): boolean => c.exitCode === null && c.signalCode === null;
const exited = (c: ResultPromise, ms: number): Promise<boolean> =>
  alive(c) ? Promise.race([new Promise<boolean>((r) => c.once('exit', () => r(true))), sleep(ms).then(() => !alive(c))]) : Promise.resolve(true);

/** Starts the installed netsetup as `uid` with the given stdio. */
function start(i: Install, args: string[], uid: number, stdio: ('pipe' | 'ignore' | number)[]): ResultPromise {
  const c = execa(i.bin, args, { uid, gid: uid, env: ENV, extendEnv: false, stdio: stdio as never, reject: false, stripFinalNewline: false, forceKillAfterDelay: false });
  children.push(c);
  return c;
}

async function until(what: string, f: () => Promise<boolean> | boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const leasesOf = async (i: Install, uid = 0): Promise<{ id: string; uid: number }[]> => JSON.parse((await run(i, ['list', '--json'], { uid })).stdout) as { id: string; uid: number }[];

/** Holds the state lock as root (flock(1)) for `seconds`, once it is really held.
 *  The process comes back inside an object: an async function returning an execa
 *  subprocess itself would wait for it to end. */
async function holdLock(i: Install, seconds: number): Promise<{ flock: ResultPromise }> {
  const lock = `${i.stateDir}/lock`;
  const c = execa('flock', [lock, 'sleep', String(seconds)], { stdio: 'ignore', reject: false, forceKillAfterDelay: false });
  children.push(c);
  await until('the lock to be held', () => execaSync('flock', ['-n', lock, 'true'], { reject: false }).exitCode !== 0, 5000);
  return { flock: c };
}

async function timedRun(i: Install, args: string[], uid: number): Promise<{ code: number; stderr: string; stdout: string; ms: number }> {
  const t0 = Date.now();
  const r = await run(i, args, { uid });
  return { ...r, ms: Date.now() - t0 };
}

test.before(() => {
  inst = install({ octet: 111, quota: { users: { '*': 8 } }, publish: { maxPerLease: 16 } });
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-hygiene-'));
  fs.chownSync(userDir, U, U);
  fs.chmodSync(userDir, 0o755);
});
test.after.always(async () => {
  for (const c of children) if (alive(c)) c.kill('SIGKILL');
  for (const s of sandboxes) await s.kill();
  for (const c of cleanups.reverse()) c();
  inst?.remove();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
});

test.serial('class 4: a holder whose stdout is a full pipe nobody reads does not stall another user', async (t) => {
  const box = await spawnBox(U);
  const victim = await spawnBox(OTHER);
  // The attacker's stdout: a FIFO that is open for reading but never read, and
  // that the attacker fills while holding (the test keeps the ends open).
  const fifo = path.join(userDir, 'out');
  execaSync('mkfifo', ['-m', '0600', fifo]);
  fs.chownSync(fifo, U, U);
  const readEnd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const holderOut = fs.openSync(fifo, fs.constants.O_WRONLY);
  const filler = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  cleanups.push(() => [readEnd, holderOut, filler].forEach((fd) => fs.closeSync(fd)));
  const holder = start(inst, ['--pid', String(box.pid), '--json', '--hold'], U, ['pipe', holderOut, 'ignore']);
  await until('the holder to connect', async () => (await leasesOf(inst, U)).length === 1);
  let filled = 0;
  try {
    for (;;) filled += fs.writeSync(filler, Buffer.alloc(4096));
  } catch (err) {
    t.is((err as NodeJS.ErrnoException).code, 'EAGAIN');
  }
  t.true(filled >= 4096, 'the pipe is full');
  holder.stdin!.end(); // the release: the releasing line cannot be written now
  await sleep(300);
  t.true(alive(holder), 'the attack is real: the holder is blocked writing its releasing line');
  const r = await timedRun(inst, ['--pid', String(victim.pid), '--json'], OTHER);
  t.is(r.code, 0, r.stderr);
  t.true(r.ms < 1000, `the other user's connect took ${r.ms} ms`);
  // The holder gives its line up and finishes the release: nothing is left.
  t.true(await exited(holder, 5000), 'the holder exits');
  t.is(holder.exitCode, 0);
  t.deepEqual((await leasesOf(inst)).map((l) => l.uid), [OTHER]);
  t.is(hostVeths(inst.bridge).length, 1);
  const c = JSON.parse(r.stdout) as Connection;
  t.is((await run(inst, ['release', c.lease], { uid: OTHER })).code, 0);

  // Control: a stall under the lock is what this measures (the lock held 1.5 s
  // delays the same connect by about that much).
  const { flock: held } = await holdLock(inst, 1.5);
  const slow = await timedRun(inst, ['--pid', String(victim.pid), '--json'], OTHER);
  t.is(slow.code, 0, slow.stderr);
  t.true(slow.ms >= 1000, `control: ${slow.ms} ms`);
  await exited(held, 5000);
  t.is((await run(inst, ['release', '--pid', String(victim.pid)], { uid: OTHER })).code, 0);
});

test.serial('class 4: 50,000 --publish are refused at once, without waiting for the lock', async (t) => {
  const box = await spawnBox(U);
  await run(inst, ['list'], { uid: U }); // the state directory and lock exist
  const { flock: held } = await holdLock(inst, 3);
  const specs = Array.from({ length: 50_000 }, (_, i) => ['--publish', `${10000 + (i % 50000)}:80`]).flat();
  const big = await timedRun(inst, ['--pid', String(box.pid), ...specs], U);
  t.is(big.code, 2, big.stderr);
  t.is(big.stderr, 'netsetup: command line: 100002 arguments, at most 144 are accepted. Run netsetup --help\n');
  t.true(big.ms < 1500, `${big.ms} ms`);
  // Control: a call that does need the lock waits while it is held.
  const small = await timedRun(inst, ['--pid', String(box.pid), '--publish', '10001:80'], U);
  t.is(small.code, 0, small.stderr);
  t.true(small.ms >= 1000, `control: ${small.ms} ms`);
  await exited(held, 5000);
  t.is((await run(inst, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);
  // 65 ports (over the hard cap, under the lock-free path too) are refused as usage.
  const many = Array.from({ length: 65 }, (_, i) => ['--publish', `${20000 + i}:80`]).flat();
  const r = await run(inst, ['--pid', String(box.pid), ...many], { uid: U });
  t.is(r.code, 2);
  t.true(oneLineError(r.stderr), r.stderr);
  t.deepEqual(await leasesOf(inst), []);
});

test.serial('class 5: a low RLIMIT_NOFILE, RLIMIT_FSIZE or RLIMIT_AS with NODE_V8_COVERAGE makes root write nothing', async (t) => {
  const victim = fs.mkdtempSync('/run/nsbox-victim-');
  fs.chmodSync(victim, 0o700);
  cleanups.push(() => fs.rmSync(victim, { recursive: true, force: true }));
  const cov = path.join(victim, 'created/by/root');
  const env = { ...ENV, NODE_V8_COVERAGE: cov };
  const limited = (limit: string, uid: number) =>
    execaSync('prlimit', [limit, inst.bin, 'check'], { uid, gid: uid, env, extendEnv: false, reject: false, stripFinalNewline: false });
  const cases: [string, RegExp][] = [
    ['--nofile=40', /^netsetup: start-up: your RLIMIT_NOFILE limit \(ulimit -n\) is 40 open files, below the 64 netsetup needs to start\. Raise it \(ulimit -n 1024\) and try again$/m],
    ['--fsize=100000', /^netsetup: start-up: your RLIMIT_FSIZE limit \(ulimit -f\) is 100000 bytes, below the 16777216 netsetup needs to start\. Raise it \(ulimit -f unlimited\) and try again$/m],
    ['--as=1800000000', /^netsetup: start-up: your RLIMIT_AS limit \(ulimit -v\) is 1800000000 bytes, below the \d+ netsetup needs to start\. Raise it \(ulimit -v unlimited\) and try again$/m],
  ];
  for (const [limit, line] of cases) {
    const r = limited(limit, U);
    t.is(r.exitCode, 9, `${limit}: ${r.stderr}`);
    t.regex(String(r.stderr), line);
    t.deepEqual(fs.readdirSync(victim), [], `${limit}: nothing created as root`);
  }
  // Control: the same run by root, not setuid (coverage is root's own then), does
  // write coverage there: the test sees a file that appears.
  const control = limited('--nofile=40', 0);
  t.is(control.exitCode, 9);
  t.deepEqual(fs.readdirSync(victim), ['created'], 'control: coverage written by a run that does not stop it');

  // Limits that let it start are raised once it is root: a connect, its state
  // writes and its release work under them.
  const box = await spawnBox(U);
  const ok = execaSync('prlimit', ['--nofile=100:100', '--fsize=20000000', '--as=3000000000', inst.bin, '--pid', String(box.pid), '--json'], {
    uid: U,
    gid: U,
    env: ENV,
    extendEnv: false,
    reject: false,
    stripFinalNewline: false,
  });
  t.is(ok.exitCode, 0, ok.stderr);
  t.is((await run(inst, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);
});

test.serial('class 6: 20 `--pid -` of one user waiting for a pid: at most 8 wait, for at most 5 s, and nothing is left', async (t) => {
  const waiting = Array.from({ length: 20 }, () => start(inst, ['--pid', '-', '--json', '--hold'], U, ['pipe', 'pipe', 'pipe']));
  const capture = (stream: 'stdout' | 'stderr') => waiting.map((c) => {
    let s = '';
    c[stream]!.on('data', (d: Buffer) => (s += d.toString()));
    return () => s;
  });
  const stderr = capture('stderr');
  const stdout = capture('stdout');
  await sleep(1500);
  const still = waiting.filter(alive);
  // Control: the measurement sees waiting processes (without a cap all 20 would be here).
  t.is(still.length, 8, 'exactly MAX_WAITING are waiting');
  const refused = waiting.map((c, i) => ({ c, err: stderr[i]!(), out: stdout[i]!() })).filter(({ c }) => !alive(c));
  t.is(refused.length, 12);
  for (const { c, err, out } of refused) {
    t.is(c.exitCode, 4);
    // --json: told on stdout, for the launcher (which then runs --pid PID); a
    // person gets the message on stderr (test/integration/launcher-many.test.ts).
    t.is(out, '{"noWaitSlot":8}\n');
    t.is(err, '');
  }
  // Another user is not affected by U's waiting processes.
  const box = await spawnBox(OTHER);
  const theirs = start(inst, ['--pid', '-', '--json', '--hold'], OTHER, ['pipe', 'pipe', 'ignore']);
  theirs.stdin!.write(`${box.pid}\n`);
  let answer = '';
  theirs.stdout!.on('data', (d: Buffer) => (answer += d.toString()));
  await until('the other user to connect', () => answer.includes('\n'));
  t.is((JSON.parse(answer) as Connection).pid, box.pid);
  theirs.stdin!.end();
  t.true(await exited(theirs, 5000));

  for (const c of still) t.true(await exited(c, 6000), 'gone within the time limit');
  for (const [i, c] of waiting.entries()) {
    if (!still.includes(c)) continue;
    t.is(c.exitCode, 2);
    t.is(stderr[i]!(), 'netsetup: --pid -: no pid arrived on stdin within 5 s. Write the pid and a newline to its stdin as soon as it starts (the launcher does)\n');
  }
  t.deepEqual(await leasesOf(inst), []);
  t.deepEqual(hostVeths(inst.bridge), []);
  // The slots are free again: a `--pid -` of U that gets its pid connects.
  const mine = await spawnBox(U);
  const late = start(inst, ['--pid', '-', '--json'], U, ['pipe', 'pipe', 'ignore']);
  late.stdin!.end(`${mine.pid}\n`);
  t.true(await exited(late, 5000));
  t.is(late.exitCode, 0);
  t.is((await run(inst, ['release', '--pid', String(mine.pid)], { uid: U })).code, 0);
});

test.serial('class 9: a hard link of the binary, or the binary moved, is refused; check shows where it reads', async (t) => {
  const box = await spawnBox(U);
  const link = path.join(inst.prefix, 'bin', 'netsetup-link');
  fs.linkSync(inst.bin, link);
  try {
    for (const bin of [inst.bin, link]) {
      const r = await run(bin, ['--pid', String(box.pid)], { uid: U });
      t.is(r.code, 5, r.stderr);
      t.is(r.stderr, 'netsetup: installation: the netsetup binary has 2 hard links (a link elsewhere would run it without its configuration, or keep an old version alive). Remove the other links (find / -xdev -samefile BINARY), or reinstall with scripts/install.sh\n');
    }
  } finally {
    fs.rmSync(link);
  }
  // Moved into another prefix, where no configuration was installed: refused,
  // not run with /etc's or the built-in one.
  const other = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-moved-'));
  fs.chmodSync(other, 0o755);
  fs.mkdirSync(path.join(other, 'bin'), { mode: 0o755 });
  cleanups.push(() => fs.rmSync(other, { recursive: true, force: true }));
  const moved = path.join(other, 'bin/netsetup');
  fs.renameSync(inst.bin, moved);
  try {
    const r = await run(moved, ['--pid', String(box.pid)], { uid: U });
    t.is(r.code, 5, r.stderr);
    t.is(r.stderr, `netsetup: configuration ${other}/etc/nsbox/netsetup.conf: it does not exist (netsetup at ${moved} reads only this file). Create it as root (netsetup default-config > ${other}/etc/nsbox/netsetup.conf) or reinstall with scripts/install.sh\n`);
    const outside = path.join(other, 'netsetup');
    fs.renameSync(moved, outside);
    try {
      const o = await run(outside, ['check'], { uid: U });
      t.is(o.code, 5);
      t.regex(o.stderr, /netsetup is not in a bin directory, so it has no configuration/);
    } finally {
      fs.renameSync(outside, moved);
    }
  } finally {
    fs.renameSync(moved, inst.bin);
  }
  t.deepEqual(hostVeths(inst.bridge), []);
  // Control: back in place with one link, it works and says what it reads.
  const check = await run(inst, ['check'], { uid: U });
  t.is(check.code, 0, check.stderr);
  t.true(check.stdout.startsWith(`ok: binary ${inst.bin} (1 link), configuration ${inst.configFile}, `), check.stdout);
  const json = JSON.parse((await run(inst, ['check', '--json'], { uid: U })).stdout) as { binary: string; links: number; source: string };
  t.deepEqual([json.binary, json.links, json.source], [inst.bin, 1, inst.configFile]);
  t.is((await run(inst, ['--pid', String(box.pid)], { uid: U })).code, 0);
  t.is((await run(inst, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);
});

test.serial('class 11: a full state filesystem fails the call, keeps the old record, leaves no veth', async (t) => {
  const stateDir = `/run/nsbox-test-113-full-${process.pid}`;
  fs.mkdirSync(stateDir, { mode: 0o700 });
  execaSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'nsbox-test', stateDir]);
  const full = install({ octet: 113, stateDir });
  cleanups.push(() => full.remove());
  cleanups.push(() => {
    execaSync('umount', [stateDir], { reject: false });
    fs.rmSync(stateDir, { recursive: true, force: true });
  });
  const first = await spawnBox(U);
  const second = await spawnBox(U);
  t.is((await run(full, ['--pid', String(first.pid)], { uid: U })).code, 0);
  const before = fs.readFileSync(`${stateDir}/leases.json`);
  // The scratch file goes, and the rest of the filesystem is filled.
  fs.rmSync(`${stateDir}/leases.json.new`);
  try {
    fs.writeFileSync(`${stateDir}/filler`, Buffer.alloc(128 * 1024));
  } catch (err) {
    t.is((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  const r = await run(full, ['--pid', String(second.pid)], { uid: U });
  t.is(r.code, 6, r.stderr);
  t.is(r.stderr, `netsetup: write state file ${stateDir}/leases.json.new: the state filesystem is full (ENOSPC); ${stateDir}/leases.json is unchanged. Free space on the filesystem of ${stateDir} (df ${stateDir}), then try again\n`);
  t.deepEqual(fs.readFileSync(`${stateDir}/leases.json`), before, 'the old record stays');
  t.is(hostVeths(full.bridge).length, 1, "only the first sandbox's veth");
  t.is((await leasesOf(full, U)).length, 1);
  // Control: with space again, the same call works.
  fs.rmSync(`${stateDir}/filler`);
  t.is((await run(full, ['--pid', String(second.pid)], { uid: U })).code, 0);
  t.is((await leasesOf(full, U)).length, 2);
  for (const box of [first, second]) t.is((await run(full, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);

  // A short write: the scratch file has one page, the filesystem no free one,
  // and the new record needs two (root publishing 60 ports): write(2) returns
  // after the first page. The call fails; the record is not cut or padded.
  t.is((await run(full, ['--pid', String(first.pid)], { uid: U })).code, 0);
  const kept = fs.readFileSync(`${stateDir}/leases.json`);
  try {
    fs.writeFileSync(`${stateDir}/filler`, Buffer.alloc(128 * 1024));
  } catch (err) {
    t.is((err as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  const rootBox = await spawnBox(0);
  const ports = Array.from({ length: 60 }, (_, i) => ['--publish', `${41000 + i}:80`]).flat();
  const big = await run(full, ['--pid', String(rootBox.pid), ...ports]);
  t.is(big.code, 6, big.stderr);
  t.regex(big.stderr, /: the state filesystem is full \(ENOSPC\); .* is unchanged\./);
  t.deepEqual(fs.readFileSync(`${stateDir}/leases.json`), kept, 'the old record stays, whole');
  t.deepEqual((await leasesOf(full)).map((l) => l.uid), [U], 'and it still reads');
  fs.rmSync(`${stateDir}/filler`);
  // Control: the same call with space fits (so the record really needed more than was free).
  const fits = await run(full, ['--pid', String(rootBox.pid), ...ports]);
  t.is(fits.code, 0, fits.stderr);
  t.true(fs.statSync(`${stateDir}/leases.json`).size > 4096, 'the record is longer than a page');
  t.is((await run(full, ['release', '--pid', String(rootBox.pid)])).code, 0);
  t.is((await run(full, ['release', '--pid', String(first.pid)], { uid: U })).code, 0);
});
