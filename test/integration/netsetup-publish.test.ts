// Published ports against the real kernel: netsetup installed setuid into a
// temporary prefix, run as unprivileged users. A server in the sandbox's network
// namespace is reached through host ports on addresses the test creates: a veth
// to a "peer" namespace that plays the other machine (host end 10.231.79.1 and a
// second host address 10.231.78.1; peer 10.231.79.2). Traffic goes only there,
// to the test bridges (10.231.71.0/24, 10.231.72.0/24) and to loopback.
import test from 'ava';
import { execa, execaSync } from 'execa';
import fs from 'node:fs';
import net from 'node:net';
import { hostVeths, inNetns, install, linkExists, NODE, oneLineError, run, sandbox, scrub, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';
import type { Child } from '../helpers/sandbox.ts';

const U = 1000;
const PEER_NS = 'nstest7peer';
const HOST_VETH = 'nstest7h';
const SECOND_ADDR = '10.231.78.1';
const HOST_ADDR = '10.231.79.1';
const PEER_ADDR = '10.231.79.2';
const DROP_RULE = ['FORWARD', '-o', 'nstest71', '-m', 'comment', '--comment', 'nstest7-drop', '-j', 'DROP'];

let inst: Install;
const sandboxes: Sandbox[] = [];
const servers: Child[] = [];
const spawnBox = async (uid: number): Promise<Sandbox> => {
  const s = await sandbox(uid);
  sandboxes.push(s);
  return s;
};

const sh = (cmd: string[]): void => void execaSync(cmd[0]!, cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
const quiet = (cmd: string[]): number | undefined => execaSync(cmd[0]!, cmd.slice(1), { stdio: 'ignore', reject: false }).exitCode;

function removeTestNetwork(): void {
  quiet(['ip', 'netns', 'del', PEER_NS]);
  quiet(['ip', 'link', 'del', HOST_VETH]);
  for (let i = 0; i < 5; i++) if (quiet(['/usr/sbin/iptables', '-w', '-D', ...DROP_RULE]) !== 0) break;
}

test.before(() => {
  removeTestNetwork();
  scrub('nstest72');
  inst = install({ octet: 71, publish: { minPort: 1024, maxPerLease: 4 } });
  sh(['ip', 'netns', 'add', PEER_NS]);
  sh(['ip', 'link', 'add', HOST_VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', PEER_NS]);
  sh(['ip', 'addr', 'add', `${HOST_ADDR}/24`, 'dev', HOST_VETH]);
  sh(['ip', 'addr', 'add', `${SECOND_ADDR}/24`, 'dev', HOST_VETH]);
  sh(['ip', 'link', 'set', HOST_VETH, 'up']);
  sh(['ip', '-n', PEER_NS, 'addr', 'add', `${PEER_ADDR}/24`, 'dev', 'eth0']);
  sh(['ip', '-n', PEER_NS, 'link', 'set', 'eth0', 'up']);
  sh(['ip', '-n', PEER_NS, 'link', 'set', 'lo', 'up']);
  sh(['ip', '-n', PEER_NS, 'route', 'add', 'default', 'via', HOST_ADDR]);
  // As on a host whose FORWARD policy is DROP (Docker's), for the test bridge only.
  sh(['/usr/sbin/iptables', '-w', '-A', ...DROP_RULE]);
});

test.after.always(async () => {
  for (const s of servers) s.kill('SIGKILL');
  for (const s of sandboxes) await s.kill();
  inst?.remove();
  scrub('nstest72');
  removeTestNetwork();
});

/** A TCP (port 80) and UDP (port 53) echo server inside `pid`'s network namespace
 *  that tells who it saw. Resolves once both listen. */
async function serveIn(pid: number): Promise<{ proc: Child }> {
  const src = `const net=require('net'),dgram=require('dgram');
let n=0;const ready=()=>{if(++n===2)console.log('ready')};
net.createServer((s)=>s.end('tcp '+s.localPort+' from '+s.remoteAddress+'\\n')).listen(80,'0.0.0.0',ready);
const u=dgram.createSocket('udp4');u.on('message',(m,r)=>u.send('udp '+m+' from '+r.address+'\\n',r.port,r.address));u.bind(53,'0.0.0.0',ready);`;
  const p = execa('nsenter', ['-t', String(pid), '-n', NODE, '-e', src], { stdio: ['ignore', 'pipe', 'inherit'], reject: false, forceKillAfterDelay: false });
  servers.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    p.on('exit', () => reject(new Error('server exited')));
  });
  // Not `return p`: an execa subprocess is a promise of its end.
  return { proc: p };
}

const CLIENT = `const [host,port,proto]=process.argv.slice(1);
const fail=(c)=>{process.stdout.write('ERR '+c);process.exit(0)};
setTimeout(()=>fail('TIMEOUT'),10000).unref();
if(proto==='udp'){const u=require('dgram').createSocket('udp4');u.on('error',(e)=>fail(e.code));u.on('message',(m)=>{process.stdout.write(String(m));process.exit(0)});u.connect(+port,host,()=>u.send('ping'));setTimeout(()=>fail('TIMEOUT'),10000);}
else{const s=require('net').connect(+port,host);let d='';s.on('data',(x)=>d+=x);s.on('end',()=>{process.stdout.write(d);process.exit(0)});s.on('error',(e)=>fail(e.code));}`;

type Where = 'host' | 'peer' | { pid: number };
/** Connects from the host, the peer namespace or a sandbox's namespace; the server's reply or "ERR <code>". */
function call(from: Where, host: string, port: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<string> {
  const cmd = [NODE, '-e', CLIENT, host, String(port), proto];
  const argv = from === 'host' ? cmd : from === 'peer' ? ['ip', 'netns', 'exec', PEER_NS, ...cmd] : ['nsenter', '-t', String(from.pid), '-n', ...cmd];
  return execa(argv[0]!, argv.slice(1), { timeout: 20_000, reject: false }).then((r) => r.stdout.trim());
}

/** Every rule in both tables (nat, filter) of a backend carrying the lease's tag. */
function tagged(lease: string, save = '/usr/sbin/iptables-nft-save'): string[] {
  return execaSync(save, { stdin: 'ignore', stderr: 'ignore' }).stdout
    .split('\n')
    .filter((l) => l.includes(`nsbox:lease:${lease}`));
}

/** Lease rules in the chains of the test bridge nstest71. */
const leaseRules = (): string[] =>
  execaSync('/usr/sbin/iptables-nft-save', { stdin: 'ignore', stderr: 'ignore' }).stdout
    .split('\n')
    .filter((l) => l.includes('nstest71') && l.includes('nsbox:lease:'));

const waitGone = async (link: string): Promise<void> => {
  for (let i = 0; i < 100 && linkExists(link); i++) await new Promise((r) => setTimeout(r, 50));
};

test.serial('published tcp and udp ports answer from the host, another machine and another sandbox; release removes them', async (t) => {
  const box = await spawnBox(U);
  await serveIn(box.pid);
  const r = await run(inst, ['--pid', String(box.pid), '--json', '--publish', '18080:80', '--publish', `${HOST_ADDR}:18081:80`, '--publish', '18053:53/udp'], { uid: U });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Connection;
  t.deepEqual(c.published, [
    { hostAddress: '0.0.0.0', hostPort: 18080, port: 80, protocol: 'tcp' },
    { hostAddress: HOST_ADDR, hostPort: 18081, port: 80, protocol: 'tcp' },
    { hostAddress: '0.0.0.0', hostPort: 18053, port: 53, protocol: 'udp' },
  ]);

  // The host itself, on another address of the test link and on the bridge's own.
  t.is(await call('host', SECOND_ADDR, 18080), `tcp 80 from ${SECOND_ADDR}`);
  t.is(await call('host', inst.gateway, 18080), `tcp 80 from ${inst.gateway}`);
  // Another machine: through FORWARD (whose last word for this bridge is DROP), seen with its own address.
  t.is(await call('peer', HOST_ADDR, 18080), `tcp 80 from ${PEER_ADDR}`);
  t.is(await call('peer', HOST_ADDR, 18081), `tcp 80 from ${PEER_ADDR}`);
  t.is(await call('peer', HOST_ADDR, 18053, 'udp'), `udp ping from ${PEER_ADDR}`);
  t.is(await call('host', SECOND_ADDR, 18053, 'udp'), `udp ping from ${SECOND_ADDR}`);
  // Published on one address only: not on the others; never on the host's loopback.
  t.is(await call('host', SECOND_ADDR, 18081), 'ERR ECONNREFUSED');
  t.is(await call('host', '127.0.0.1', 18080), 'ERR ECONNREFUSED');
  // Another sandbox on the same bridge, through the host's addresses.
  const other = await spawnBox(U + 1);
  const oc = await run(inst, ['--pid', String(other.pid), '--json'], { uid: U + 1 });
  t.is(oc.code, 0, oc.stderr);
  t.deepEqual((JSON.parse(oc.stdout) as Connection).published, []);
  t.is(await call({ pid: other.pid }, HOST_ADDR, 18080), `tcp 80 from ${inst.gateway}`);
  t.is(await call({ pid: other.pid }, inst.gateway, 18080), `tcp 80 from ${inst.gateway}`);

  // Tagged rules: three DNATs, their FORWARD accepts and hairpin MASQUERADEs.
  const rules = tagged(c.lease);
  t.is(rules.filter((l) => l.includes('-j DNAT')).length, 3, rules.join('\n'));
  t.true(rules.some((l) => l.includes(`-d ${HOST_ADDR}/32`) && l.includes('--dport 18081') && l.includes(`--to-destination ${c.address}:80`)), rules.join('\n'));
  t.is(rules.filter((l) => l.includes('--ctstate DNAT') && l.includes('-j ACCEPT')).length, 3);
  t.is(rules.filter((l) => l.includes('-j MASQUERADE')).length, 3);

  // list shows them.
  const listed = JSON.parse((await run(inst, ['list', '--json'], { uid: U })).stdout) as { id: string; published: unknown[] }[];
  t.deepEqual(listed.find((l) => l.id === c.lease)?.published, c.published);
  t.regex((await run(inst, ['list'], { uid: U })).stdout, new RegExp(`^${c.lease} .* published=18080:80/tcp,${HOST_ADDR}:18081:80/tcp,18053:53/udp\\n`, 'm'));

  const rel = await run(inst, ['release', c.lease], { uid: U });
  t.is(rel.code, 0, rel.stderr);
  t.deepEqual(tagged(c.lease), []);
  t.is(await call('host', SECOND_ADDR, 18080), 'ERR ECONNREFUSED');
  t.is(await call('peer', HOST_ADDR, 18080), 'ERR ECONNREFUSED');
  t.is(await call('peer', HOST_ADDR, 18081), 'ERR ECONNREFUSED');
  t.is(await call('peer', HOST_ADDR, 18053, 'udp'), 'ERR ECONNREFUSED');
  // The server is still running in the (now unconnected) namespace: it is the rules that are gone.
  t.is(inNetns(box.pid, ['ip', '-o', 'link', 'show', 'eth0']).status, 1);
  t.is((await run(inst, ['release', '--pid', String(other.pid)], { uid: U + 1 })).code, 0);
});

test.serial('the human line names the published ports', async (t) => {
  const box = await spawnBox(U);
  const r = await run(inst, ['--pid', String(box.pid), '--publish', '18082:8080', '--publish', `${SECOND_ADDR}:18083:53/udp`], { uid: U });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`^eth0 10\\.231\\.71\\.\\d+/24 via 10\\.231\\.71\\.1 mtu 1500 on nstest71 \\(host nsb[0-9a-f]{8}, lease [0-9a-f]{8}, published 18082:8080/tcp,${SECOND_ADDR.replaceAll('.', '\\.')}:18083:53/udp\\)\\n$`));
  t.is((await run(inst, ['release', '--pid', String(box.pid)], { uid: U })).code, 0);
});

test.serial('refusals: low port, foreign or loopback address, bad syntax, too many, taken by a lease or a host socket; nothing is created', async (t) => {
  const box = await spawnBox(U);
  const nothingCreated = (what: string): void => {
    t.deepEqual(hostVeths(inst.bridge), [], what);
    t.is(inNetns(box.pid, ['ip', '-o', 'link', 'show', 'eth0']).status, 1, what);
    t.deepEqual(leaseRules(), [], what);
    const state = `${inst.stateDir}/leases.json`;
    t.true(!fs.existsSync(state) || (JSON.parse(fs.readFileSync(state, 'utf8')) as { leases: unknown[] }).leases.length === 0, what);
  };
  const refused = async (args: string[], code: number, re: RegExp, uid = U): Promise<void> => {
    const r = await run(inst, ['--pid', String(box.pid), ...args], { uid });
    t.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    t.true(oneLineError(r.stderr), r.stderr);
    t.regex(r.stderr, re);
    nothingCreated(args.join(' '));
  };
  await refused(['--publish', '18084:80', '--publish', '80:80'], 3, /^netsetup: publish 80:80\/tcp: host port 80 is below 1024, .*lower publish\.minPort of network "test"/);
  await refused(['--publish', '10.231.77.77:18084:80'], 3, /10\.231\.77\.77 is not an address of this host/);
  await refused(['--publish', '127.0.0.1:18084:80'], 3, /loopback \(127\.0\.0\.0\/8\) is not supported/);
  await refused(['--publish', '80x'], 2, /^netsetup: --publish 80x: expected \[HOSTIP:\]HOSTPORT:PORT\[\/tcp\|\/udp\]/);
  await refused(['--publish', '[::1]:18084:80'], 2, /IPv6 host addresses are not supported/);
  await refused(['--publish', '18084:80', '--publish', '18084:81'], 2, /18084\/tcp is also in publish 18084:80\/tcp/);
  await refused(['18090', '18091', '18092', '18093', '18094'].flatMap((p) => ['--publish', `${p}:80`]), 4, /5 ports requested, a sandbox may publish at most 4/);

  // A port a host service listens on (here, on one address of the host).
  const server = net.createServer((s) => s.end());
  await new Promise<void>((resolve) => server.listen(18095, SECOND_ADDR, resolve));
  t.teardown(() => void server.close());
  await refused(['--publish', '18095:80'], 8, /host port 18095\/tcp is in use on the host \(a socket is bound to 10\.231\.78\.1:18095\)/);
  await refused(['--publish', `${SECOND_ADDR}:18095:80`], 8, /in use on the host/);

  // A port another lease published, whoever's and on whichever address.
  const first = await spawnBox(U + 1);
  const held = await run(inst, ['--pid', String(first.pid), '--json', '--publish', `${HOST_ADDR}:18085:80`], { uid: U + 1 });
  t.is(held.code, 0, held.stderr);
  const heldLease = (JSON.parse(held.stdout) as Connection).lease;
  const again = async (spec: string, uid = U): Promise<void> => {
    const r = await run(inst, ['--pid', String(box.pid), '--publish', spec], { uid });
    t.is(r.code, 8, r.stderr);
    t.true(oneLineError(r.stderr), r.stderr);
    t.regex(r.stderr, /host port 18085\/tcp is already published by another sandbox .*Choose another host port/);
    t.deepEqual(hostVeths(inst.bridge), [`nsb${heldLease}`]);
    t.is(inNetns(box.pid, ['ip', '-o', 'link', 'show', 'eth0']).status, 1);
  };
  await again('18085:80');
  await again(`${HOST_ADDR}:18085:8080`);
  // Root is refused alike (checked on root's own sandbox).
  const rootBox = await spawnBox(0);
  const rr = await run(inst, ['--pid', String(rootBox.pid), '--publish', '18085:80']);
  t.is(rr.code, 8, rr.stderr);
  // Other protocol, other address: fine.
  const ok = await run(inst, ['--pid', String(box.pid), '--json', '--publish', '18085:80/udp', '--publish', `${SECOND_ADDR}:18086:80`], { uid: U });
  t.is(ok.code, 0, ok.stderr);
  // Root may publish below the minimum.
  const low = await run(inst, ['--pid', String(rootBox.pid), '--json', '--publish', '1023:80'], {});
  t.is(low.code, 0, low.stderr);
  t.deepEqual((JSON.parse(low.stdout) as Connection).published, [{ hostAddress: '0.0.0.0', hostPort: 1023, port: 80, protocol: 'tcp' }]);
  for (const [pid, uid] of [[box.pid, U], [first.pid, U + 1], [rootBox.pid, 0]] as const) t.is((await run(inst, ['release', '--pid', String(pid)], { uid })).code, 0);
  t.deepEqual(leaseRules(), []);
});

test.serial('when the sandbox dies, the next call removes its published rules and the port stops answering', async (t) => {
  const box = await spawnBox(U);
  const srv = await serveIn(box.pid);
  const r = await run(inst, ['--pid', String(box.pid), '--json', '--publish', '18087:80'], { uid: U });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Connection;
  t.is(await call('peer', HOST_ADDR, 18087), `tcp 80 from ${PEER_ADDR}`);
  // The namespace ends with its last process: the sandbox and the server nsenter'ed into it.
  srv.proc.kill('SIGKILL');
  await box.kill();
  await waitGone(c.hostVeth);
  t.false(linkExists(c.hostVeth));
  t.true(tagged(c.lease).length > 0, 'no call yet: the rules are still there');
  t.is((await run(inst, ['list'], { uid: U + 3 })).code, 0);
  t.deepEqual(tagged(c.lease), []);
  t.is(await call('peer', HOST_ADDR, 18087), 'ERR ECONNREFUSED');
  t.is(await call('host', SECOND_ADDR, 18087), 'ERR ECONNREFUSED');
  // The port is free again for anyone.
  const next = await spawnBox(U + 1);
  t.is((await run(inst, ['--pid', String(next.pid), '--publish', '18087:80'], { uid: U + 1 })).code, 0);
  t.is((await run(inst, ['release', '--pid', String(next.pid)], { uid: U + 1 })).code, 0);
});

test.serial('legacy iptables backend: published, reachable, removed exactly', async (t) => {
  const legacy = install({ octet: 72, iptables: 'legacy' });
  t.teardown(() => legacy.remove());
  const box = await spawnBox(U);
  await serveIn(box.pid);
  const r = await run(legacy, ['--pid', String(box.pid), '--json', '--publish', '18088:80'], { uid: U });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout) as Connection;
  t.is(tagged(c.lease, '/usr/sbin/iptables-legacy-save').filter((l) => l.includes('-j DNAT')).length, 1);
  t.deepEqual(tagged(c.lease), [], 'nothing in the nft backend');
  t.is(await call('host', SECOND_ADDR, 18088), `tcp 80 from ${SECOND_ADDR}`);
  t.is(await call('peer', HOST_ADDR, 18088), `tcp 80 from ${PEER_ADDR}`);
  t.is((await run(legacy, ['release', c.lease], { uid: U })).code, 0);
  t.deepEqual(tagged(c.lease, '/usr/sbin/iptables-legacy-save'), []);
  t.is(await call('host', SECOND_ADDR, 18088), 'ERR ECONNREFUSED');
  t.is((await run(legacy, ['teardown'])).code, 0);
  t.false(execaSync('/usr/sbin/iptables-legacy-save').stdout.includes('nstest72'));
});
