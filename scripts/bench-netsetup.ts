// Benchmark of one `netsetup --pid` call (installed setuid, run as an unprivileged
// user) against `node -e 0` on the same Node and against the same setup done with
// iproute2 commands in a shell (the network's iptables rules made once
// beforehand, as netsetup's are). Not a test: prints a table and says
// whether the target holds (netsetup's own work, its time minus `node -e 0`, at
// most half of the iproute2 way). Run as root; traffic: none.
//   node scripts/bench-netsetup.ts [--runs N] [--uid U]
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, uid: { type: 'string', default: '1000' } } });
const RUNS = Number(values.runs);
const UID = Number(values.uid);
const NODE = process.execPath;
const BRIDGE = 'nsbench0';
const OCTET = 61;
const SUBNET = `10.231.${OCTET}.0/24`;
const GW = `10.231.${OCTET}.1`;
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

if (process.getuid!() !== 0) throw new Error('run as root (it installs netsetup setuid into a temporary prefix)');
if (!fs.existsSync(path.join(root, 'dist/netsetup'))) execFileSync(NODE, [path.join(root, 'scripts/build.ts'), 'netsetup'], { stdio: 'inherit' });

const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-bench-'));
fs.chmodSync(prefix, 0o755);
const stateDir = `/run/nsbox-bench-${process.pid}`;
const confFile = path.join(prefix, 'bench.conf');
fs.writeFileSync(confFile, JSON.stringify({ stateDir, networks: [{ name: 'bench', bridge: BRIDGE, subnet: SUBNET, gateway: GW, quota: { users: { '*': 1000 } } }] }));
execFileSync(path.join(root, 'scripts/install.sh'), [prefix, '--config', confFile], { stdio: ['ignore', 'ignore', 'inherit'] });
const bin = path.join(prefix, 'bin/netsetup');

const children: ReturnType<typeof spawn>[] = [];
const shellVeths: string[] = [];
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const v of shellVeths) spawnSync('ip', ['link', 'del', v], { stdio: 'ignore' });
  shellRules('-D');
  spawnSync(path.join(root, 'scripts/uninstall.sh'), [prefix], { stdio: 'ignore' });
  fs.rmSync(prefix, { recursive: true, force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

async function sandbox(uid: number): Promise<number> {
  const c = spawn('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'unshare', '-Urn', 'sh', '-c', 'echo $$; exec sleep 600'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(c);
  return new Promise((resolve) => c.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
}

function timed(file: string, args: string[], opts: { uid?: number; input?: string } = {}): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(file, args, { env: ENV, input: opts.input, stdio: ['pipe', 'ignore', 'pipe'], ...(opts.uid !== undefined ? { uid: opts.uid, gid: opts.uid } : {}) });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
  return ms;
}

/** The same setup as netsetup, by hand: veth with the peer in the target's
 *  namespace and its configuration from inside. Like netsetup for a sandbox
 *  without published ports, it runs no iptables: the network's rules are made
 *  once, before the timed runs (shellRules). */
function iproute2Script(pid: number, n: number): string {
  const veth = `nsbsh${crypto.randomBytes(3).toString('hex')}`;
  shellVeths.push(veth);
  const addr = `10.231.${OCTET}.${200 + (n % 50)}`;
  const mac = `fe:${crypto.randomBytes(5).toString('hex').match(/../g)!.join(':')}`;
  return `set -e
ip link add ${veth} mtu 1500 address ${mac} master ${BRIDGE} up type veth peer name eth0 netns ${pid}
nsenter -t ${pid} -n ip -batch - <<EOF
addr add ${addr}/24 broadcast 10.231.${OCTET}.255 dev eth0
link set eth0 up
link set lo up
route add default via ${GW}
EOF
[ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || echo 1 > /proc/sys/net/ipv4/ip_forward
`;
}

/** The shell way's network rules, made once: MASQUERADE and forwarding of the subnet. */
const SHELL_RULES = [
  ['-t', 'nat', 'POSTROUTING', '-s', SUBNET, '!', '-d', SUBNET, '-j', 'MASQUERADE'],
  ['-t', 'filter', 'FORWARD', '-i', BRIDGE, '-s', SUBNET, '-j', 'ACCEPT'],
  ['-t', 'filter', 'FORWARD', '-o', BRIDGE, '-d', SUBNET, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
];

function shellRules(op: '-A' | '-D'): void {
  for (const [t, table, chain, ...rule] of SHELL_RULES) {
    const args = ['-w', t!, table!, op, chain!, ...rule];
    if (op === '-A') spawnSync('iptables', args, { stdio: 'ignore' });
    else for (let i = 0; i < 100 && spawnSync('iptables', args, { stdio: 'ignore' }).status === 0; i++);
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  // The host side exists in both cases (setup-host once, as an admin would).
  timed(bin, ['setup-host']);
  shellRules('-A');
  const nodeT: number[] = [];
  const netT: number[] = [];
  const shT: number[] = [];
  for (let i = 0; i < 2; i++) timed(NODE, ['-e', '0'], { uid: UID }); // warm-up
  for (let i = 0; i < RUNS; i++) {
    // Interleaved so that machine noise hits all three alike.
    nodeT.push(timed(NODE, ['-e', '0'], { uid: UID }));
    const p1 = await sandbox(UID);
    netT.push(timed(bin, ['--pid', String(p1)], { uid: UID }));
    const p2 = await sandbox(UID);
    shT.push(timed('/bin/sh', ['-c', iproute2Script(p2, i)]));
  }
  const n = median(nodeT);
  const ns = median(netT);
  const sh = median(shT);
  const own = ns - n;
  const f = (x: number): string => x.toFixed(1).padStart(7);
  console.log(`netsetup benchmark: ${RUNS} runs, median (min) wall time in ms, as uid ${UID}; ${os.cpus().length} CPUs`);
  console.log(`  node -e 0                       ${f(n)} (${f(Math.min(...nodeT))})`);
  console.log(`  netsetup --pid (setuid SEA)     ${f(ns)} (${f(Math.min(...netT))})`);
  console.log(`  iproute2 shell way              ${f(sh)} (${f(Math.min(...shT))})`);
  console.log(`  netsetup's own work (- node)    ${f(own)}`);
  console.log(`  own work / shell way            ${(own / sh).toFixed(2).padStart(7)}  target <= 0.50: ${own / sh <= 0.5 ? 'met' : 'MISSED'}`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench-netsetup: ${(err as Error).message}`);
    process.exit(1);
  },
);
