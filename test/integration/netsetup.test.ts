// netsetup against the real kernel: installed setuid into a temporary prefix, run
// as unprivileged users on processes in their own user+network namespaces.
// Traffic goes only to the test bridge's gateway and the sandboxes' addresses.
import test from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import { hostVeths, inNetns, install, linkExists, NODE, oneLineError, ownRules, rules, run, sandbox, type Connection, type Install, type Sandbox } from './helpers/netsetup.ts';

const U = 1000;
let inst: Install;
const sandboxes: Sandbox[] = [];
const spawnBox = async (uid: number, o?: Parameters<typeof sandbox>[1]): Promise<Sandbox> => {
  const s = await sandbox(uid, o);
  sandboxes.push(s);
  return s;
};

test.before(() => {
  inst = install({ octet: 41, quota: { users: { '*': 8 } } });
});
test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  inst?.remove();
});

test.serial('connects a sandbox: eth0, address, route, lo, MTU, host veth, rules, gateway reachable by TCP and ping', async (t) => {
  const box = await spawnBox(U);
  const r = await run(inst, ['--pid', String(box.pid), '--json'], { uid: U });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Connection;
  t.like(c, { interface: 'eth0', prefix: 24, gateway: inst.gateway, mtu: 1500, dns: [inst.gateway], bridge: inst.bridge, pid: box.pid });
  t.regex(c.address, /^10\.231\.41\.\d+$/);
  t.is(c.cidr, `${c.address}/24`);
  t.regex(c.lease, /^[0-9a-f]{8}$/);
  t.is(c.hostVeth, `nsb${c.lease}`);

  // Inside: eth0 up with the address, the default route, lo up.
  const links = JSON.parse(inNetns(box.pid, ['ip', '-j', 'addr']).stdout) as { ifname: string; flags: string[]; mtu: number; addr_info: { family: string; local: string; prefixlen: number }[] }[];
  const eth0 = links.find((l) => l.ifname === 'eth0')!;
  t.truthy(eth0);
  t.true(eth0.flags.includes('UP'));
  t.is(eth0.mtu, 1500);
  t.true(eth0.addr_info.some((a) => a.family === 'inet' && a.local === c.address && a.prefixlen === 24));
  t.true(links.find((l) => l.ifname === 'lo')!.flags.includes('UP'));
  t.is(links.length, 2, 'nothing else in the namespace');
  const routes = JSON.parse(inNetns(box.pid, ['ip', '-j', 'route']).stdout) as { dst: string; gateway?: string; dev: string }[];
  t.true(routes.some((x) => x.dst === 'default' && x.gateway === inst.gateway && x.dev === 'eth0'));

  // Outside: host veth on the bridge, MAC fe:..., up; bridge has the gateway; forwarding on.
  t.deepEqual(hostVeths(inst.bridge), [c.hostVeth]);
  const host = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', c.hostVeth], { encoding: 'utf8' })) as { address: string; mtu: number; master: string }[];
  t.regex(host[0]!.address, /^fe:/);
  t.is(host[0]!.master, inst.bridge);
  t.is(host[0]!.mtu, 1500);
  t.is(fs.readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim(), '1');

  const nat = rules(inst, 'nat');
  t.true(nat.includes(`-A NSBOX-POST-${inst.bridge} -s ${inst.subnet} ! -d ${inst.subnet} -m comment --comment nsbox:${inst.bridge} -j MASQUERADE`), nat);
  t.true(nat.includes(`-A POSTROUTING -m comment --comment nsbox:${inst.bridge} -j NSBOX-POST-${inst.bridge}`));
  const filter = rules(inst, 'filter');
  t.true(filter.includes(`-A FORWARD -m comment --comment nsbox:${inst.bridge} -j NSBOX-FWD-${inst.bridge}`));
  const forward = `-A NSBOX-FWD-${inst.bridge} -s ${inst.subnet} -i ${inst.bridge} -m comment --comment nsbox:${inst.bridge} -j ACCEPT`;
  t.true(filter.includes(forward), filter);
  // This bridge's rules only: other test files publish ports meanwhile.
  t.false(ownRules(inst, 'filter').includes('nsbox:lease:'), 'a lease without published ports has no rules of its own');

  // TCP from the sandbox to a server the test binds on the gateway address.
  const server = net.createServer((sock) => sock.end('hello from the gateway\n'));
  await new Promise<void>((resolve) => server.listen(0, inst.gateway, resolve));
  t.teardown(() => void server.close());
  const port = (server.address() as net.AddressInfo).port;
  const client = `const s=require('net').connect(${port},'${inst.gateway}');let d='';s.on('data',x=>d+=x);s.on('end',()=>{process.stdout.write(d)});s.on('error',e=>{console.error(e.message);process.exit(1)})`;
  const got = await new Promise<string>((resolve) => {
    execFile('nsenter', ['-t', String(box.pid), '-n', NODE, '-e', client], { timeout: 20_000 }, (_e, out) => resolve(out));
  });
  t.is(got, 'hello from the gateway\n');
  const ping = inNetns(box.pid, ['busybox', 'ping', '-c', '1', '-W', '3', inst.gateway]);
  t.is(ping.status, 0, ping.stdout + ping.stderr);

  // list shows it to its owner, not to another user.
  const mine = await run(inst, ['list', '--json'], { uid: U });
  t.true((JSON.parse(mine.stdout) as { id: string }[]).some((l) => l.id === c.lease));
  const theirs = await run(inst, ['list', '--json'], { uid: U + 1 });
  t.deepEqual(JSON.parse(theirs.stdout), []);

  // Release: veth, lease and rules gone at once; eth0 gone inside.
  const rel = await run(inst, ['release', c.lease], { uid: U });
  t.is(rel.code, 0, rel.stderr);
  t.false(linkExists(c.hostVeth));
  t.true(rules(inst, 'filter').includes(forward), 'the network keeps its rules');
  t.deepEqual(JSON.parse((await run(inst, ['list', '--json'], { uid: U })).stdout), []);
  t.false(inNetns(box.pid, ['ip', 'link']).stdout.includes('eth0'));
});

test.serial('the human line, a second connection of the same namespace, release by pid', async (t) => {
  const box = await spawnBox(U);
  const r = await run(inst, ['--pid', String(box.pid)], { uid: U });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^eth0 10\.231\.41\.\d+\/24 via 10\.231\.41\.1 mtu 1500 on nstest41 \(host nsb[0-9a-f]{8}, lease [0-9a-f]{8}\)\n$/);
  // eth0 exists now: a second call fails cleanly and leaves nothing behind.
  const again = await run(inst, ['--pid', String(box.pid)], { uid: U });
  t.is(again.code, 6);
  t.true(oneLineError(again.stderr), again.stderr);
  t.regex(again.stderr, /EEXIST/);
  t.is(hostVeths(inst.bridge).length, 1);
  const rel = await run(inst, ['release', '--pid', String(box.pid)], { uid: U });
  t.is(rel.code, 0, rel.stderr);
  t.deepEqual(hostVeths(inst.bridge), []);
});

test.serial('when the sandbox dies, the next call removes its lease and rules', async (t) => {
  const box = await spawnBox(U);
  const c = JSON.parse((await run(inst, ['--pid', String(box.pid), '--json', '--publish', '41080:80'], { uid: U })).stdout) as Connection;
  t.true(rules(inst, 'filter').includes(c.lease));
  await box.kill();
  // The kernel deletes the veth pair with the namespace (asynchronously).
  for (let i = 0; i < 50 && linkExists(c.hostVeth); i++) await new Promise((r) => setTimeout(r, 50));
  t.false(linkExists(c.hostVeth));
  const l = await run(inst, ['list', '--json'], { uid: U + 5 });
  t.is(l.code, 0);
  t.false(rules(inst, 'filter').includes(c.lease));
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(c.lease));
});

test.serial('a call refused for its quota still removes a dead sandbox\'s lease and rules', async (t) => {
  const dead = await spawnBox(U + 6);
  const c = JSON.parse((await run(inst, ['--pid', String(dead.pid), '--json', '--publish', '41081:80'], { uid: U + 6 })).stdout) as Connection;
  const full = await Promise.all(Array.from({ length: 8 }, () => spawnBox(U + 7)));
  for (const b of full) t.is((await run(inst, ['--pid', String(b.pid)], { uid: U + 7 })).code, 0);
  await dead.kill();
  // The kernel deletes the veth pair with the namespace (asynchronously).
  for (let i = 0; i < 50 && linkExists(c.hostVeth); i++) await new Promise((r) => setTimeout(r, 50));
  t.true(rules(inst, 'filter').includes(`nsbox:lease:${c.lease}`));
  const refused = await run(inst, ['--pid', String((await spawnBox(U + 7)).pid)], { uid: U + 7 });
  t.is(refused.code, 4, refused.stderr);
  t.false(rules(inst, 'filter').includes(`nsbox:lease:${c.lease}`));
  t.false(fs.readFileSync(`${inst.stateDir}/leases.json`, 'utf8').includes(c.lease));
  for (const b of full) t.is((await run(inst, ['release', '--pid', String(b.pid)], { uid: U + 7 })).code, 0);
});

test.serial('20 concurrent calls from 5 users get 20 distinct addresses', async (t) => {
  const boxes = await Promise.all(Array.from({ length: 20 }, (_, i) => spawnBox(1000 + (i % 5))));
  const results = await Promise.all(boxes.map((b) => run(inst, ['--pid', String(b.pid), '--json'], { uid: b.uid })));
  for (const r of results) t.is(r.code, 0, r.stderr);
  const conns = results.map((r) => JSON.parse(r.stdout) as Connection);
  t.is(new Set(conns.map((c) => c.address)).size, 20);
  t.is(new Set(conns.map((c) => c.hostVeth)).size, 20);
  t.is(hostVeths(inst.bridge).length, 20);
  // Each sandbox really has its own address.
  boxes.forEach((b, i) => t.true(inNetns(b.pid, ['ip', '-4', '-o', 'addr', 'show', 'eth0']).stdout.includes(`${conns[i]!.address}/24`)));
  await Promise.all(boxes.map((b) => b.kill()));
  // The kernel deletes the veth pairs with the namespaces (asynchronously).
  for (let i = 0; i < 50 && hostVeths(inst.bridge).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.deepEqual(hostVeths(inst.bridge), []);
  const l = await run(inst, ['list', '--json']);
  t.is(l.code, 0, l.stderr);
  t.deepEqual(JSON.parse(l.stdout), []);
  t.false(ownRules(inst, 'filter').includes('nsbox:lease:'));
});

test.serial('SIGKILL at any moment of a call leaves nothing the next call cannot clean', async (t) => {
  const boxes: Sandbox[] = [];
  for (let delay = 0, i = 0; delay <= 120; delay += 8, i++) {
    const b = await spawnBox(U + 2);
    boxes.push(b);
    // Every other call publishes a port, so that it is also killed while it runs iptables.
    const publish = i % 2 === 0 ? ['--publish', `${41100 + i}:80`] : [];
    const child = spawn(inst.bin, ['--pid', String(b.pid), ...publish], { uid: U + 2, gid: U + 2, stdio: 'ignore', env: { PATH: '/usr/bin:/bin' } });
    const exited = new Promise((r) => child.once('exit', r));
    await new Promise((r) => setTimeout(r, delay));
    // Killed by root here: once netsetup has become fully root the caller can no
    // longer signal it (terminal signals aside), so this is the harsher case.
    child.kill('SIGKILL');
    await exited;
  }
  const l = await run(inst, ['list', '--json']);
  t.is(l.code, 0, l.stderr);
  const leases = JSON.parse(l.stdout) as { id: string; hostVeth: string; state: string; published: unknown[] }[];
  // Every lease left is complete, every veth on the bridge belongs to one, and
  // exactly the leases with published ports have rules.
  t.true(leases.every((x) => x.state === 'ready'));
  t.deepEqual(hostVeths(inst.bridge).sort(), leases.map((x) => x.hostVeth).sort());
  const tagged = new Set([...ownRules(inst, 'filter').matchAll(/nsbox:lease:([0-9a-f]{8})/g)].map((m) => m[1]));
  t.deepEqual([...tagged].sort(), leases.filter((x) => x.published.length > 0).map((x) => x.id).sort());
  // Any of those sandboxes can still be connected (or already is), and everything goes away with them.
  for (const b of boxes) await b.kill();
  for (let i = 0; i < 50 && hostVeths(inst.bridge).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.is((await run(inst, ['list'])).code, 0);
  t.deepEqual(hostVeths(inst.bridge), []);
  t.false(ownRules(inst, 'filter').includes('nsbox:lease:'));
  const fresh = await spawnBox(U + 2);
  t.is((await run(inst, ['--pid', String(fresh.pid)], { uid: U + 2 })).code, 0);
  await fresh.kill();
});

test.serial('admin: setup-host is root only and idempotent; teardown removes bridge, rules and state', async (t) => {
  const denied = await run(inst, ['setup-host'], { uid: U });
  t.is(denied.code, 3);
  t.true(oneLineError(denied.stderr));
  t.is((await run(inst, ['setup-host'])).code, 0);
  t.is((await run(inst, ['setup-host'])).code, 0);
  t.is(rules(inst, 'nat').split('\n').filter((l) => l.startsWith(`-A POSTROUTING`) && l.includes(inst.bridge)).length, 1, 'one jump, not two');
  const box = await spawnBox(U);
  t.is((await run(inst, ['--pid', String(box.pid)], { uid: U })).code, 0);
  const down = await run(inst, ['teardown']);
  t.is(down.code, 0, down.stderr);
  t.false(linkExists(inst.bridge));
  t.false(rules(inst, 'nat').includes(inst.bridge));
  t.false(rules(inst, 'filter').includes(inst.bridge));
  t.false(fs.existsSync(inst.stateDir));
  t.false(inNetns(box.pid, ['ip', 'link']).stdout.includes('eth0'));
});

test.serial('legacy iptables backend', async (t) => {
  const legacy = install({ octet: 42, iptables: 'legacy' });
  t.teardown(() => legacy.remove());
  const box = await spawnBox(U);
  const r = await run(legacy, ['--pid', String(box.pid), '--json'], { uid: U });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Connection;
  t.true(rules(legacy, 'nat').includes(`-s ${legacy.subnet} ! -d ${legacy.subnet}`));
  t.true(rules(legacy, 'filter').includes(`-A NSBOX-FWD-${legacy.bridge} -s ${legacy.subnet} -i ${legacy.bridge} -m comment --comment nsbox:${legacy.bridge} -j ACCEPT`));
  t.is(inNetns(box.pid, ['busybox', 'ping', '-c', '1', '-W', '3', legacy.gateway]).status, 0);
  t.is((await run(legacy, ['release', c.lease], { uid: U })).code, 0);
  t.false(linkExists(c.hostVeth));
  t.is((await run(legacy, ['teardown'])).code, 0);
  t.false(rules(legacy, 'nat').includes(legacy.bridge));
});
