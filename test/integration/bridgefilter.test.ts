// The bridge filter against the real kernel: a bridge of the test's own with
// veths into network namespaces that play sandboxes of two owners, bound by a
// filter table of the test's own (its own name and port prefix, so real nsbox
// ports on this host are never touched). Each attack is sent for real, from
// inside a sandbox's namespace, and each has a control: the same traffic from
// the legitimate side arrives, so a test that could no longer see the attack
// would fail instead of passing.
//
// Traffic goes only to addresses on this bridge and in these namespaces; a
// forged off-subnet source is kept on the host by a blackhole route.
import test from 'ava';
import { execa, execaSync, type ResultPromise } from 'execa';
import { randomBytes } from 'node:crypto';
import { BridgeFilter, checkTables, installTable, quietBridge, removeTable, tableMissing } from '../../packages/netsetup/src/kernel/bridgefilter.ts';
import { portBinding, type FilteredNetwork, type FilterScope, type Isolation } from '../../packages/netsetup/src/policy/bridgerules.ts';
import { arp, BROADCAST, ethernet, ETH_P_8021AD, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, PacketSocket, routerAdvertisement, tagged, udp4 } from '../helpers/frames.ts';

const BR = 'nstestnf0';
const CTL = 'nstestnf1';
const SUBNET = '10.231.91.0/24';
const GW = '10.231.91.1';
const BCAST = '10.231.91.255';
const CTL_GW = '10.231.92.1';
const FORGED = '198.51.100.7';
const SCOPE: FilterScope = { table: 'nsboxtest', portPrefix: 'nstp' };
const NAT_TABLE = 'nstestnf-nat';
const PUBLISHED = 18080;
const PORT = 8080;

interface Box {
  name: string;
  ns: string;
  port: string;
  mac: string;
  address: string;
  uid: number;
  bridge: string;
  gateway: string;
  sock?: PacketSocket;
  server?: ResultPromise;
}

const box = (name: string, octet: number, uid: number): Box => ({
  name,
  ns: `nstnf-${name}`,
  port: `nstp${name}`,
  mac: `02:31:91:00:00:${octet.toString(16).padStart(2, '0')}`,
  address: `10.231.91.${octet}`,
  uid,
  bridge: BR,
  gateway: GW,
});
const A1 = box('a1', 11, 1000);
const A2 = box('a2', 12, 1000);
const B1 = box('b1', 21, 1001);
const B2 = box('b2', 22, 1001);
const BOXES = [A1, A2, B1, B2];
/** On the unfiltered control bridge, with a port name outside the filter's prefix. */
const X1: Box = { name: 'x1', ns: 'nstnf-x1', port: 'nstcx1', mac: '02:31:92:00:00:11', address: '10.231.92.11', uid: 1000, bridge: CTL, gateway: CTL_GW };

const ip = (...args: string[]): string => execaSync('ip', args, { stdin: 'ignore' }).stdout;
const quietly = (f: () => unknown): void => {
  try {
    f();
  } catch {
    // already gone
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const write = (file: string, value: string): void => void execaSync('sh', ['-c', `echo ${value} > ${file}`]);
const nsWrite = (ns: string, file: string, value: string): void => void execaSync('ip', ['netns', 'exec', ns, 'sh', '-c', `echo ${value} > ${file}`]);

const net = (isolation: Isolation): FilteredNetwork => ({ bridge: BR, subnet: SUBNET, gateway: GW, isolation });
const bindings = (isolation: Isolation) => BOXES.map((b) => portBinding(SCOPE, net(isolation), b));
const install = (isolation: Isolation): void => installTable(SCOPE, [net(isolation)], bindings(isolation));

function removeAll(): void {
  for (const b of [...BOXES, X1]) {
    b.server?.kill('SIGKILL');
    b.sock?.close();
    quietly(() => ip('netns', 'del', b.ns));
  }
  for (const br of [BR, CTL]) quietly(() => ip('link', 'del', br));
  quietly(() => ip('route', 'del', 'blackhole', `${FORGED}/32`));
  quietly(() => execaSync('nft', ['delete', 'table', 'ip', NAT_TABLE], { stdio: 'ignore' }));
  quietly(() => removeTable(SCOPE));
}

function makeBridge(name: string, cidr: string): void {
  ip('link', 'add', name, 'type', 'bridge');
  ip('addr', 'add', cidr, 'dev', name);
  ip('link', 'set', name, 'up');
}

function makeBox(b: Box): void {
  ip('netns', 'add', b.ns);
  ip('link', 'add', b.port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.ns);
  ip('link', 'set', b.port, 'address', `fe${b.mac.slice(2)}`, 'master', b.bridge, 'up');
  ip('-n', b.ns, 'link', 'set', 'eth0', 'address', b.mac, 'up');
  ip('-n', b.ns, 'link', 'set', 'lo', 'up');
  ip('-n', b.ns, 'addr', 'add', `${b.address}/24`, 'dev', 'eth0');
  ip('-n', b.ns, 'route', 'add', 'default', 'via', b.gateway);
  // The sandbox's own settings: take forged sources, follow no redirects (so a
  // routed test stays routed).
  for (const key of ['all', 'eth0']) {
    nsWrite(b.ns, `/proc/sys/net/ipv4/conf/${key}/rp_filter`, '0');
    nsWrite(b.ns, `/proc/sys/net/ipv4/conf/${key}/accept_redirects`, '0');
  }
  b.sock = PacketSocket.open('eth0', `/run/netns/${b.ns}`);
}

/** A TCP server in the box answering its own name. */
async function serve(b: Box): Promise<void> {
  const code = `require('net').createServer((s) => s.end(process.argv[1])).listen(${PORT}, '0.0.0.0', () => console.log('ready'))`;
  const child = execa('ip', ['netns', 'exec', b.ns, process.execPath, '-e', code, b.name], { stdio: ['ignore', 'pipe', 'inherit'], reject: false, forceKillAfterDelay: false });
  b.server = child;
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`server in ${b.ns} exited ${c}`)));
  });
}

/** What a TCP connection from `from` to address:port reads, or undefined when it fails. */
function connect(from: Box, address: string, port = PORT): string | undefined {
  const code = `const s = require('net').connect(+process.argv[2], process.argv[1]); let d = ''; s.setTimeout(4000, () => process.exit(3)); s.on('data', (x) => (d += x)); s.on('end', () => { process.stdout.write(d); process.exit(0); }); s.on('error', () => process.exit(4));`;
  const r = execaSync('ip', ['netns', 'exec', from.ns, process.execPath, '-e', code, address, String(port)], { timeout: 10_000, reject: false });
  return r.exitCode === 0 ? r.stdout : undefined;
}

/** Sends `frame` from `from` and reports whether `at` captured a frame containing `marker`. */
async function arrives(from: Box, frame: Buffer, at: PacketSocket, marker: Buffer): Promise<boolean> {
  at.drain();
  from.sock!.send(frame);
  await sleep(150);
  return at.drain().some((f) => f.includes(marker));
}

const marker = (): Buffer => Buffer.concat([Buffer.from('nsbox-test:'), randomBytes(12)]);
/** A broadcast UDP datagram from `src` (default: the box's own address), from MAC `mac`. */
const datagram = (b: Box, m: Buffer, o: { src?: string; mac?: string } = {}): Buffer =>
  ethernet(BROADCAST, o.mac ?? b.mac, ETH_P_IP, udp4(o.src ?? b.address, BCAST, 40000, 40001, m));

const neighbour = (address: string, dev: string): string | undefined =>
  (JSON.parse(ip('-j', 'neigh', 'show', 'to', address, 'dev', dev)) as { lladdr?: string }[])[0]?.lladdr;

let hostSock: PacketSocket;

test.before(() => {
  if (process.getuid!() !== 0) throw new Error('integration tests run as root');
  removeAll();
  makeBridge(BR, `${GW}/24`);
  quietBridge(BR);
  makeBridge(CTL, `${CTL_GW}/24`);
  // The control bridge keeps the kernel's defaults, made explicit.
  write(`/proc/sys/net/ipv6/conf/${CTL}/disable_ipv6`, '0');
  write(`/proc/sys/net/ipv6/conf/${CTL}/accept_ra`, '1');
  install('user');
  for (const b of [...BOXES, X1]) makeBox(b);
  write(`/proc/sys/net/ipv6/conf/${X1.port}/accept_ra`, '1');
  ip('route', 'add', 'blackhole', `${FORGED}/32`);
  hostSock = PacketSocket.open(BR);
});

test.after.always(() => {
  hostSock?.close();
  removeAll();
});

test.serial('ARP: a port cannot announce another lease\'s address; the owner\'s own announce is accepted (control)', async (t) => {
  // A placeholder entry, so that the control has something to change.
  ip('neigh', 'replace', A2.address, 'lladdr', '02:00:5e:00:53:99', 'dev', BR, 'nud', 'stale');
  const announce = (from: Box, claimed: string): Buffer =>
    ethernet(BROADCAST, from.mac, ETH_P_ARP, arp({ op: 1, sha: from.mac, spa: claimed, tha: '00:00:00:00:00:00', tpa: claimed }));
  A2.sock!.send(announce(A2, A2.address));
  await sleep(150);
  t.is(neighbour(A2.address, BR), A2.mac, "the victim's own announce updates the host's entry");
  A1.sock!.send(announce(A1, A2.address));
  // The same lie as an ARP reply, and with the victim's MAC as the Ethernet source.
  A1.sock!.send(ethernet(BROADCAST, A1.mac, ETH_P_ARP, arp({ op: 2, sha: A1.mac, spa: A2.address, tha: A1.mac, tpa: A2.address })));
  A1.sock!.send(ethernet(BROADCAST, A2.mac, ETH_P_ARP, arp({ op: 1, sha: A1.mac, spa: A2.address, tha: '00:00:00:00:00:00', tpa: A2.address })));
  await sleep(150);
  t.is(neighbour(A2.address, BR), A2.mac, "the host's entry keeps the victim's MAC");
  // Malformed ARP (another hardware type) from the port's own addresses is dropped too.
  const odd = arp({ op: 1, sha: A1.mac, spa: A1.address, tha: '00:00:00:00:00:00', tpa: GW, htype: 6 });
  t.false(await arrives(A1, ethernet(BROADCAST, A1.mac, ETH_P_ARP, odd), A2.sock!, odd));
  const good = arp({ op: 1, sha: A1.mac, spa: A1.address, tha: '00:00:00:00:00:00', tpa: A2.address });
  t.true(await arrives(A1, ethernet(BROADCAST, A1.mac, ETH_P_ARP, good), A2.sock!, good), 'control: a well-formed request arrives');
});

test.serial('frames from a MAC the port was not given are dropped; the assigned MAC arrives (control)', async (t) => {
  const m = marker();
  t.false(await arrives(A1, datagram(A1, m, { mac: '02:31:91:00:00:66' }), A2.sock!, m));
  t.false(await arrives(A1, datagram(A1, m, { mac: A2.mac }), A2.sock!, m), "another port's MAC");
  t.false(await arrives(A1, datagram(A1, m, { mac: '02:31:91:00:00:66' }), hostSock, m), 'nor does the host see it');
  t.true(await arrives(A1, datagram(A1, m), A2.sock!, m), 'control: the assigned MAC arrives at a port');
  t.true(await arrives(A1, datagram(A1, m), hostSock, m), 'control: and at the host');
});

test.serial("IPv4 from another lease's address or from outside the subnet is dropped; the own address arrives (control)", async (t) => {
  const m = marker();
  for (const at of [A2.sock!, hostSock]) {
    t.false(await arrives(A1, datagram(A1, m, { src: A2.address }), at, m), "another lease's source");
    t.false(await arrives(A1, datagram(A1, m, { src: FORGED }), at, m), 'an off-subnet source');
    t.false(await arrives(A1, datagram(A1, m, { src: GW }), at, m), "the gateway's address");
    t.true(await arrives(A1, datagram(A1, m), at, m), 'control: the own source arrives');
  }
});

test.serial('VLAN-tagged frames (802.1Q, 802.1ad) are dropped; the same frame untagged arrives (control)', async (t) => {
  const m = marker();
  const inner = udp4(A1.address, BCAST, 40000, 40001, m);
  t.false(await arrives(A1, tagged(BROADCAST, A1.mac, 10, ETH_P_IP, inner), A2.sock!, m), '802.1Q');
  t.false(await arrives(A1, tagged(BROADCAST, A1.mac, 10, ETH_P_IP, inner, ETH_P_8021AD), A2.sock!, m), '802.1ad');
  t.false(await arrives(A1, tagged(BROADCAST, A1.mac, 10, ETH_P_IP, inner), hostSock, m), '802.1Q to the host');
  t.true(await arrives(A1, ethernet(BROADCAST, A1.mac, ETH_P_IP, inner), A2.sock!, m), 'control: untagged');
});

/** The IPv6 addresses and routes of a host device, as text. */
const ipv6State = (dev: string): string => `${ip('-6', 'addr', 'show', 'dev', dev)}${ip('-6', 'route', 'show', 'dev', dev)}`;

async function until(f: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100)) if (f()) return true;
  return f();
}

test.serial('IPv6 and router advertisements from a port change nothing on the host; the same on an unfiltered bridge do (control)', async (t) => {
  // Control: on the unfiltered bridge, an RA configures the bridge, and one sent
  // to the LLDP group address reaches the host veth's own stack, skipping the bridge.
  X1.sock!.send(ethernet('33:33:00:00:00:01', X1.mac, ETH_P_IPV6, routerAdvertisement('fe80::31:92ff:fe00:11', '2001:db8:5::')));
  t.true(await until(() => ipv6State(CTL).includes('2001:db8:5:')), `control: the unfiltered bridge takes the RA\n${ipv6State(CTL)}`);
  X1.sock!.send(ethernet('01:80:c2:00:00:0e', X1.mac, ETH_P_IPV6, routerAdvertisement('fe80::31:92ff:fe00:11', '2001:db8:6::')));
  t.true(await until(() => ipv6State(X1.port).includes('2001:db8:6:')), `control: the host veth takes an RA to 01:80:c2:00:00:0e\n${ipv6State(X1.port)}`);

  const before = [ipv6State(BR), ipv6State(A1.port)];
  const ra5 = routerAdvertisement('fe80::31:91ff:fe00:11', '2001:db8:5::');
  const ra6 = routerAdvertisement('fe80::31:91ff:fe00:11', '2001:db8:6::');
  t.false(await arrives(A1, ethernet('33:33:00:00:00:01', A1.mac, ETH_P_IPV6, ra5), A2.sock!, ra5), 'no IPv6 frame reaches another port');
  A1.sock!.send(ethernet('01:80:c2:00:00:0e', A1.mac, ETH_P_IPV6, ra6));
  A1.sock!.send(ethernet('01:80:c2:00:00:00', A1.mac, ETH_P_IPV6, ra6));
  await sleep(1000);
  t.deepEqual([ipv6State(BR), ipv6State(A1.port)], before, 'the bridge and the host veth are unchanged');
  t.false(ipv6State(BR).includes('2001:db8'));
  t.false(ipv6State(A1.port).includes('2001:db8'));
});

test.serial('isolation user: no TCP between owners, directly or routed through the gateway; same owner and published ports work (controls)', async (t) => {
  for (const b of [A2, B1, B2]) if (!b.server) await serve(b);
  // Routed: A1 reaches B1, and B1 answers A1, through the gateway.
  ip('-n', A1.ns, 'route', 'replace', `${B1.address}/32`, 'via', GW);
  ip('-n', B1.ns, 'route', 'replace', `${A1.address}/32`, 'via', GW);
  t.is(connect(A1, A2.address), 'a2', 'control: same owner, directly');
  t.is(connect(A1, B2.address), undefined, 'another owner, directly');
  t.is(connect(A1, B1.address), undefined, 'another owner, routed through the gateway');
  t.is(connect(B2, A2.address), undefined, 'and the other way round');
  // A published port: the host's DNAT to B1, and the hairpin MASQUERADE.
  execaSync('nft', ['-f', '-'], {
    input: `table ip ${NAT_TABLE} {
      chain pre { type nat hook prerouting priority -100; ip daddr ${GW} tcp dport ${PUBLISHED} dnat to ${B2.address}:${PORT}; }
      chain post { type nat hook postrouting priority 100; ip saddr ${SUBNET} ip daddr ${B2.address} tcp dport ${PORT} masquerade; }
    }\n`,
  });
  t.is(connect(A1, GW, PUBLISHED), 'b2', "another owner's published port, through the host");
});

test.serial('isolation none: owners reach each other, directly and routed (control for the test above)', async (t) => {
  install('none');
  try {
    t.is(connect(A1, B2.address), 'b2', 'directly');
    t.is(connect(A1, B1.address), 'b1', 'routed through the gateway');
    t.is(connect(B2, A2.address), 'a2');
  } finally {
    install('user');
  }
  t.is(connect(A1, B2.address), undefined, 'isolated again');
});

test.serial('a port whose elements are removed sends nothing; bound again, it does (control); stale ports are listed and swept', async (t) => {
  const f = BridgeFilter.open(SCOPE);
  try {
    const a2 = portBinding(SCOPE, net('user'), A2);
    const m = marker();
    t.true(await arrives(A2, datagram(A2, m), A1.sock!, m), 'control: bound, it arrives');
    f.unbind(a2);
    t.false(await arrives(A2, datagram(A2, m), A1.sock!, m), 'unbound: dropped');
    t.false(await arrives(A2, datagram(A2, m), hostSock, m), 'unbound: not at the host either');
    t.deepEqual(
      f.bound().map((p) => p.port),
      [A1, B1, B2].map((b) => b.port).sort(),
    );
    t.throws(() => f.unbind(a2), { message: /No such file or directory \(ENOENT\)/ }, 'unbinding twice fails and changes nothing');
    f.bind(a2);
    t.true(await arrives(A2, datagram(A2, m), A1.sock!, m), 'bound again, it arrives');
    t.throws(() => f.bind(a2), { message: /File exists \(EEXIST\)/ }, 'a port cannot be bound twice');
    // A new lease on a name still bound to another MAC and address: the old
    // elements go, so the port cannot keep both.
    const reused = portBinding(SCOPE, net('user'), { ...A2, mac: '02:31:91:00:00:77', address: '10.231.91.77' });
    f.bindReplacing(reused);
    t.deepEqual(
      f.bound().find((p) => p.port === A2.port),
      { port: A2.port, macs: [reused.mac], addresses: [reused.address], groups: [A2.uid], inGroups: [A2.uid], groupAddresses: [{ group: A2.uid, address: reused.address }] },
    );
    t.false(await arrives(A2, datagram(A2, m), A1.sock!, m), 'the old MAC and address are no longer bound');
    // Released under another isolation setting: the exact elements differ, all go anyway.
    f.unbindAny({ ...reused, group: 0xfffffffe });
    t.is(f.bound().find((p) => p.port === A2.port), undefined);
    t.notThrows(() => f.unbindAny(reused), 'nothing left is no error');
    f.bindReplacing(a2);
    t.true(await arrives(A2, datagram(A2, m), A1.sock!, m));
    // A stale port: elements without a veth; GC finds and sweeps it.
    const stale = portBinding(SCOPE, net('user'), { port: 'nstpzz', mac: '02:31:91:00:00:99', address: '10.231.91.99', uid: 7 });
    f.bind(stale);
    const found = f.bound().find((p) => p.port === 'nstpzz');
    t.deepEqual(found, { port: 'nstpzz', macs: ['02:31:91:00:00:99'], addresses: ['10.231.91.99'], groups: [7], inGroups: [7], groupAddresses: [{ group: 7, address: '10.231.91.99' }] });
    f.sweep([found!]);
    t.deepEqual(
      f.bound().map((p) => p.port),
      BOXES.map((b) => b.port).sort(),
    );
  } finally {
    f.close();
  }
});

test.serial('an address bound to a port whose veth is gone (records lost) is taken over by a new lease of it; one bound to a live port never is (control)', (t) => {
  const f = BridgeFilter.open(SCOPE);
  try {
    // A lease whose veth died and whose record was lost: its elements stay.
    const lost = portBinding(SCOPE, net('user'), { port: 'nstplost', mac: '02:31:91:00:00:55', address: '10.231.91.55', uid: A1.uid });
    f.bind(lost);
    const next = portBinding(SCOPE, net('user'), { port: 'nstpnext', mac: '02:31:91:00:00:56', address: '10.231.91.55', uid: A1.uid });
    t.throws(() => f.bind(next), { message: /File exists \(EEXIST\)/ }, 'the same owner and address: the pair is in the way');
    f.bindReplacing(next);
    const ports = f.bound();
    t.is(ports.find((p) => p.port === 'nstplost'), undefined, 'the lost lease\'s elements are gone');
    t.deepEqual(ports.find((p) => p.port === 'nstpnext')?.groupAddresses, [{ group: A1.uid, address: '10.231.91.55' }]);
    f.unbind(next);
    // The control: A1's address, bound to A1's live port, stays A1's.
    const thief = portBinding(SCOPE, net('user'), { port: 'nstpthief', mac: '02:31:91:00:00:57', address: A1.address, uid: A1.uid });
    t.throws(() => f.bindReplacing(thief), { message: /File exists \(EEXIST\)/ });
    t.deepEqual(f.bound().find((p) => p.port === A1.port)?.addresses, [A1.address], 'the live port keeps its address');
    t.is(f.bound().find((p) => p.port === 'nstpthief'), undefined);
  } finally {
    f.close();
  }
});

test.serial('a check finds tampered or missing tables (an accept rule, a flushed chain, a removed table); a reinstall repairs them', (t) => {
  const nft = (...args: string[]): void => void execaSync('nft', args);
  t.deepEqual(checkTables(SCOPE, [net('user')]), [], 'as installed');
  nft('insert', 'rule', 'bridge', SCOPE.table, 'prerouting', 'accept');
  t.deepEqual(checkTables(SCOPE, [net('user')]), [`chain bridge prerouting has 3 rules, not 2`, `chain bridge prerouting has an accept rule`]);
  install('user');
  nft('flush', 'chain', 'bridge', SCOPE.table, 'from_port');
  t.deepEqual(checkTables(SCOPE, [net('user')]), ['chain bridge from_port has 0 rules, not 10']);
  nft('delete', 'table', 'ip', SCOPE.table);
  t.deepEqual(checkTables(SCOPE, [net('user')]), [`table ip ${SCOPE.table} is missing`]);
  install('user');
  t.deepEqual(checkTables(SCOPE, [net('user')]), [], 'repaired');
});

test.serial('removing the table leaves nothing of it, and removing it again is no error', (t) => {
  const tables = (): string[] => execaSync('nft', ['list', 'tables']).stdout.split('\n').filter((l) => l.endsWith(` ${SCOPE.table}`));
  t.deepEqual(tables(), [`table bridge ${SCOPE.table}`, `table ip ${SCOPE.table}`]);
  removeTable(SCOPE);
  t.deepEqual(tables(), []);
  t.notThrows(() => removeTable(SCOPE));
  const f = BridgeFilter.open(SCOPE);
  try {
    t.true(tableMissing(t.throws(() => f.bound())), 'listing a missing table says so');
    t.true(tableMissing(t.throws(() => f.bind(portBinding(SCOPE, net('user'), A1)))), 'so does binding: the caller installs the table then');
  } finally {
    f.close();
  }
});
