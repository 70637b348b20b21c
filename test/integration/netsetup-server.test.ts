// A user's netsetup server (packages/netsetup/src/serve.ts): the netsetup a
// launcher ran takes the same user's next sandboxes over an abstract unix
// socket, saving them a netsetup start. What must hold: only that user's own
// connections are read (the kernel's SO_PEERCRED, not the name, decides); a name
// another user bound first only costs the speed-up; a refusal reaches the
// launcher's stderr as netsetup's own line; served leases are released the
// moment their sandbox ends, also when its launcher is SIGKILLed, and go to a
// supervisor after 2 s; the server leaves serveSeconds after its last sandbox;
// serveSeconds 0 turns it off. And `netsetup serve`, run by root: it takes every
// user's launchers, each as its own caller (quota, target), at most 128
// connections of one user, out of a sandbox's reach, and stopping it takes no
// sandbox's network. Run as unprivileged users with
// netsetup installed setuid root; traffic: none.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { forgetSandboxesOf, makeRootfs, requireRoot, sleep, spawnAs, userNode, type Child } from '../helpers/sandbox.ts';
import { hostVeths, inNetns, install, run as netsetup, sandbox, type Install, type Sandbox } from '../helpers/netsetup.ts';
import { serverName, serverRequest, holdArgs, systemServerName } from '../../packages/shared/src/protocol.ts';

requireRoot();
// The unprivileged ends of the socket tests run this Node as the test users.
const NODE = userNode();
const A = 4350;
const B = 4351;
forgetSandboxesOf(A);
forgetSandboxesOf(B);
const rootfs = makeRootfs();
const running: Child[] = [];
const installs: Install[] = [];
const targets: Sandbox[] = [];

test.after.always('end the sandboxes, remove the installs', async () => {
  for (const c of running) c.kill('SIGKILL');
  await Promise.allSettled(running);
  for (const s of targets) await s.kill();
  for (const i of installs) i.remove();
});

function installed(octet: number, o: { serveSeconds?: number; quota?: Record<string, number> } = {}): Install {
  // netsetup's default (30 s) unless given: the helper's default is 0.
  const inst = install({ octet, quota: { users: o.quota ?? { '*': 8 } }, serveSeconds: o.serveSeconds ?? 30 });
  installs.push(inst);
  return inst;
}

interface Launch {
  child: Child;
  /** The started line on --info-fd (pid, lease, address), or undefined if it never came. */
  started: Promise<{ pid: number; lease?: string; address?: string } | undefined>;
  done: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** The install's launcher as `uid`, --info-fd 3, running `script` in the sandbox. */
function launch(inst: Install, uid: number, script: string, args: string[] = []): Launch {
  const child = spawnAs(path.join(inst.prefix, 'bin/launcher'), ['--info-fd', '3', '--rootfs', rootfs, ...args, '--', '/bin/sh', '-c', script], { uid, extraFds: ['pipe'] });
  running.push(child);
  child.stdin!.end();
  let text = '';
  const started = new Promise<{ pid: number; lease?: string; address?: string } | undefined>((resolve) => {
    const info = child.stdio[3] as NodeJS.ReadableStream;
    info.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes('\n')) resolve(JSON.parse(text.split('\n')[0]!) as { pid: number; lease?: string; address?: string });
    });
    info.on('end', () => resolve(undefined));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = (async () => {
    const r = await child;
    clearTimeout(timer);
    return { code: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
  })();
  return { child, started, done };
}

/** The pids running the install's netsetup binary as Node (not yet a supervisor). */
function netsetups(inst: Install): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readlinkSync(`/proc/${entry}/exe`).replace(/ \(deleted\)$/, '') === inst.bin) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const leases = async (inst: Install): Promise<{ id: string; uid: number; address: string }[]> => JSON.parse((await netsetup(inst, ['list', '--json'])).stdout) as { id: string; uid: number; address: string }[];

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await check()) return;
  throw new Error(`timed out waiting: ${what}`);
}

/** The socket name of uid's server for the install's binary. */
const nameFor = (inst: Install, uid: number): string => serverName(uid, fs.statSync(inst.bin, { bigint: true }));

/** Connects to an abstract socket as `uid` with the project's Node, sends `line`
 *  and returns what came back before the server closed (or after `ms`). */
async function ask(uid: number, name: string, line: string, ms = 5000): Promise<string> {
  const script = `const s = require('node:net').connect({ path: '\\0' + process.argv[1] });
let got = ''; s.on('connect', () => s.write(process.argv[2])); s.on('data', (d) => { got += d; if (got.includes('\\n')) s.end(); });
s.on('error', () => {}); s.on('close', () => { process.stdout.write(got); process.exit(0); }); setTimeout(() => { process.stdout.write(got); process.exit(0); }, ${ms});`;
  const r = await execa(NODE, ['-e', script, name, line], { uid, gid: uid, env: { PATH: '/usr/bin:/bin' }, extendEnv: false, cwd: '/', reject: false, timeout: ms + 10_000 });
  return String(r.stdout);
}

/** Listens on an abstract socket as `uid`; reports how many bytes each connection sent before it closed. */
function squat(uid: number, name: string): { ready: Promise<void>; received: () => number[]; stop: () => void } {
  const script = `const srv = require('node:net').createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; c.end(); }); c.on('error', () => {}); c.on('close', () => process.stdout.write(n + '\\n')); });
srv.listen({ path: '\\0' + process.argv[1] }, () => process.stdout.write('listening\\n'));`;
  const child = execa(NODE, ['-e', script, name], { uid, gid: uid, env: { PATH: '/usr/bin:/bin' }, extendEnv: false, cwd: '/', reject: false, forceKillAfterDelay: false }) as unknown as Child;
  running.push(child);
  let out = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening\n')) resolve();
    });
    void child.then((r) => reject(new Error(`the squatter (uid ${uid}) ended before it listened: ${String(r.stderr)}`)));
  });
  return { ready, received: () => out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number), stop: () => child.kill('SIGKILL') };
}

test('a second sandbox of a user is taken by the first one\'s netsetup: no netsetup starts for it; with serveSeconds 0 one does (control)', async (t) => {
  for (const [octet, serveSeconds, expected] of [[142, 30, 1], [143, 0, 2]] as const) {
    const inst = installed(octet, { serveSeconds });
    const first = launch(inst, A, 'sleep 30');
    const one = await first.started;
    t.truthy(one?.address, 'the first sandbox has its address');
    const second = launch(inst, A, 'ip -4 -o addr show eth0; sleep 30');
    const two = await second.started;
    // Counted at once: a netsetup of the second sandbox's own would still be
    // Node for 2 s (until its hand-over to the supervisor).
    const count = netsetups(inst).length;
    t.is(count, expected, `serveSeconds ${serveSeconds}: ${count} netsetup process(es) while both start`);
    t.truthy(two?.address);
    t.not(two?.address, one?.address, 'each its own address');
    t.is((await leases(inst)).length, 2);
    first.child.kill('SIGTERM');
    second.child.kill('SIGTERM');
    t.is((await first.done).code, 143);
    const end = await second.done;
    t.is(end.code, 143);
    t.regex(end.stdout, new RegExp(`inet ${two!.address!.replace(/\./g, '\\.')}/24`), 'seen inside on eth0');
    t.deepEqual(await leases(inst), [], 'both released at their end');
    t.deepEqual(hostVeths(inst.bridge), []);
  }
});

test('another user\'s connection to a user\'s server is closed unread and leases nothing; the owner\'s same request is answered (control)', async (t) => {
  const inst = installed(144);
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  const name = nameFor(inst, A);
  const victim = await sandbox(A);
  const own = await sandbox(B);
  targets.push(victim, own);
  // B asks A's server for B's own process, and for A's.
  for (const pid of [own.pid, victim.pid]) {
    const got = await ask(B, name, serverRequest(holdArgs([], pid)));
    t.is(got, '', `uid ${B} got nothing back for pid ${pid}`);
  }
  t.deepEqual((await leases(inst)).map((l) => l.uid), [A], 'only the first sandbox\'s lease');
  // The control: the owner's connection, same request for the owner's process.
  const answered = await ask(A, name, serverRequest(holdArgs([], victim.pid)));
  t.regex(answered, /"address":"10\.231\.144\.\d+"/, 'the owner is answered');
  await until('the control\'s lease released when its connection closed', async () => (await leases(inst)).length === 1);
  first.child.kill('SIGTERM');
  await first.done;
});

test('a server name another user bound first: the launcher sees a listener that is not root and runs its own netsetup; a root listener gets the request (control)', async (t) => {
  const inst = installed(145);
  for (const [squatter, sends] of [[B, false], [0, true]] as const) {
    const s = squat(squatter, nameFor(inst, A));
    await s.ready;
    const l = launch(inst, A, 'ip -4 -o addr show eth0');
    const r = await l.done;
    t.is(r.code, 0, `squatted by uid ${squatter}: ${r.stderr}`);
    t.regex(r.stdout, /inet 10\.231\.145\.\d+\/24/, 'the sandbox has its network all the same');
    await until('the squatter saw the connection close', () => s.received().length > 0);
    const bytes = s.received().reduce((a, b) => a + b, 0);
    if (sends) t.true(bytes > 0, 'a root listener is taken for the server and gets the request');
    else t.is(bytes, 0, `uid ${squatter}'s listener got no request`);
    s.stop();
    t.deepEqual(await leases(inst), []);
  }
});

test('an edit of the configuration decides the next served sandbox: a quota lowered while the server runs refuses it; before the edit the same sandbox was served (control)', async (t) => {
  const inst = installed(154, { quota: { [String(A)]: 8 } });
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  const servers = netsetups(inst);
  t.is(servers.length, 1, 'the first one\'s netsetup serves');
  t.is((await launch(inst, A, 'true').done).code, 0, 'served before the edit');
  // The admin lowers the user's quota to the one sandbox running, in place (as an editor that keeps the file).
  const conf = JSON.parse(fs.readFileSync(inst.configFile, 'utf8')) as { networks: { quota: { users: Record<string, number> } }[] };
  conf.networks[0]!.quota.users = { [String(A)]: 1 };
  fs.writeFileSync(inst.configFile, JSON.stringify(conf, null, 2));
  const r = await launch(inst, A, 'true').done;
  t.is(r.code, 125);
  t.regex(r.stderr, /^netsetup: [^\n]*quota[^\n]*\n$/);
  t.true(netsetups(inst).includes(servers[0]!), 'refused by the same server');
  first.child.kill('SIGTERM');
  await first.done;
});

test('a server\'s refusal reaches the launcher\'s stderr as netsetup\'s one line, with the launcher\'s exit code for it; the first launcher\'s stderr gets nothing', async (t) => {
  const inst = installed(146, { quota: { [String(A)]: 1 } });
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  t.is(netsetups(inst).length, 1, 'the first one\'s netsetup serves');
  const second = launch(inst, A, 'true');
  const r = await second.done;
  t.is(r.code, 125);
  t.regex(r.stderr, /^netsetup: [^\n]*quota[^\n]*\n$/, 'one line, netsetup\'s own');
  first.child.kill('SIGTERM');
  const f = await first.done;
  t.is(f.stderr, '', 'nothing went to the first launcher\'s stderr');
});

test('served leases: released the moment the sandbox ends, before and after their hand-over to a supervisor (2 s), and when the launcher is SIGKILLed', async (t) => {
  const inst = installed(147);
  const first = launch(inst, A, 'sleep 60');
  t.truthy((await first.started)?.address);
  // Ends before the hand-over: released by the server itself.
  const quick = launch(inst, A, 'sleep 0.5');
  const q = await quick.started;
  t.is((await quick.done).code, 0);
  t.false((await leases(inst)).some((l) => l.id === q?.lease), 'gone when its launcher has exited');
  // Ends after it: released by its supervisor.
  const slow = launch(inst, A, 'sleep 3');
  const s = await slow.started;
  t.is((await slow.done).code, 0);
  t.false((await leases(inst)).some((l) => l.id === s?.lease), 'gone when its launcher has exited');
  // Its launcher SIGKILLed after the hand-over.
  const killed = launch(inst, A, 'sleep 60');
  const k = await killed.started;
  await sleep(2500);
  t.true((await leases(inst)).some((l) => l.id === k?.lease));
  killed.child.kill('SIGKILL');
  await killed.done;
  await until('the SIGKILLed sandbox\'s lease released', async () => !(await leases(inst)).some((l) => l.id === k?.lease));
  first.child.kill('SIGTERM');
  await first.done;
  await until('all leases and veths gone', async () => (await leases(inst)).length === 0 && hostVeths(inst.bridge).length === 0);
  t.pass();
});

test('the server leaves serveSeconds after its last sandbox, and at once after an uninstall', async (t) => {
  // 4 s: the other tests of this file run meanwhile, and their synchronous calls can hold this one's timers up for a second or more.
  const inst = installed(148, { serveSeconds: 4 });
  const r = await launch(inst, A, 'true').done;
  t.is(r.code, 0);
  const servers = netsetups(inst);
  t.is(servers.length, 1, 'serving right after its sandbox ended');
  await sleep(500);
  // (A child it spawns shows its executable until its exec: the server is what must still be there.)
  t.true(netsetups(inst).includes(servers[0]!), 'still there before serveSeconds');
  await until('gone after serveSeconds', () => netsetups(inst).length === 0, 8000);
  // Another install, uninstalled while its server idles.
  const other = installed(149);
  t.is((await launch(other, A, 'true').done).code, 0);
  t.is(netsetups(other).length, 1);
  await execa(path.join(process.cwd(), 'scripts/uninstall.sh'), [other.prefix], { reject: false });
  await until('gone within a second or so of the uninstall', () => netsetups(other).length === 0, 3000);
  t.pass();
});

test('a connection that sends half a request and waits holds nothing up: the next sandbox is served meanwhile, and the half one is dropped after 5 s', async (t) => {
  const inst = installed(141);
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  const server = netsetups(inst);
  t.is(server.length, 1);
  const line = serverRequest(holdArgs([], 1));
  const began = Date.now();
  const half = ask(A, nameFor(inst, A), line.slice(0, 10), 15_000);
  await sleep(300);
  const r = await launch(inst, A, 'ip -4 -o addr show eth0').done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /inet 10\.231\.141\.\d+\/24/, 'served while the half request waits');
  t.deepEqual(netsetups(inst), server, 'by the server, not a netsetup of its own');
  t.is(await half, '', 'the half request got no answer');
  const waited = Date.now() - began;
  t.true(waited >= 4500 && waited < 12_000, `dropped after ${waited} ms`);
  first.child.kill('SIGTERM');
  await first.done;
});

/** The body at `url`, retried until it answers (or the error code after 10 s). */
async function page(url: string, ms = 10_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(ms > 0 ? 2000 : 500) });
      return await r.text();
    } catch (err) {
      if (Date.now() > end) return `error: ${((err as Error).cause as NodeJS.ErrnoException | undefined)?.code ?? (err as Error).message}`;
      await sleep(100);
    }
  }
}

test('a served sandbox publishes its ports as one with a netsetup of its own would: reachable through the host, gone with its lease', async (t) => {
  const inst = installed(152);
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  const server = netsetups(inst);
  const hostPort = 21000 + (process.pid % 20000);
  const web = launch(inst, A, 'mkdir -p /tmp/w && echo served-page > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w', ['-p', `${hostPort}:8080`]);
  const started = await web.started;
  t.deepEqual(netsetups(inst), server, 'served');
  t.deepEqual((started as unknown as { published: unknown[] }).published, [{ hostAddress: '0.0.0.0', hostPort, port: 8080, protocol: 'tcp' }]);
  t.is(await page(`http://${inst.gateway}:${hostPort}/`), 'served-page\n', 'through the published port');
  web.child.kill('SIGTERM');
  t.is((await web.done).code, 143);
  // The releasing line comes once the lease is marked; its rules go right after.
  let answer = '';
  for (const end = Date.now() + 5000; Date.now() < end && answer !== 'error: ECONNREFUSED'; await sleep(100)) answer = await page(`http://${inst.gateway}:${hostPort}/`, 0);
  t.is(answer, 'error: ECONNREFUSED', 'the published port is gone with the lease');
  first.child.kill('SIGTERM');
  await first.done;
});

// ---------------------------------------------------------------- netsetup serve (root's, every user's)
// Serial (ava runs these before the concurrent ones above): the tests above
// count processes within their 2 s windows, which more load at once would stretch.

/** Every pid seen running the install's netsetup binary from now until stop(). */
function watchNetsetups(inst: Install): { stop: () => Set<number> } {
  const seen = new Set<number>();
  const look = (): void => void netsetups(inst).forEach((p) => seen.add(p));
  look();
  const timer = setInterval(look, 10);
  return { stop: () => (clearInterval(timer), look(), seen) };
}

/** An install with serving off and its `netsetup serve` running; the name it listens on. */
async function served(octet: number): Promise<{ inst: Install; daemon: Child; name: string }> {
  const inst = installed(octet, { serveSeconds: 0 });
  const { child: daemon } = await startServe(inst);
  return { inst, daemon, name: systemServerName(fs.statSync(inst.bin, { bigint: true })) };
}

/** `netsetup serve` of the install, run by root, once it listens (wrapped: a
 *  child is a promise of its end, which an async function would wait for). */
async function startServe(inst: Install): Promise<{ child: Child }> {
  const child = execa(inst.bin, ['serve'], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false, cwd: '/', reject: false, stdin: 'ignore', forceKillAfterDelay: false }) as unknown as Child;
  running.push(child);
  const name = `@${systemServerName(fs.statSync(inst.bin, { bigint: true }))}`;
  await until('netsetup serve listens', () => child.exitCode === null && fs.readFileSync('/proc/net/unix', 'utf8').includes(name));
  return { child };
}

test.serial('netsetup serve, run by root, takes every user\'s sandboxes: two users\' launchers start with no netsetup of their own, each lease its user\'s; without it (control) a launcher runs one', async (t) => {
  // serveSeconds 0: no user's server, so that the control counts a netsetup of the launcher's own.
  const inst = installed(155, { serveSeconds: 0 });
  let watch = watchNetsetups(inst);
  const alone = launch(inst, A, 'sleep 30');
  t.truthy((await alone.started)?.address);
  t.true(watch.stop().size > 0, 'control: without netsetup serve, the launcher runs its own netsetup');
  alone.child.kill('SIGTERM');
  await alone.done;
  await until('the control\'s lease released', async () => (await leases(inst)).length === 0);

  const { child: daemon } = await startServe(inst);
  watch = watchNetsetups(inst);
  const a = launch(inst, A, 'sleep 30');
  const b = launch(inst, B, 'ip -4 -o addr show eth0; sleep 30');
  const [sa, sb] = await Promise.all([a.started, b.started]);
  t.truthy(sa?.address);
  t.truthy(sb?.address);
  t.deepEqual([...watch.stop()], [daemon.pid!], 'no netsetup but the service');
  const held = await leases(inst);
  t.deepEqual(held.map((l) => l.uid).sort(), [A, B].sort(), 'each lease is its own user\'s');
  t.is(held.find((l) => l.uid === B)?.address, sb?.address);
  b.child.kill('SIGTERM');
  const rb = await b.done;
  t.regex(rb.stdout, new RegExp(`inet ${sb!.address!.replace(/\./g, '\\.')}/24`), 'B saw its address on eth0');
  a.child.kill('SIGTERM');
  await a.done;
  await until('both leases released at their end', async () => (await leases(inst)).length === 0);
  t.deepEqual(hostVeths(inst.bridge), []);
  daemon.kill('SIGTERM');
  await daemon;
});

test.serial('netsetup serve decides each request on its own user: a quota of one refuses that user\'s second sandbox with netsetup\'s one line, and not another user\'s first', async (t) => {
  const inst = installed(156, { serveSeconds: 0, quota: { [String(A)]: 1, [String(B)]: 1 } });
  const { child: daemon } = await startServe(inst);
  const first = launch(inst, A, 'sleep 30');
  t.truthy((await first.started)?.address);
  const second = await launch(inst, A, 'true').done;
  t.is(second.code, 125);
  t.regex(second.stderr, /^netsetup: [^\n]*quota[^\n]*\n$/, 'one line, netsetup\'s own');
  const other = await launch(inst, B, 'true').done;
  t.is(other.code, 0, `another user's first sandbox: ${other.stderr}`);
  first.child.kill('SIGTERM');
  await first.done;
  daemon.kill('SIGTERM');
  await daemon;
});

test.serial('stopping netsetup serve takes no sandbox\'s network: killed, its sandbox keeps its lease through the next call\'s GC and its address; a lease released instead (control) loses both; the next call after their end collects them', async (t) => {
  const inst = installed(157, { serveSeconds: 0 });
  const { child: daemon } = await startServe(inst);
  const boxes = [launch(inst, A, 'sleep 60'), launch(inst, A, 'sleep 60')];
  const [kept, lost] = await Promise.all(boxes.map((b) => b.started));
  t.truthy(kept?.lease);
  t.truthy(lost?.lease);
  daemon.kill('SIGKILL');
  await daemon;
  // The control: the other lease released by its user.
  t.is((await netsetup(inst, ['release', lost!.lease!], { uid: A })).code, 0);
  const after = (await leases(inst)).map((l) => l.id);
  const eth0 = (pid: number): string => inNetns(pid, ['ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout;
  t.true(after.includes(kept!.lease!), 'the served lease outlives the service');
  t.regex(eth0(kept!.pid), new RegExp(`inet ${kept!.address!.replace(/\./g, '\\.')}/24`));
  t.false(after.includes(lost!.lease!), 'control: the released lease is gone');
  t.is(eth0(lost!.pid), '', 'control: and so is its eth0');
  for (const b of boxes) b.child.kill('SIGTERM');
  await Promise.all(boxes.map((b) => b.done));
  await until('collected after their end', async () => (await leases(inst)).length === 0);
  t.deepEqual(hostVeths(inst.bridge), []);
});

test.serial('one user\'s connections cannot fill netsetup serve: beyond 128 of one uid are closed unread, and another user is still served; before them (control) the same request is served', async (t) => {
  const { inst, daemon, name } = await served(158);
  const mine = await sandbox(A);
  const theirs = await sandbox(B);
  targets.push(mine, theirs);
  t.regex(await ask(A, name, serverRequest(holdArgs([], mine.pid))), /"address":"10\.231\.158\.\d+"/, 'control: answered before the flood');
  await until('the control\'s lease released', async () => (await leases(inst)).length === 0);
  // 128 connections of A's that send nothing (each may wait 5 s for its request).
  const script = `const net = require('node:net'); let n = 0; const all = [];
for (let i = 0; i < 128; i++) { const s = net.connect({ path: '\\0' + process.argv[1] }); all.push(s); s.on('error', () => {}); s.on('connect', () => { if (++n === 128) process.stdout.write('open\\n'); }); }
setTimeout(() => process.exit(0), 20000);`;
  const flood = execa(NODE, ['-e', script, name], { uid: A, gid: A, env: { PATH: '/usr/bin:/bin' }, extendEnv: false, cwd: '/', reject: false, forceKillAfterDelay: false }) as unknown as Child;
  running.push(flood);
  await new Promise<void>((resolve) => flood.stdout!.on('data', (d: Buffer) => d.toString().includes('open') && resolve()));
  await sleep(300);
  t.is(await ask(A, name, serverRequest(holdArgs([], mine.pid)), 2000), '', 'the 129th connection of A is closed unread');
  t.regex(await ask(B, name, serverRequest(holdArgs([], theirs.pid)), 4000), /"address":"10\.231\.158\.\d+"/, 'B is served meanwhile');
  t.deepEqual((await leases(inst)).map((l) => l.uid), [], 'nothing held once the connections are gone');
  flood.kill('SIGKILL');
  daemon.kill('SIGTERM');
  await daemon;
});

test.serial('netsetup serve decides a target as a command line would: another user\'s process is refused with netsetup\'s line and leases nothing; its owner\'s same request is served (control)', async (t) => {
  const { inst, daemon, name } = await served(160);
  const victim = await sandbox(A);
  targets.push(victim);
  const refused = await ask(B, name, serverRequest(holdArgs([], victim.pid)));
  t.regex(refused, /^\{"error":"netsetup: pid \d+: no such process of yours[^"]*","exit":3\}$/, `uid ${B} asking for uid ${A}'s process`);
  t.deepEqual(await leases(inst), []);
  t.regex(await ask(A, name, serverRequest(holdArgs([], victim.pid))), /"address":"10\.231\.160\.\d+"/, 'control: the owner is served');
  daemon.kill('SIGTERM');
  await daemon;
});

test.serial('a sandbox cannot reach netsetup serve: from the sandbox\'s network namespace its name does not exist; from the host the same user reaches it (control)', async (t) => {
  const { daemon, name } = await served(161);
  const box = await sandbox(A);
  targets.push(box);
  // Abstract names belong to a network namespace: a sandbox's root, whose
  // sockets are made in the sandbox's, sees none of the host's.
  const script = `const s = require('node:net').connect({ path: '\\0' + process.argv[1] });
s.on('connect', () => { process.stdout.write('connected'); process.exit(0); }); s.on('error', (e) => { process.stdout.write(e.code); process.exit(0); });`;
  const inside = await execa('nsenter', ['-t', String(box.pid), '-n', 'setpriv', '--reuid', String(A), '--regid', String(A), '--clear-groups', NODE, '-e', script, name], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' }, extendEnv: false, cwd: '/', reject: false });
  t.is(String(inside.stdout), 'ECONNREFUSED', `inside: ${String(inside.stderr)}`);
  const outside = await execa(NODE, ['-e', script, name], { uid: A, gid: A, env: { PATH: '/usr/bin:/bin' }, extendEnv: false, cwd: '/', reject: false });
  t.is(String(outside.stdout), 'connected', 'control: from the host');
  daemon.kill('SIGTERM');
  await daemon;
});

test.serial('netsetup serve is root\'s; a second one says in one line that the name is taken', async (t) => {
  const inst = installed(159, { serveSeconds: 0 });
  const user = await netsetup(inst, ['serve'], { uid: A });
  t.is(user.code, 3);
  t.regex(user.stderr, /^netsetup: serve: only root may do this\. Ask the administrator\n$/);
  const { child: daemon } = await startServe(inst);
  const second = await netsetup(inst, ['serve']);
  t.is(second.code, 5);
  t.regex(second.stderr, /^netsetup: serve: its socket's name is taken[^\n]*ss -xlp[^\n]*\n$/);
  daemon.kill('SIGTERM');
  await daemon;
});
