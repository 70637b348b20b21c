// The host's rules win (docs/security.md §6), against the real kernel: netsetup
// installed setuid into temporary prefixes, run as unprivileged users.
// - A published port never takes a port the host already forwards: refused while
//   the forward exists, and behind it when the forward comes back after a
//   firewall reload; publish.ports limits what users may publish.
// - A network's egress policy holds for its sandboxes' traffic.
// - A firewall reload that flushes the network's rules is repaired by the next connect.
// Traffic goes only to the test bridges (10.231.101-104.0/24), to two namespaces
// the test makes behind the host ("peer", 10.231.109.2 via the host's
// 10.231.109.1; "svc", 10.231.108.2 via 10.231.108.1) and to the host's own
// addresses on those links. The test's own host rules carry the comment
// "nstestfw"; rules a simulated reload flushes are put back.
import test from 'ava';
import { execa, execaSync } from 'execa';
import fs from 'node:fs';
import { hostVeths, install, NODE, oneLineError, run, sandbox, scrub, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';
import type { Child } from '../helpers/sandbox.ts';

const U = 1000;
const IPT = '/usr/sbin/iptables';
const LEGACY = '/usr/sbin/iptables-legacy';
const TAG = 'nstestfw';
const PEER_NS = 'nstestfwpeer';
const PEER_VETH = 'nstestfwp';
const HOST_ADDR = '10.231.109.1';
const PEER_ADDR = '10.231.109.2';
const SVC_NS = 'nstestfwsvc';
const SVC_VETH = 'nstestfws';
const SVC_HOST = '10.231.108.1';
const SVC_ADDR = '10.231.108.2';

const installs: Install[] = [];
const sandboxes: Sandbox[] = [];
const servers: Child[] = [];

const sh = (cmd: string[], input?: string): void => void execaSync(cmd[0]!, cmd.slice(1), { input, stdout: 'ignore', stderr: 'pipe' });
const quiet = (cmd: string[]): number | undefined => execaSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', reject: false }).exitCode;
/** A rule of the test's own (iptables-save quotes comments or not, by version). */
const ownRule = (line: string): boolean => new RegExp(`--comment "?${TAG}"?( |$)`).test(line);
const save = (table: string, ipt = IPT): string[] => execaSync(`${ipt}-save`, ['-t', table], { stdin: 'ignore', stderr: 'ignore' }).stdout.split('\n');

/** Deletes every rule of the test's own (comment "nstestfw") in nat and filter. */
function removeTestRules(): void {
  for (const table of ['nat', 'filter']) {
    const mine = save(table).filter((l) => l.startsWith('-A ') && ownRule(l));
    if (mine.length > 0) execaSync(`${IPT}-restore`, ['-w', '--noflush'], { input: `*${table}\n${mine.map((l) => l.replace(/^-A /, '-D ')).join('\n')}\nCOMMIT\n`, stdout: 'ignore', stderr: 'ignore', reject: false });
  }
}

function removeTestNetwork(): void {
  removeTestRules();
  for (const ns of [PEER_NS, SVC_NS]) quiet(['ip', 'netns', 'del', ns]);
  for (const l of [PEER_VETH, SVC_VETH]) quiet(['ip', 'link', 'del', l]);
}

/** A namespace behind the host on its own veth: NS's eth0 has `addr`, the host end `host`. */
function namespaceBehindHost(ns: string, veth: string, host: string, addr: string): void {
  sh(['ip', 'netns', 'add', ns]);
  sh(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh(['ip', 'addr', 'add', `${host}/24`, 'dev', veth]);
  sh(['ip', 'link', 'set', veth, 'up']);
  sh(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0']);
  sh(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
  sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
  sh(['ip', '-n', ns, 'route', 'add', 'default', 'via', host]);
}

/** netsetup installed for one test network, with configuration fields of the test's own. */
function installWith(octet: number, network: Record<string, unknown>): Install {
  const inst = install({ octet });
  installs.push(inst);
  const config = JSON.parse(fs.readFileSync(inst.configFile, 'utf8')) as { networks: Record<string, unknown>[] };
  Object.assign(config.networks[0]!, network);
  // Rewritten in place: still root's, 0644, as install.sh made it.
  fs.writeFileSync(inst.configFile, JSON.stringify(config));
  return inst;
}

let fw7: Install;
let fw8: Install;
let fw10: Install;
let fw10legacy: Install;

test.before(async () => {
  removeTestNetwork();
  namespaceBehindHost(PEER_NS, PEER_VETH, HOST_ADDR, PEER_ADDR);
  namespaceBehindHost(SVC_NS, SVC_VETH, SVC_HOST, SVC_ADDR);
  fw7 = installWith(101, { publish: { minPort: 1024, maxPerLease: 4, ports: ['18200-18299'] } });
  fw8 = installWith(102, { egress: { default: 'deny', allow: ['10.231.109.0/24', `${SVC_ADDR}:7001/tcp`], deny: [`${PEER_ADDR}:7002/tcp`] } });
  fw10 = installWith(103, {});
  fw10legacy = install({ octet: 104, iptables: 'legacy' });
  installs.push(fw10legacy);
  await serve(['ip', 'netns', 'exec', PEER_NS], 'peer', [7000, 7002]);
  await serve(['ip', 'netns', 'exec', SVC_NS], 'svc', [7000, 7001]);
});

test.after.always(async () => {
  for (const s of servers) s.kill('SIGKILL');
  for (const s of sandboxes) await s.kill();
  for (const i of installs) i.remove();
  removeTestNetwork();
});

/** TCP servers on `ports` that answer "NAME PORT from ADDRESS"; resolves once they listen. */
async function serve(prefix: string[], name: string, ports: number[]): Promise<void> {
  const src = `const net=require('net');let n=0;const ports=${JSON.stringify(ports)};
for(const p of ports)net.createServer((s)=>s.end('${name} '+p+' from '+s.remoteAddress+'\\n')).listen(p,'0.0.0.0',()=>{if(++n===ports.length)console.log('ready')});`;
  const p = execa(prefix[0]!, [...prefix.slice(1), NODE, '-e', src], { stdio: ['ignore', 'pipe', 'inherit'], reject: false, forceKillAfterDelay: false });
  servers.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    p.on('exit', () => reject(new Error(`${name} server exited`)));
  });
}

/** A sandbox of `uid` with a server on port 80 ("sandbox 80 from ..."). */
async function box(uid: number): Promise<Sandbox> {
  const s = await sandbox(uid);
  sandboxes.push(s);
  await serve(['nsenter', '-t', String(s.pid), '-n'], 'sandbox', [80]);
  return s;
}

const CLIENT = `const [host,port]=process.argv.slice(1);
const fail=(c)=>{process.stdout.write('ERR '+c);process.exit(0)};
setTimeout(()=>fail('TIMEOUT'),5000).unref();
const s=require('net').connect(+port,host);let d='';s.on('data',(x)=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',(e)=>fail(e.code));`;

type Where = 'host' | 'peer' | Sandbox;
/** A TCP connection from the host, the peer namespace or a sandbox: the answer or "ERR <code>". */
function call(from: Where, host: string, port: number): Promise<string> {
  const cmd = [NODE, '-e', CLIENT, host, String(port)];
  const argv = from === 'host' ? cmd : from === 'peer' ? ['ip', 'netns', 'exec', PEER_NS, ...cmd] : ['nsenter', '-t', String(from.pid), '-n', ...cmd];
  return execa(argv[0]!, argv.slice(1), { timeout: 20_000, reject: false }).then((r) => r.stdout.trim());
}

async function connect(inst: Install, s: Sandbox, publish: string[] = []): Promise<Connection> {
  const r = await run(inst, ['--pid', String(s.pid), '--json', ...publish.flatMap((p) => ['--publish', p])], { uid: s.uid });
  if (r.code !== 0) throw new Error(`netsetup --pid ${s.pid}: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Connection;
}

/** A forward of the host's own (as Docker or an admin would add it): HOST_ADDR:PORT to svc:7000. */
function hostForward(port: number): void {
  for (const chain of ['PREROUTING', 'OUTPUT']) {
    sh([IPT, '-w', '-t', 'nat', '-A', chain, '-d', `${HOST_ADDR}/32`, '-p', 'tcp', '-m', 'tcp', '--dport', String(port), '-m', 'comment', '--comment', TAG, '-j', 'DNAT', '--to-destination', `${SVC_ADDR}:7000`]);
  }
}

/**
 * A firewall reload of nat `chains`: flushed, then the reloaded firewall's own
 * rules are back (everything that was there but the test network's jumps, and
 * `then`'s), as iptables-restore of a saved ruleset does. Whatever goes wrong,
 * the rules of others are put back.
 */
function reload(chains: string[], bridge: string, then: () => void = () => {}, ipt = IPT): void {
  const before = save('nat', ipt).filter((l) => chains.some((c) => l.startsWith(`-A ${c} `)));
  for (const c of chains) sh([ipt, '-w', '-t', 'nat', '-F', c]);
  try {
    then();
  } finally {
    const others = before.filter((l) => !l.includes(`NSBOX-POST-${bridge}`) && !l.includes(`NSBOX-DNAT-${bridge}`));
    if (others.length > 0) sh([`${ipt}-restore`, '-w', '--noflush'], `*nat\n${others.join('\n')}\nCOMMIT\n`);
  }
}

const jumpCount = (chain: string, target: string, ipt = IPT): number => save('nat', ipt).filter((l) => l.startsWith(`-A ${chain} `) && l.endsWith(`-j ${target}`)).length;

test.serial("class 7: a host port the host already forwards is refused (8), and the host's forward keeps answering; a free port reaches the sandbox (control); publish.ports (3)", async (t) => {
  hostForward(18201);
  t.teardown(removeTestRules);
  // The victim works before the attack: from another machine (PREROUTING) and from the host (OUTPUT).
  t.regex(await call('peer', HOST_ADDR, 18201), /^svc 7000 from /);
  t.regex(await call('host', HOST_ADDR, 18201), /^svc 7000 from /);

  const s = await box(U);
  for (const spec of ['18201:80', `${HOST_ADDR}:18201:80`]) {
    const r = await run(fw7, ['--pid', String(s.pid), '--publish', spec], { uid: U });
    t.is(r.code, 8, r.stderr);
    t.true(oneLineError(r.stderr), r.stderr);
    t.regex(r.stderr, /^netsetup: publish .*18201:80\/tcp: host port 18201\/tcp is forwarded by the host's own firewall \(nat rule "-A (PREROUTING|OUTPUT) -d 10\.231\.109\.1\/32 .*--dport 18201 .*-j DNAT --to-destination 10\.231\.108\.2:7000"\)\. Choose another host port\n$/);
    t.deepEqual(hostVeths(fw7.bridge), [], 'nothing was created');
  }
  // The attack failed: the host's forward still answers, from both sides.
  t.regex(await call('peer', HOST_ADDR, 18201), /^svc 7000 from /);
  t.regex(await call('host', HOST_ADDR, 18201), /^svc 7000 from /);

  // Outside publish.ports: refused for users.
  const out = await run(fw7, ['--pid', String(s.pid), '--publish', '18300:80'], { uid: U });
  t.is(out.code, 3, out.stderr);
  t.true(oneLineError(out.stderr), out.stderr);
  t.regex(out.stderr, /host port 18300 is outside the ports network "test" lets users other than root publish \(18200-18299\)\. .*publish\.ports/);

  // Control: the same sandbox, a free port in the range: published and answering. So the
  // refused port would have reached the sandbox had it been published.
  const c = await connect(fw7, s, ['18202:80']);
  t.deepEqual(c.published.map((p) => p.hostPort), [18202]);
  t.is(await call('peer', HOST_ADDR, 18202), `sandbox 80 from ${PEER_ADDR}`);
  t.regex(await call('host', HOST_ADDR, 18201), /^svc 7000 from /);
  // Kept to the end: a released address is given again at once, and the host's neighbour
  // entry for it would name the old MAC for a while (the next test's peer connects first).
});

test.serial("class 7 and 10: after a firewall reload brings the host's forward back, the next connect repairs netsetup's jumps after it: the host's forward wins, the sandbox's other port answers again (control)", async (t) => {
  t.teardown(removeTestRules);
  const s = await box(U);
  const c = await connect(fw7, s, ['18203:80', '18204:80']);
  t.is(await call('peer', HOST_ADDR, 18203), `sandbox 80 from ${PEER_ADDR}`);
  t.is(await call('peer', HOST_ADDR, 18204), `sandbox 80 from ${PEER_ADDR}`);

  // The reload: PREROUTING and OUTPUT flushed; the firewall's rules come back, now with a forward of 18203.
  const dnat = `NSBOX-DNAT-${fw7.bridge}`;
  reload(['PREROUTING', 'OUTPUT'], fw7.bridge, () => hostForward(18203));
  t.is(jumpCount('PREROUTING', dnat), 0);
  // Control: without netsetup's jumps, the published ports are gone (the host has nothing listening there).
  t.is(await call('peer', HOST_ADDR, 18204), 'ERR ECONNREFUSED');

  // Any next connect (here another user's, publishing nothing) notices and repairs.
  const other = await box(U + 1);
  const oc = await connect(fw7, other);
  t.is(jumpCount('PREROUTING', dnat), 1);
  t.is(jumpCount('OUTPUT', dnat), 1);
  // Appended after the host's rules: its forward keeps 18203 ...
  const pre = save('nat').filter((l) => l.startsWith('-A PREROUTING '));
  t.true(pre.findIndex((l) => l.includes('--dport 18203')) < pre.findIndex((l) => l.endsWith(`-j ${dnat}`)), pre.join('\n'));
  t.regex(await call('peer', HOST_ADDR, 18203), /^svc 7000 from /);
  t.regex(await call('host', HOST_ADDR, 18203), /^svc 7000 from /);
  // ... and the sandbox's other published port answers again.
  t.is(await call('peer', HOST_ADDR, 18204), `sandbox 80 from ${PEER_ADDR}`);
  for (const [l, uid] of [[c.lease, U], [oc.lease, U + 1]] as const) t.is((await run(fw7, ['release', l], { uid })).code, 0);
});

test.serial('class 10: after `iptables -t nat -F POSTROUTING`, the next connect restores NAT: the peer sees the host, not the sandbox', async (t) => {
  const a = await box(U);
  const ac = await connect(fw10, a);
  t.is(await call(a, PEER_ADDR, 7000), `peer 7000 from ${HOST_ADDR}`);
  const post = `NSBOX-POST-${fw10.bridge}`;
  reload(['POSTROUTING'], fw10.bridge);
  t.is(jumpCount('POSTROUTING', post), 0);
  // Control: new connections leave un-NATed now (the peer routes its answer back through the host).
  t.is(await call(a, PEER_ADDR, 7000), `peer 7000 from ${ac.address}`);

  const b = await box(U + 1);
  const bc = await connect(fw10, b);
  t.is(jumpCount('POSTROUTING', post), 1);
  t.is(await call(b, PEER_ADDR, 7000), `peer 7000 from ${HOST_ADDR}`);
  t.is(await call(a, PEER_ADDR, 7000), `peer 7000 from ${HOST_ADDR}`);
  // A connect with everything in place changes nothing.
  const c = await box(U + 2);
  const cc = await connect(fw10, c);
  t.is(jumpCount('POSTROUTING', post), 1);
  for (const [l, uid] of [[ac.lease, U], [bc.lease, U + 1], [cc.lease, U + 2]] as const) t.is((await run(fw10, ['release', l], { uid })).code, 0);
});

test.serial('class 10, legacy backend: the look is an iptables-legacy-save; a flushed POSTROUTING is repaired by the next connect', async (t) => {
  const a = await box(U);
  const ac = await connect(fw10legacy, a);
  const post = `NSBOX-POST-${fw10legacy.bridge}`;
  t.is(jumpCount('POSTROUTING', post, LEGACY), 1);
  t.is(jumpCount('POSTROUTING', post), 0, 'nothing in the nft backend');
  reload(['POSTROUTING'], fw10legacy.bridge, () => {}, LEGACY);
  t.is(await call(a, PEER_ADDR, 7000), `peer 7000 from ${ac.address}`);
  const b = await box(U + 1);
  const bc = await connect(fw10legacy, b);
  t.is(jumpCount('POSTROUTING', post, LEGACY), 1);
  t.is(await call(b, PEER_ADDR, 7000), `peer 7000 from ${HOST_ADDR}`);
  for (const [l, uid] of [[ac.lease, U], [bc.lease, U + 1]] as const) t.is((await run(fw10legacy, ['release', l], { uid })).code, 0);
});

test.serial("class 8: the network's egress policy holds for its sandboxes: denied destinations are refused at once, allowed ones answer (control), the most specific entry wins; published ports still answer", async (t) => {
  const s = await box(U);
  const c = await connect(fw8, s, ['18205:80']);
  // default deny; allow 10.231.109.0/24 and svc:7001/tcp; deny peer:7002/tcp.
  t.is(await call(s, SVC_ADDR, 7000), 'ERR EHOSTUNREACH');
  t.is(await call(s, SVC_ADDR, 7001), `svc 7001 from ${SVC_HOST}`);
  t.is(await call(s, PEER_ADDR, 7000), `peer 7000 from ${HOST_ADDR}`);
  t.is(await call(s, PEER_ADDR, 7002), 'ERR EHOSTUNREACH');
  // Root inside the sandbox cannot step around it with another source address of the subnet.
  t.is((await execa('nsenter', ['-t', String(s.pid), '-n', 'ip', 'addr', 'add', `${c.address.replace(/\.\d+$/, '.250')}/32`, 'dev', 'eth0'], { reject: false })).exitCode, 0);
  const spoofed = `const s=require('net').connect({host:'${SVC_ADDR}',port:7000,localAddress:'${c.address.replace(/\.\d+$/, '.250')}'});s.on('data',(d)=>{process.stdout.write(String(d));process.exit(0)});s.on('error',(e)=>{process.stdout.write('ERR '+e.code);process.exit(0)});setTimeout(()=>{process.stdout.write('ERR TIMEOUT');process.exit(0)},5000);`;
  t.regex((await execa('nsenter', ['-t', String(s.pid), '-n', NODE, '-e', spoofed], { reject: false })).stdout, /^ERR /);
  // The host itself is not limited by a network's egress policy (victim side: svc works).
  t.is(await call('host', SVC_ADDR, 7000), `svc 7000 from ${SVC_HOST}`);
  // Published ports: connections into the sandbox and their replies are not egress.
  t.is(await call('peer', HOST_ADDR, 18205), `sandbox 80 from ${PEER_ADDR}`);
  t.is((await run(fw8, ['release', c.lease], { uid: U })).code, 0);
});

test.serial('nothing is left: teardown removes the networks\' rules and chains; the test\'s own rules are gone', async (t) => {
  for (const s of sandboxes.splice(0)) await s.kill();
  for (const i of installs.splice(0)) i.remove();
  for (const table of ['nat', 'filter']) {
    for (const ipt of [IPT, LEGACY]) {
      const left = save(table, ipt).filter((l) => /nstest10[1-4]\b|NSBOX-[A-Z]+-nstest10[1-4]/.test(l) || ownRule(l));
      t.deepEqual(left, [], `${ipt} ${table}`);
    }
  }
  for (const b of ['nstest101', 'nstest102', 'nstest103', 'nstest104']) scrub(b);
});
