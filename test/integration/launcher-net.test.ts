// Networked sandboxes: the installed launcher and setuid netsetup together, run as
// an unprivileged user, checked from inside the sandbox and from the host. Traffic
// goes only to the test bridges' addresses and a dummy address the test creates.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { collect, forgetSandboxesOf, LAUNCHER, makeRootfs, processesOf, requireRoot, sleep, spawnAs, start, type Child, type Result, type RunOptions } from '../helpers/sandbox.ts';
import { hostVeths, install, ownRules, run as netsetup, type Install } from '../helpers/netsetup.ts';

requireRoot();
// A user of its own: other test files count the processes of theirs.
const NET_UID = 4322;
forgetSandboxesOf(NET_UID);
const asUser: RunOptions = { uid: NET_UID, gid: NET_UID };
const rootfs = makeRootfs();
const installs: Install[] = [];
const setUp = (o: Parameters<typeof install>[0]): Install => {
  const inst = install(o);
  installs.push(inst);
  return inst;
};
const main = setUp({ octet: 81, quota: { users: { '*': 60 } } });
const launcher = (inst: Install): string => path.join(inst.prefix, 'bin/launcher');

test.after.always('remove the installs, bridges and rules', () => {
  for (const inst of installs) inst.remove();
});

interface Started {
  event: 'started';
  pid: number;
  address: string;
  prefix: number;
  gateway: string;
  interface: string;
  lease: string;
}

interface NetRun {
  child: Child;
  started: Promise<Started>;
  done: Promise<Result & { info: Record<string, unknown>[] }>;
}

/** Runs the installed launcher as the test user with --info-fd 3. With `hold`,
 *  its stdin stays open until the test ends it (for scripts that `read`). */
function startNet(inst: Install, args: string[], script: string, hold = false): NetRun {
  const child = start(['--info-fd', '3', '--rootfs', rootfs, ...args, '--', '/bin/sh', '-c', script], { ...asUser, launcher: launcher(inst), extraFds: ['pipe'], timeoutMs: 100_000 });
  let infoText = '';
  let resolveStarted: (s: Started) => void;
  let rejectStarted: (e: Error) => void;
  const started = new Promise<Started>((res, rej) => {
    resolveStarted = res;
    rejectStarted = rej;
  });
  const info = child.stdio[3] as NodeJS.ReadableStream;
  info.on('data', (d: Buffer) => {
    infoText += d.toString();
    const first = infoText.split('\n')[0];
    if (infoText.includes('\n') && first) resolveStarted(JSON.parse(first) as Started);
  });
  const infoEnd = new Promise<void>((res) => info.on('end', () => res()));
  started.catch(() => {});
  const done = collect(child, { keepStdin: hold, timeoutMs: 100_000 }).then(async (r) => {
    await infoEnd;
    rejectStarted(new Error(`the launcher exited (${r.code}) before starting: ${r.stderr}`));
    return { ...r, info: infoText.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  });
  return { child, started, done };
}

/** What leases leave on the host: veths on the bridge, lease records, per-lease
 *  rules. A lease is gone for netsetup as soon as the launcher has exited; its
 *  holder deletes the veth and rules in the next few ms, so this waits up to 2 s
 *  for them to go. */
async function leftovers(inst: Install): Promise<{ veths: string[]; leases: string; rules: string[] }> {
  const list = await netsetup(inst, ['list', '--json']);
  const rules = (): string[] => [...ownRules(inst, 'nat').split('\n'), ...ownRules(inst, 'filter').split('\n')].filter((l) => l.includes('nsbox:lease:'));
  for (let i = 0; i < 40 && (hostVeths(inst.bridge).length > 0 || rules().length > 0); i++) await sleep(50);
  return { veths: hostVeths(inst.bridge), leases: JSON.stringify(JSON.parse(list.stdout || '[]')), rules: rules() };
}
const nothingLeft = { veths: [], leases: '[]', rules: [] };

async function serve(address: string, body: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => res.end(body));
  await new Promise<void>((res) => server.listen(0, address, res));
  return { port: (server.address() as AddressInfo).port, close: () => new Promise((res) => server.close(() => res())) };
}

function get(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test.serial('inside: eth0 has the reported address, the route goes via the gateway, ping and wget to the host work', async (t) => {
  t.is((await netsetup(main, ['setup-host'])).code, 0);
  const server = await serve(main.gateway, 'hello from the host\n');
  t.teardown(() => server.close());
  const script = [
    'ip -4 -o addr show dev eth0',
    'ip route show default',
    `ping -c1 -W5 ${main.gateway} >/dev/null && echo PING-OK`,
    `wget -q -O - http://${main.gateway}:${server.port}/`,
    'cat /etc/hosts /etc/hostname /etc/resolv.conf',
  ].join('; ');
  const r = await startNet(main, ['--hostname', 'box1'], script).done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  const started = r.info[0] as unknown as Started;
  t.is(started.event, 'started');
  t.is(started.interface, 'eth0');
  t.is(started.gateway, main.gateway);
  t.regex(r.stdout, new RegExp(`eth0\\s+inet ${started.address.replaceAll('.', '\\.')}/${started.prefix} `));
  t.regex(r.stdout, new RegExp(`^default via ${main.gateway} dev eth0`, 'm'));
  t.regex(r.stdout, /^PING-OK$/m);
  t.regex(r.stdout, /^hello from the host$/m);
  t.regex(r.stdout, new RegExp(`^${started.address.replaceAll('.', '\\.')}\\tbox1$`, 'm'), '/etc/hosts names the sandbox');
  t.regex(r.stdout, /^box1$/m, '/etc/hostname');
  t.regex(r.stdout, new RegExp(`^nameserver ${main.gateway}$`, 'm'), 'resolv.conf has the configured DNS server');
  t.deepEqual(r.info[1], { event: 'exited', code: 0 });
  t.deepEqual(await leftovers(main), nothingLeft, 'the lease is released when the command exits');
});

test.serial('the rootfs on disk is not modified: /etc files are mounted over it', async (t) => {
  const before = execaSync('sh', ['-c', `cd ${rootfs}/etc && for f in hosts hostname resolv.conf; do stat -c '%n %s %Y' $f; md5sum $f; done`]).stdout;
  const r = await startNet(main, [], 'echo changed > /etc/hostname && cat /etc/hostname').done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'changed\n', 'the sandbox may change its own copy');
  t.is(execaSync('sh', ['-c', `cd ${rootfs}/etc && for f in hosts hostname resolv.conf; do stat -c '%n %s %Y' $f; md5sum $f; done`]).stdout, before);
});

const untilAnswer = async (url: string): Promise<string> => {
  for (let i = 0; i < 50; i++) {
    const body = await get(url).catch(() => '');
    if (body !== '') return body;
    await sleep(100);
  }
  return '';
};

test.serial('a rootfs without /etc/hosts and with a dangling resolv.conf link gets them through an overlay, untouched on disk', async (t) => {
  const bare = makeRootfs();
  fs.rmSync(`${bare}/etc/hosts`);
  fs.rmSync(`${bare}/etc/resolv.conf`);
  fs.symlinkSync('/run/nsbox-test-absent/stub-resolv.conf', `${bare}/etc/resolv.conf`);
  const listing = (): string => execaSync('ls', ['-la', `${bare}/etc`]).stdout;
  const before = listing();
  const child = start(['--info-fd', '3', '--rootfs', bare, '--hostname', 'bare', '--', '/bin/sh', '-c', 'cat /etc/hosts /etc/resolv.conf; echo x > /etc/new-file && echo wrote'], { ...asUser, launcher: launcher(main), extraFds: ['pipe'] });
  const r = await collect(child);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /\tbare\n/);
  t.regex(r.stdout, new RegExp(`^nameserver ${main.gateway}$`, 'm'));
  t.regex(r.stdout, /^wrote$/m, 'writes to /etc go to the overlay');
  t.is(listing(), before, "the rootfs's /etc is unchanged");
  t.false(fs.existsSync('/run/nsbox-test-absent'), 'the dangling link was not followed on the host');
});

test.serial('outside: a server in the sandbox is reachable from the host at its address and through a published port', async (t) => {
  const hostPort = 20000 + (process.pid % 20000);
  const net = startNet(main, ['-p', `${hostPort}:8080`], 'mkdir -p /tmp/w && echo sandbox-page > /tmp/w/index.html && exec httpd -f -p 8080 -h /tmp/w');
  const started = await net.started;
  t.deepEqual((started as unknown as { published: unknown[] }).published, [{ hostAddress: '0.0.0.0', hostPort, port: 8080, protocol: 'tcp' }]);
  t.is(await untilAnswer(`http://${started.address}:8080/`), 'sandbox-page\n');
  // The gateway is one of the host's own addresses (on the test's bridge).
  t.is(await untilAnswer(`http://${main.gateway}:${hostPort}/`), 'sandbox-page\n', 'through the published port');
  net.child.kill('SIGTERM');
  const r = await net.done;
  t.is(r.code, 128 + 15);
  t.deepEqual(r.info[1], { event: 'exited', signal: 15 });
  t.deepEqual(await leftovers(main), nothingLeft);
  t.is(await get(`http://${main.gateway}:${hostPort}/`).catch((e: NodeJS.ErrnoException) => e.code), 'ECONNREFUSED', 'the published port is gone with the lease');
});

test.serial('a port netsetup will not publish: its message, exit 125, nothing left', async (t) => {
  const r = await startNet(main, ['-p', '80:8080'], 'echo should-not-run').done;
  t.is(r.code, 125);
  t.regex(r.stderr, /^netsetup: [^\n]*\b80\b[^\n]*\n$/);
  t.is(r.stdout, '');
  t.deepEqual(await leftovers(main), nothingLeft);
  t.deepEqual(processesOf(NET_UID), []);
});

test.serial('a launcher that fails before its sandbox exists: its one line, exit 125; the netsetup it started first does nothing and is gone', async (t) => {
  const r = await collect(start(['--rootfs', '/nonexistent-rootfs', '--', '/bin/true'], { ...asUser, launcher: launcher(main) }));
  t.is(r.code, 125);
  t.regex(r.stderr, /^launcher: rootfs \/nonexistent-rootfs: No such file or directory \(ENOENT\)[^\n]*\n$/);
  t.is(execaSync('pgrep', ['-f', `${main.prefix}/bin/netsetup`], { reject: false }).exitCode, 1, 'no netsetup left running');
  t.deepEqual(await leftovers(main), nothingLeft);
});

test.serial('50 sandboxes started at once get distinct addresses, all reach the gateway, and leave nothing', async (t) => {
  // Each waits on stdin until all have started, so all 50 hold a lease at once.
  const runs = Array.from({ length: 50 }, () => startNet(main, [], `ping -c1 -W10 ${main.gateway} >/dev/null && echo ok; read x`, true));
  await Promise.all(runs.map((r) => r.started));
  t.is(hostVeths(main.bridge).length, 50);
  for (const r of runs) r.child.stdin!.end('\n');
  const results = await Promise.all(runs.map((r) => r.done));
  for (const r of results) t.is(r.code, 0, r.stderr);
  t.true(results.every((r) => r.stdout === 'ok\n'), 'every sandbox reached the gateway');
  const addresses = new Set(results.map((r) => (r.info[0] as unknown as Started).address));
  t.is(addresses.size, 50);
  await sleep(200);
  t.deepEqual(processesOf(NET_UID), []);
  t.deepEqual(await leftovers(main), nothingLeft);
});

/** The netsetup holding the lease of the launcher `pid`: its child running the
 *  install's netsetup, or the supervisor netsetup became (root, named netsetup). */
function holderOf(inst: Install, pid: number): number | undefined {
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').map(Number);
  return children.find((c) => {
    try {
      const exe = fs.readlinkSync(`/proc/${c}/exe`);
      if (exe === path.join(inst.prefix, 'bin/netsetup')) return true;
      const status = fs.readFileSync(`/proc/${c}/status`, 'utf8');
      return exe.startsWith('/memfd:nsbox-supervisor') && /^Name:\s+netsetup$/m.test(status) && /^Uid:\s+0\s/m.test(status);
    } catch {
      return false;
    }
  });
}

test.serial('50 launchers and their netsetup holders killed with SIGKILL: their sandboxes die, and one netsetup call collects every lease', async (t) => {
  const runs = Array.from({ length: 50 }, () => startNet(main, [], 'exec sleep 100'));
  const started = await Promise.all(runs.map((r) => r.started));
  t.is(new Set(started.map((s) => s.address)).size, 50);
  // The holders first: a holder that sees its launcher go releases the lease
  // itself; killed, it leaves all of the release to the GC.
  // Looked for again while one is in the middle of its exec to the supervisor
  // (its name is the memfd's until the supervisor renames it).
  const holders = runs.map((r) => holderOf(main, r.child.pid!));
  for (let i = 0; i < 20 && holders.includes(undefined); i++) {
    await sleep(100);
    runs.forEach((r, k) => (holders[k] ??= holderOf(main, r.child.pid!)));
  }
  t.is(holders.filter((h) => h !== undefined).length, 50, 'a holder per launcher');
  for (const h of holders) process.kill(h!, 'SIGKILL');
  for (const r of runs) r.child.kill('SIGKILL');
  await Promise.all(runs.map((r) => r.done));
  for (let i = 0; i < 50 && processesOf(NET_UID).length > 0; i++) await sleep(100);
  t.deepEqual(processesOf(NET_UID), [], 'the sandboxes died with their launchers');
  // The kernel removes a veth pair with its namespace; give its cleanup a moment.
  for (let i = 0; i < 50 && hostVeths(main.bridge).length > 0; i++) await sleep(100);
  const records = (JSON.parse(fs.readFileSync(`${main.stateDir}/leases.json`, 'utf8')) as { leases: { id: string }[] }).leases;
  t.deepEqual(records.map((l) => l.id).sort(), started.map((s) => s.lease).sort(), 'nothing released the leases before the call');
  t.deepEqual(await leftovers(main), nothingLeft, 'a single further netsetup call (list) collected the leases and rules');
});

test.serial('--net none keeps the sandbox isolated with netsetup installed', async (t) => {
  const r = await startNet(main, ['--net', 'none'], 'ls /sys/class/net').done;
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'lo\n');
  t.deepEqual(r.info[0], { event: 'started', pid: r.info[0]!.pid, network: 'none' });
});

test.serial('a missing netsetup: one line, exit 125, no sandbox', async (t) => {
  const r = await collect(start(['--rootfs', rootfs, '--netsetup', '/nonexistent/netsetup', '--', '/bin/true'], asUser));
  t.is(r.code, 125);
  t.regex(r.stderr, /^launcher: netsetup \/nonexistent\/netsetup: does not exist, so the sandbox cannot get a network\. [^\n]*--net none\.\n$/);
  const plain = await collect(start(['--rootfs', rootfs, '--net', 'bridge', '--netsetup', '/nonexistent/netsetup', '--', '/bin/true'], asUser));
  t.is(plain.code, 125);
});

test.serial('a netsetup that is not setuid root: one line naming it and how to install, exit 125', async (t) => {
  // dist/netsetup next to dist/launcher is the freshly built, not installed, helper.
  const r = await collect(start(['--rootfs', rootfs, '--', '/bin/true'], { ...asUser, defaultNet: true }));
  t.is(r.code, 125);
  t.is(r.stderr.split('\n').length, 2, r.stderr);
  t.regex(r.stderr, new RegExp(`^launcher: ${path.join(path.dirname(LAUNCHER), 'netsetup')}: not setuid root .*scripts/install\\.sh.*--net none\\.\\n$`));
});

async function refusedWhenFull(t: import('ava').ExecutionContext, inst: Install, holders: number, expect: RegExp): Promise<void> {
  const held = Array.from({ length: holders }, () => startNet(inst, [], 'exec sleep 100'));
  t.teardown(async () => {
    for (const h of held) h.child.kill('SIGTERM');
    await Promise.all(held.map((h) => h.done));
  });
  await Promise.all(held.map((h) => h.started));
  const vethsBefore = hostVeths(inst.bridge).sort();
  const r = await startNet(inst, [], 'echo should-not-run').done;
  t.is(r.code, 125);
  t.regex(r.stderr, expect);
  t.is(r.stderr.split('\n').length, 2, 'one line');
  t.is(r.stdout, '');
  t.deepEqual(r.info, [], 'no started line');
  t.deepEqual(hostVeths(inst.bridge).sort(), vethsBefore, 'no veth added');
  t.is(processesOf(NET_UID).length, holders * 2, 'only the holders (launcher + sandbox each) remain');
}

test.serial('quota exhausted: netsetup says so, exit 125, nothing left', async (t) => {
  const inst = setUp({ octet: 82, quota: { users: { '*': 1 } } });
  await refusedWhenFull(t, inst, 1, /^netsetup: [^\n]*quota[^\n]*\n$/i);
});

test.serial('subnet full: netsetup says so, exit 125, nothing left', async (t) => {
  const inst = setUp({ octet: 83, prefix: 29, quota: { users: { '*': 20 } } });
  await refusedWhenFull(t, inst, 5, /^netsetup: [^\n]*all addresses of 10\.231\.83\.0\/29 are leased[^\n]*\n$/);
});

test.serial('with a quota of one, sandboxes started one after another all get their network', async (t) => {
  const inst = setUp({ octet: 85, quota: { users: { '*': 1 } } });
  for (let i = 0; i < 5; i++) {
    const r = await startNet(inst, [], 'ip -4 -o addr show dev eth0 | grep -q inet && echo up').done;
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, 'up\n');
  }
  t.deepEqual(await leftovers(inst), nothingLeft);
});

test.serial('an interactive networked shell on a terminal: Ctrl-C and Ctrl-Z reach the shell, not the network', async (t) => {
  // script(1) gives the launcher a pseudo-terminal, as a person's terminal would;
  // the sandbox's network must survive the job control the person uses.
  const child = spawnAs('script', ['-qfec', `${launcher(main)} --rootfs ${rootfs}`, '/dev/null'], asUser);
  const done = collect(child, { keepStdin: true });
  const type = async (s: string, ms: number): Promise<void> => {
    await sleep(ms);
    child.stdin!.write(s);
  };
  await type('sleep 30\n', 1000);
  await type('\x03', 500);
  await type('sleep 30\n', 300);
  await type('\x1a', 500);
  await type('kill -9 %1; echo stopped-and-killed\n', 300);
  await type(`ping -c1 -W5 ${main.gateway} >/dev/null && echo net-$((40+2))\n`, 300);
  await type('exit 4\n', 1000);
  const r = await done;
  t.is(r.code, 4, r.stdout);
  t.regex(r.stdout, /stopped-and-killed/);
  t.regex(r.stdout, /net-42/, 'the network still works after Ctrl-C and Ctrl-Z');
  t.deepEqual(await leftovers(main), nothingLeft);
});

test.serial('ping works as the sandbox root', async (t) => {
  const r = await startNet(main, [], `ping -c1 -W5 ${main.gateway}`).done;
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /1 packets received/);
});

