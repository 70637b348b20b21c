// Once a sandbox's command runs, the launcher and netsetup's holder become the
// supervisor (packages/shared/src/supervisor/): the same pids, a few KiB each
// instead of a Node process. Everything the launcher did after the start must
// still happen: signals forwarded (128+N), the exit code, the exited line, the
// lease released the moment the command exits, and nothing lost when any of
// these processes is SIGKILLed. Run as an unprivileged user, with netsetup
// installed setuid root; traffic: none.
import test from 'ava';
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { forgetSandboxesOf, makeRootfs, processesOf, requireRoot, sleep, spawnAs, type Child, type RunOptions } from '../helpers/sandbox.ts';
import { hostVeths, install, run as netsetup, type Install } from '../helpers/netsetup.ts';

requireRoot();
// A user of its own: other test files count the processes of theirs.
const UID = 4340;
forgetSandboxesOf(UID);
const asUser: RunOptions = { uid: UID, gid: UID };
const rootfs = makeRootfs();
const inst: Install = install({ octet: 120, quota: { users: { '*': 20 } } });
const LAUNCHER = path.join(inst.prefix, 'bin/launcher');
const running: Child[] = [];

test.after.always('end the sandboxes, remove the install', async () => {
  for (const c of running) c.kill('SIGKILL');
  await Promise.allSettled(running);
  inst.remove();
});

interface Run {
  child: Child;
  /** The info lines so far. */
  info: () => string[];
  started: Promise<{ pid: number; lease?: string; address?: string }>;
  done: Promise<{ code: number | null; stdout: string; stderr: string; info: string[] }>;
}

/** The installed launcher as the test user with --info-fd 3 (`prefix`: a command
 *  line to run it under, e.g. unshare). */
function launch(args: string[], script: string, prefix: string[] = []): Run {
  const argv = [LAUNCHER, '--info-fd', '3', '--rootfs', rootfs, ...args, '--', '/bin/sh', '-c', script];
  const child: Child = prefix.length > 0 ? (execa(prefix[0]!, [...prefix.slice(1), ...argv], { stdio: ['pipe', 'pipe', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false, reject: false, forceKillAfterDelay: false, cwd: '/' }) as unknown as Child) : spawnAs(argv[0]!, argv.slice(1), { ...asUser, extraFds: ['pipe'] });
  running.push(child);
  child.stdin!.end();
  let text = '';
  let resolveStarted: (s: { pid: number; lease?: string }) => void;
  const started = new Promise<{ pid: number; lease?: string }>((res) => (resolveStarted = res));
  const infoStream = child.stdio[3] as NodeJS.ReadableStream;
  infoStream.on('data', (d: Buffer) => {
    text += d.toString();
    if (text.includes('\n')) resolveStarted(JSON.parse(text.split('\n')[0]!) as { pid: number; lease?: string });
  });
  const infoEnd = new Promise<void>((res) => infoStream.on('end', () => res()));
  const info = (): string[] => text.split('\n').filter(Boolean);
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = (async () => {
    const r = await child;
    clearTimeout(timer);
    await infoEnd;
    return { code: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr), info: info() };
  })();
  return { child, info, started, done };
}

const exeOf = (pid: number): string => {
  try {
    return fs.readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return '';
  }
};
const isSupervisor = (pid: number): boolean => exeOf(pid).startsWith('/memfd:nsbox-supervisor');
const status = (pid: number): string => fs.readFileSync(`/proc/${pid}/status`, 'utf8');

/** Private memory (clean + dirty) of a process in KiB, from smaps_rollup. */
function privateKiB(pid: number): number {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return field('Private_Clean') + field('Private_Dirty');
}

/** Waits until `ok()` or `ms` have passed; returns ok()'s last value. */
async function until(ok: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (ok()) return true;
  return ok();
}

/** The launcher's children: its sandbox (the test user's) and its holder (root). */
function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
const holderOf = (pid: number): number | undefined => childrenOf(pid).find((c) => /^Uid:\s+0\s/m.test(status(c)));

const leases = async (): Promise<unknown[]> => JSON.parse((await netsetup(inst, ['list', '--json'], { uid: UID })).stdout) as unknown[];

test.serial('after the start, the launcher (at once) and its holder (after 2 s) are the supervisor: same pids, named as before, < 1 MiB private each', async (t) => {
  const r = launch([], 'echo ready; exec sleep 60');
  const started = await r.started;
  const pid = r.child.pid!;
  t.true(await until(() => isSupervisor(pid)), `the launcher execs the supervisor (exe ${exeOf(pid)})`);
  const holder = holderOf(pid)!;
  t.truthy(holder, 'a holder');
  t.true(await until(() => isSupervisor(holder)), `the holder execs the supervisor (exe ${exeOf(holder)})`);
  t.is(childrenOf(pid).find((c) => c !== holder), started.pid, 'the sandbox is still the same process\'s child');
  // Each names itself first thing after its exec (until then the name is the memfd's).
  t.true(await until(() => /^Name:\s+launcher$/m.test(status(pid)), 1000), 'the launcher keeps its name');
  t.true(await until(() => /^Name:\s+netsetup$/m.test(status(holder)), 1000), 'the holder keeps its name');
  t.regex(status(holder), /^Uid:\s+0\s+0\s+0\s+0$/m, 'the holder is root, as before');
  t.regex(status(pid), new RegExp(`^Uid:\\s+${UID}\\s+${UID}\\s+${UID}\\s+${UID}$`, 'm'));
  t.true(privateKiB(pid) < 1024, `launcher: ${privateKiB(pid)} KiB private`);
  t.true(privateKiB(holder) < 1024, `holder: ${privateKiB(holder)} KiB private`);
  // Only the kept fds: 0-2, --info-fd 3 and the holder's two pipes (and its binary).
  t.is(fs.readdirSync(`/proc/${pid}/fd`).length, 6, 'the launcher keeps 0-2, the info fd and the holder pipes');
  t.is(fs.readdirSync(`/proc/${holder}/fd`).length, 4, 'the holder keeps 0-2 and its own binary');
  t.not(/^NSsid:.*$/m.exec(status(holder))?.[0], /^NSsid:.*$/m.exec(status(pid))?.[0], "the holder left the caller's session");
  for (const sig of ['SIGINT', 'SIGTSTP', 'SIGHUP', 'SIGQUIT', 'SIGTTIN'] as const) {
    process.kill(holder, sig);
    await sleep(100);
    t.regex(status(holder), /^State:\s+S/m, `the holder's supervisor shrugs off ${sig}`);
  }
  t.is((await leases()).length, 1, 'the lease is still held');
  r.child.kill('SIGTERM');
  const d = await r.done;
  t.is(d.code, 143);
  t.deepEqual(d.info.slice(1), ['{"event":"exited","signal":15}']);
});

test.serial('the control: where memfds may not be executed (vm.memfd_noexec=2), the launcher goes on as Node, > 1 MiB, and still works', async (t) => {
  // The sysctl is per pid namespace: this one only.
  const wrap = ['unshare', '--pid', '--fork', '--mount-proc', 'sh', '-c', `echo 2 > /proc/sys/vm/memfd_noexec && exec setpriv --reuid=${UID} --regid=${UID} --clear-groups "$@"`, 'sh'];
  const r = launch(['--net', 'none'], 'echo ready; exec sleep 60', wrap);
  await r.started;
  await sleep(300);
  const pid = processesOf(UID).find((p) => exeOf(p) === LAUNCHER);
  t.truthy(pid, 'the launcher is still the launcher binary');
  t.true(privateKiB(pid!) > 1024, `a Node launcher: ${privateKiB(pid!)} KiB private`);
  process.kill(pid!, 'SIGTERM');
  const d = await r.done;
  t.is(d.code, 143, d.stderr);
  t.deepEqual(d.info.slice(1), ['{"event":"exited","signal":15}']);
});

test.serial('signals reach the command: one that traps SIGTERM exits its own way, one that does not gives 128+15; with --init, tini passes it on', async (t) => {
  const trapped = launch([], 'trap "echo trapped; exit 7" TERM; echo ready; while :; do sleep 0.1; done');
  const plain = launch([], 'echo ready; exec sleep 60');
  const init = launch(['--init'], 'echo ready; exec sleep 60');
  for (const r of [trapped, plain, init]) {
    await r.started;
    t.true(await until(() => isSupervisor(r.child.pid!)));
    await sleep(100);
    r.child.kill('SIGTERM');
  }
  const [a, b, c] = await Promise.all([trapped.done, plain.done, init.done]);
  t.is(a.code, 7, a.stderr);
  t.is(a.stdout, 'ready\ntrapped\n');
  t.deepEqual(a.info.slice(1), ['{"event":"exited","code":7}']);
  t.is(b.code, 143, b.stderr);
  t.deepEqual(b.info.slice(1), ['{"event":"exited","signal":15}']);
  t.is(c.code, 143, c.stderr);
  t.deepEqual(c.info.slice(1), ['{"event":"exited","code":143}'], 'tini reports the command\'s death as its exit code');
});

test.serial('a SIGTERM sent at any moment around the hand-over is never lost: 30 launchers, each signalled 0-30 ms after its started line', async (t) => {
  // A lost signal would leave the command running to its end (exit 0 after 20 s).
  const runs = Array.from({ length: 30 }, () => launch(['--net', 'none'], 'exec sleep 20'));
  await Promise.all(
    runs.map(async (r, i) => {
      await r.started;
      await sleep(i % 31);
      r.child.kill('SIGTERM');
    }),
  );
  const done = await Promise.all(runs.map((r) => r.done));
  t.deepEqual(done.map((d) => d.code), runs.map(() => 143));
  t.true(done.every((d) => d.info[1] === '{"event":"exited","signal":15}'));
});

test.serial('the exit code and the exited line are the command\'s, and its lease is gone for other calls by the time the launcher has exited', async (t) => {
  for (const code of [0, 3, 255]) {
    const r = launch([], `exit ${code}`);
    const started = await r.started;
    t.truthy(started.lease);
    const d = await r.done;
    // Checked right after the exit: the release must not lag behind it.
    t.deepEqual(await leases(), [], `after exit ${code}`);
    t.is(d.code, code, d.stderr);
    t.is(d.stderr, '');
    t.deepEqual(d.info.slice(1), [`{"event":"exited","code":${code}}`]);
  }
  // A longer one, whose holder has handed over too (its release is release-held);
  // the control: while the command runs, the same call lists its lease.
  const r = launch([], 'echo ready; exec sleep 60');
  const started = await r.started;
  t.true(await until(() => isSupervisor(r.child.pid!) && isSupervisor(holderOf(r.child.pid!) ?? 0)));
  t.deepEqual((await leases()).map((l) => (l as { id: string }).id), [started.lease]);
  r.child.kill('SIGTERM');
  const d = await r.done;
  t.deepEqual(await leases(), []);
  t.is(d.code, 143);
  t.is(d.stderr, '');
});

test.serial('the supervisor SIGKILLed: the sandbox dies with it and the holder releases the lease', async (t) => {
  const r = launch([], 'echo ready; exec sleep 60');
  const started = await r.started;
  const pid = r.child.pid!;
  t.true(await until(() => isSupervisor(pid) && isSupervisor(holderOf(pid) ?? 0)));
  t.deepEqual(hostVeths(inst.bridge).length, 1);
  process.kill(pid, 'SIGKILL');
  await r.done;
  t.true(await until(() => !processesOf(UID).includes(started.pid)), 'the sandbox died (parent-death signal)');
  t.true(await until(() => hostVeths(inst.bridge).length === 0), 'the holder deleted the veth');
  t.deepEqual(await leases(), []);
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(started.lease!), 'no record left');
});

test.serial("the holder's supervisor SIGKILLed (by root): the sandbox keeps its network; once it ends, the launcher exits as the command did and the next call collects the lease", async (t) => {
  const r = launch([], 'echo ready; exec sleep 60');
  const started = await r.started;
  const pid = r.child.pid!;
  const holder = holderOf(pid)!;
  t.true(await until(() => isSupervisor(holder)));
  process.kill(holder, 'SIGKILL');
  await sleep(100);
  t.is((await leases()).length, 1, 'a ready lease whose veth is there is the sandbox\'s, holder or not');
  r.child.kill('SIGTERM');
  const d = await r.done;
  t.is(d.code, 143, 'the launcher does not wait for a releasing line from a dead holder');
  t.deepEqual(d.info.slice(1), ['{"event":"exited","signal":15}']);
  // The kernel deletes the veth with the sandbox's namespace; the next call drops the record.
  t.true(await until(() => hostVeths(inst.bridge).length === 0));
  t.deepEqual(await leases(), []);
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(started.lease!), 'no record left');
});

test.serial('netsetup release-held is only for root: a user gets exit 3 and one line and the lease stays; root releases it', async (t) => {
  const r = launch([], 'echo ready; exec sleep 60');
  const started = await r.started;
  const lease = started.lease!;
  const user = await netsetup(inst, ['release-held', lease, '--json'], { uid: UID });
  t.is(user.code, 3);
  t.is(user.stderr, 'netsetup: release-held: only root may do this. Ask the administrator\n');
  t.is(user.stdout, '');
  const withConfig = await netsetup(inst, ['release-held', lease, '--config', inst.configFile], { uid: UID });
  t.is(withConfig.code, 3, 'nor with a configuration of its choosing');
  t.is((await leases()).length, 1, 'the lease is still there');
  const root = await netsetup(inst, ['release-held', lease, '--json', '--config', inst.configFile]);
  t.is(root.code, 0, root.stderr);
  t.is(root.stdout, `${JSON.stringify({ releasing: lease })}\n`);
  t.deepEqual(await leases(), []);
  t.deepEqual(hostVeths(inst.bridge), []);
  r.child.kill('SIGTERM');
  t.is((await r.done).code, 143);
});
