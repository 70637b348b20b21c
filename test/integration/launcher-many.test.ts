// Many at once: 200 networked sandboxes of one unprivileged user started at the
// same moment, all alive together. Each must get its network (its own address,
// seen inside on eth0 and reported on --info-fd), and once they have all ended
// nothing of theirs may be left on the host: veths, leases, bridge-filter
// elements, iptables rules. Traffic: none (addresses are only read).
import test from 'ava';
import { execa, execaSync } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { collect, forgetSandboxesOf, makeRootfs, requireRoot, sleep, spawnAs, start, type Child, type Result } from '../helpers/sandbox.ts';
import { hostVeths, install, ownRules, run as netsetup, type Install, type Run } from '../helpers/netsetup.ts';

requireRoot();
// A user of its own: other test files count the processes of theirs.
const UID = 4330;
forgetSandboxesOf(UID);
const N = Number(process.env.NSBOX_MANY ?? 200);
const rootfs = makeRootfs();
// 10.231.132.0/22: room for N addresses; the quota lets one user have them all.
const inst: Install = install({ octet: 132, prefix: 22, quota: { users: { '*': N + 10 } } });
test.after.always('remove the install, bridge and rules', () => inst.remove());

interface Started {
  event: 'started';
  pid: number;
  address: string;
}

interface Many {
  child: Child;
  started: Promise<Started>;
  done: Promise<Result>;
}

/** Every PUBLISHER-th sandbox publishes a host port on the test bridge's gateway
 *  (no traffic is sent to it: it gives the lease iptables rules of its own, for
 *  the check that none is left). Every one: 200 iptables changes queue for the
 *  state lock for longer than one holder may hold it (kernel/state.ts), so this
 *  also checks that a call waits on while the lock changes hands (7 of 200
 *  failed with exit 7 before it did). */
const PUBLISHER = 1;
const FIRST_PORT = 41000;

/** Launcher i as UID; the sandbox prints eth0's address and then waits for its
 *  stdin to end. */
function startOne(_: unknown, i: number): Many {
  const launcher = path.join(inst.prefix, 'bin/launcher');
  const script = 'ip -4 -o addr show dev eth0; read x; exit 0';
  const child = start(['--info-fd', '3', '--rootfs', rootfs, ...(i % PUBLISHER === 0 ? ['--publish', `${inst.gateway}:${FIRST_PORT + i}:80`] : []), '--', '/bin/sh', '-c', script], { uid: UID, gid: UID, launcher, extraFds: ['pipe'] });
  let info = '';
  const started = new Promise<Started>((resolve, reject) => {
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
      info += d.toString();
      const first = info.split('\n')[0];
      if (info.includes('\n') && first) resolve(JSON.parse(first) as Started);
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before starting`)));
  });
  started.catch(() => {});
  const done = collect(child, { keepStdin: true, timeoutMs: 290_000 });
  return { child, started, done };
}

/** The per-port elements of the host's bridge filter (its sets but the network's
 *  isolated range): the addresses in 10.231.132.0/22 and which of `ports` they name. */
function filterElements(ports: string[]): { addresses: string[]; ports: string[] } {
  const text = ['port_mac', 'port_ip', 'port_group', 'port_in_group', 'group_ip']
    .map((set) => execaSync('nft', ['list', 'set', 'bridge', 'nsbox', set], { reject: false }).stdout)
    .join('\n');
  const addresses = [...new Set(text.match(/(?<![-\d.])10\.231\.13[2-5]\.\d+(?![-/\d])/g) ?? [])];
  return { addresses, ports: ports.filter((p) => text.includes(`"${p}"`)) };
}

const sorted = (xs: string[]): string[] => [...xs].sort();
const leaseRules = (): string[] => [...ownRules(inst, 'nat').split('\n'), ...ownRules(inst, 'filter').split('\n')].filter((l) => l.includes('nsbox:lease:'));

async function leases(): Promise<{ address: string; uid: number }[]> {
  return JSON.parse((await netsetup(inst, ['list', '--json'])).stdout || '[]') as { address: string; uid: number }[];
}

test.serial(`${N} networked sandboxes of one user at once: all get a network, distinct addresses, and nothing is left afterwards`, async (t) => {
  t.timeout(300_000);
  t.is((await netsetup(inst, ['setup-host'])).code, 0);
  const all = Array.from({ length: N }, startOne);
  t.teardown(() => {
    for (const m of all) m.child.kill('SIGKILL');
  });
  const started = await Promise.allSettled(all.map((m) => m.started));
  const failed = started.flatMap((s, i) => (s.status === 'rejected' ? [i] : []));
  if (failed.length > 0) {
    for (const m of all) m.child.stdin!.end();
    const errors = new Map<string, number>();
    for (const i of failed) {
      const line = (await all[i]!.done).stderr.trim().split('\n').pop() ?? '';
      errors.set(line, (errors.get(line) ?? 0) + 1);
    }
    t.fail(`${failed.length} of ${N} did not start: ${[...errors].map(([e, n]) => `${n} x ${JSON.stringify(e)}`).join('; ')}`);
  }
  const addresses = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.address] : []));
  t.is(new Set(addresses).size, N, 'every sandbox has an address of its own');

  // Control: while they all run, the checks below see each one's veth, lease,
  // filter elements and rules, so they would notice any left behind.
    const held = await leases();
  t.is(held.length, N);
  t.true(held.every((l) => l.uid === UID));
  t.deepEqual(sorted(held.map((l) => l.address)), sorted(addresses), 'the leases are the reported addresses');
  const veths = hostVeths(inst.bridge);
  const elements = filterElements(veths);
  t.deepEqual(sorted(elements.addresses), sorted(addresses), 'the bridge filter knows every address');
  t.is(veths.length, N, 'a veth per sandbox on the bridge');
  t.deepEqual(sorted(elements.ports), sorted(veths), 'and every port');
  t.true(leaseRules().length >= Math.ceil(N / PUBLISHER), 'rules for every published port');

  for (const m of all) m.child.stdin!.end();
  const results = await Promise.all(all.map((m) => m.done));
  t.deepEqual(results.filter((r) => r.code !== 0 || r.stderr !== '').map((r) => `${r.code}: ${r.stderr}`), [], 'every launcher exits 0 and quietly');
  // Inside, eth0 had the address the launcher reported.
  t.deepEqual(results.map((r, i) => new RegExp(`inet ${addresses[i]!.replaceAll('.', '\\.')}/22 `).test(r.stdout)), Array<boolean>(N).fill(true));

  // A holder deletes its veth and rules just after its launcher has exited.
  const anyLeft = (): boolean => hostVeths(inst.bridge).length > 0 || leaseRules().length > 0 || filterElements(veths).addresses.length > 0;
  for (let i = 0; i < 100 && anyLeft(); i++) await sleep(100);
  t.deepEqual(hostVeths(inst.bridge), [], 'no veth left');
  t.deepEqual(await leases(), [], 'no lease left');
  t.deepEqual(filterElements(veths), { addresses: [], ports: [] }, 'no bridge filter element left');
  t.deepEqual(leaseRules(), [], 'no per-lease rule left');
});

test.serial('with all of the user\'s netsetup wait slots taken, a launcher still connects (netsetup --pid PID once the pid exists), quietly', async (t) => {
  t.is((await netsetup(inst, ['setup-host'])).code, 0);
  const asUser = { uid: UID, gid: UID, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } };
  // MAX_WAITING `--pid -` of the user that wait (for at most 5 s) for a pid that never comes.
  const waiters = Array.from({ length: 8 }, () => spawnAs(inst.bin, ['--pid', '-', '--json', '--hold'], asUser));
  t.teardown(() => {
    for (const w of waiters) w.kill('SIGKILL');
  });
  const probe = (args: string[]): Promise<Run> => netsetup(inst, ['--pid', '-', ...args], { uid: UID });
  let full: Run | undefined;
  for (let i = 0; i < 60 && full === undefined; i++) {
    const r = await probe(['--json']);
    if (r.code === 4) full = r;
    else await sleep(20);
  }
  // Control: the slots are full. A program (--json) is told on stdout alone, a person on stderr.
  t.deepEqual(full && { code: full.code, stdout: full.stdout, stderr: full.stderr }, { code: 4, stdout: '{"noWaitSlot":8}\n', stderr: '' });
  const human = await probe([]);
  t.is(human.code, 4);
  t.regex(human.stderr, /^netsetup: --pid -: 8 netsetup processes of uid 4330 are already waiting for their pid\. /);

  const one = startOne(undefined, 1);
  const started = await one.started;
  one.child.stdin!.end();
  const r = await one.done;
  t.is(r.code, 0);
  t.is(r.stderr, '', 'nothing on the terminal');
  t.regex(r.stdout, new RegExp(`inet ${started.address.replaceAll('.', '\\.')}/22 `));
  // The slots stayed taken all along (each waiter still waits): the launcher's
  // first netsetup found none free, so it was its second that connected.
  t.deepEqual(waiters.map((w) => w.exitCode === null && w.signalCode === null), Array<boolean>(8).fill(true), 'the 8 waiters were still waiting');
  for (const w of waiters) w.stdin!.end();
  t.deepEqual((await Promise.all(waiters)).map((w) => [w.exitCode, w.stdout, w.stderr]), Array(8).fill([0, '', '']), 'given no pid, each waiter does nothing');
  for (let i = 0; i < 30 && hostVeths(inst.bridge).length > 0; i++) await sleep(100);
  t.deepEqual(hostVeths(inst.bridge), []);
  t.deepEqual(await leases(), []);
});

test.serial('`--pid -` on a non-blocking stdin waits for the pid in poll(2), not in a loop of reads and sleeps', async (t) => {
  // netsetup's stdin is a pipe made non-blocking (by perl, from Debian's
  // essential perl-base, before it execs strace): its read(2) says EAGAIN until
  // the test writes or closes. The test closes it after 500 ms without a pid
  // (netsetup then does nothing); strace counts the reads that said EAGAIN.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-strace-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'strace');
  const nonBlocking = 'fcntl(STDIN, F_SETFL, O_NONBLOCK) or die "fcntl: $!"; exec @ARGV or die "exec: $!"';
  const child = execa('perl', ['-MFcntl', '-e', nonBlocking, 'strace', '-f', '-qq', '-e', 'trace=read,poll', '-o', log, inst.bin, '--pid', '-', '--json'], {
    stdin: 'pipe', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false, reject: false, timeout: 30_000,
  });
  await sleep(500);
  child.stdin!.end();
  const r = await child;
  t.is(r.exitCode, 0, r.stderr);
  t.is(r.stdout, '', 'no pid, nothing done');
  const calls = fs.readFileSync(log, 'utf8').split('\n');
  const again = calls.filter((l) => /\bread\(0, .*= -1 EAGAIN/.test(l)).length;
  // Control: the non-blocking path was taken (a read said EAGAIN, and netsetup
  // then waited in poll on fd 0). Reads and 10 ms sleeps would say EAGAIN ~50 times.
  t.true(again >= 1, 'stdin was non-blocking');
  t.true(again <= 3, `${again} reads said EAGAIN`);
  t.true(calls.some((l) => /\bpoll\(\[\{fd=0, events=POLLIN\}\], 1, -1\)/.test(l)), 'netsetup waited in poll');
});

test.serial('a netsetup that finds the state lock taken waits in one blocking flock, not in a loop of tries and sleeps', async (t) => {
  t.is((await netsetup(inst, ['list'])).code, 0, 'the state directory and its lock file exist');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-strace-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const log = path.join(dir, 'strace');
  // Another holder of the lock for 700 ms (flock(1) takes it as netsetup does).
  const holder = execa('flock', ['--exclusive', `${inst.stateDir}/lock`, 'sh', '-c', 'echo locked; exec sleep 0.7'], { reject: false });
  t.teardown(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  const r = await execa('strace', ['-f', '-qq', '-e', 'trace=flock', '-o', log, inst.bin, 'list'], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false, reject: false, timeout: 30_000,
  });
  t.is(r.exitCode, 0, r.stderr);
  await holder;
  const calls = fs.readFileSync(log, 'utf8').split('\n').filter((l) => /\bflock\(/.test(l) && !/LOCK_UN/.test(l));
  // Control: the lock was taken when netsetup tried (its non-blocking try said so).
  t.true(calls.some((l) => /LOCK_EX\|LOCK_NB\)\s+= -1 EAGAIN/.test(l)), calls.join('\n'));
  // Then one blocking flock, which returns once the holder lets go.
  const tries = calls.filter((l) => /LOCK_EX\|LOCK_NB/.test(l)).length;
  t.true(tries <= 1, `${tries} non-blocking tries`);
  t.true(calls.some((l) => /flock\(\d+, LOCK_EX\)\s+= 0/.test(l)), calls.join('\n'));
});

// The lock file's first 8 bytes count the holders (kernel/state.ts). This
// stands in for a queue of many short holders: it takes the lock as netsetup
// does and keeps it for `seconds`, counting itself in again every `every`
// seconds (0: never), as a new holder would. Prints "locked" once it holds it.
const HOLDER = `
use Fcntl qw(:flock O_RDWR);
my ($file, $seconds, $every) = @ARGV;
sysopen(my $fh, $file, O_RDWR) or die "open: $!";
flock($fh, LOCK_EX) or die "flock: $!";
sub count { sysseek($fh, 0, 0); my $b = ''; sysread($fh, $b, 8); my $n = length($b) == 8 ? unpack('Q<', $b) : 0; sysseek($fh, 0, 0); syswrite($fh, pack('Q<', $n + 1)) == 8 or die "write: $!"; }
count();
$| = 1; print "locked\\n";
for (my $t = 0; $t < $seconds; $t++) { sleep 1; count() if $every && ($t + 1) % $every == 0; }
`;

async function holdFor(i: Install, seconds: number, every: number): Promise<{ done: Promise<unknown> }> {
  const p = execa('perl', ['-e', HOLDER, `${i.stateDir}/lock`, String(seconds), String(every)], { reject: false });
  await new Promise<void>((resolve) => p.stdout!.once('data', () => resolve()));
  return { done: p };
}

// The control has a state directory of its own, so both can wait at once.
const quiet: Install = install({ octet: 136 });
test.after.always('remove the second install', () => quiet.remove());

test('a call waits behind holders that keep changing for longer than one holder may hold the lock, and gives up on one that holds it too long', async (t) => {
  for (const i of [inst, quiet]) t.is((await netsetup(i, ['list'], { uid: UID })).code, 0, 'the state directory and its lock file exist');
  // 26 s of holders that change every 6 s (longer than LOCK_WAIT_MS, 20 s, in all) ...
  const queue = await holdFor(inst, 26, 6);
  // ... and, as the control, one holder for 26 s.
  const stuck = await holdFor(quiet, 26, 0);
  const [behindQueue, behindStuck] = await Promise.all([netsetup(inst, ['list'], { uid: UID }), netsetup(quiet, ['list'], { uid: UID })]);
  await Promise.all([queue.done, stuck.done]);
  t.is(behindQueue.code, 0, behindQueue.stderr);
  t.is(behindStuck.code, 7, behindStuck.stderr);
  t.regex(behindStuck.stderr, /another netsetup has held it for 20 s/);
});
