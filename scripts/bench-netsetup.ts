// Benchmark of one `netsetup --pid` call (installed setuid, run as an unprivileged
// user) against the same setup done with iproute2 commands in a shell (the
// network's iptables rules made once beforehand, as netsetup's are). Not a test:
// prints a table and says whether the target holds. Run as root; traffic: none.
//   node scripts/bench-netsetup.ts [--runs N] [--uid U] [--compare FILE]
//
// --compare FILE times a second netsetup binary (e.g. a build of another
// version) in the same run: installed setuid into a prefix of its own with the
// same configuration (its own state directory), called next to this one in
// every round (first in every other round), its own work taken against the
// same round's probe-entry. The paired difference per round says what changed.
// Each of the two then runs in a network namespace of its own, made for the
// run (nsbench-a, nsbench-b; the shell way stays in the host's): the nf_tables
// generation is one per namespace, and one binary's transactions must not
// decide whether the other may skip its look at the rules.
//
// netsetup's own work is its time minus that of dist/probe-entry: netsetup's
// entry (FFI load, AT_SECURE, hardening) and exit and nothing else, built into
// a single executable exactly as netsetup is (same V8 flags, same code cache)
// and installed setuid root beside it. probe-empty (an empty program built and
// installed the same way) shows what the entry itself costs. `node -e 0` is
// shown for reference only: it starts with V8's defaults (snapshot rehash, a
// worker pool per core), dearer than the SEAs, so subtracting it would flatter
// netsetup.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { execa, execaSync, type ResultPromise } from 'execa';
import { errno, libc } from '../packages/shared/src/libc.ts';
import { CLONE_NEWNET } from '../packages/shared/src/syscalls.ts';
import { holdArgs, serverName, serverRequest } from '../packages/shared/src/protocol.ts';

const root = path.resolve(import.meta.dirname, '..');
const count = (min: number) => (v: string): number => {
  if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
  return Number(v);
};
const opts = new Command('node scripts/bench-netsetup.ts')
  .description('Time one netsetup --pid call (setuid, as an unprivileged user) against the iproute2 shell way. Run as root.')
  .option('--runs <n>', 'timed runs of each', count(1), 20)
  .option('--uid <u>', 'unprivileged user to run netsetup as', count(0), 1000)
  .option('--compare <file>', 'another netsetup binary to time side by side (same configuration, same rounds)')
  .parse()
  .opts<{ runs: number; uid: number; compare?: string }>();
const RUNS = opts.runs;
const COMPARE = opts.compare === undefined ? undefined : path.resolve(opts.compare);
if (COMPARE !== undefined && !fs.existsSync(COMPARE)) {
  console.error(`bench-netsetup: --compare ${opts.compare}: no such file`);
  process.exit(2);
}
const UID = opts.uid;
const NODE = process.execPath;
const BRIDGE = 'nsbench0';
const OCTET = 61;
const SUBNET = `10.231.${OCTET}.0/24`;
const GW = `10.231.${OCTET}.1`;
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const quiet = { stdio: 'ignore', reject: false } as const;

if (process.getuid!() !== 0) {
  console.error('bench-netsetup: run as root (it installs netsetup setuid into a temporary prefix)');
  process.exit(2);
}
const missing = ['netsetup', 'probe-entry', 'probe-empty'].filter((p) => !fs.existsSync(path.join(root, 'dist', p)));
if (missing.length > 0) execaSync(NODE, [path.join(root, 'scripts/build.ts'), ...missing], { stdio: 'inherit' });

const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-bench-'));
fs.chmodSync(prefix, 0o755);
const stateDir = `/run/nsbox-bench-${process.pid}`;
const confFile = path.join(prefix, 'bench.conf');
fs.writeFileSync(confFile, JSON.stringify({ stateDir, networks: [{ name: 'bench', bridge: BRIDGE, subnet: SUBNET, gateway: GW, quota: { users: { '*': 1000 } } }] }));
const bin = path.join(prefix, 'bin/netsetup');
// The binary compared with, in a prefix of its own (netsetup reads the
// configuration next to itself), made by install.sh from a directory holding
// only it.
const otherPrefix = path.join(prefix, 'compare');
const otherDist = path.join(prefix, 'compare-dist');
const otherBin = path.join(otherPrefix, 'bin/netsetup');
const otherConf = path.join(prefix, 'compare.conf');
const NETNS = ['nsbench-a', 'nsbench-b'] as const;
const netnsFds: number[] = [];
let hostNetns = -1;
/** Runs f with this thread (and so the children it starts) in netns `name`, or in the host's. */
function inNetns<T>(name: string | undefined, f: () => T): T {
  if (name === undefined) return f();
  const fd = netnsFds[NETNS.indexOf(name as (typeof NETNS)[number])]!;
  if (libc().setns(fd, CLONE_NEWNET) !== 0) throw new Error(`setns ${name}: errno ${errno()}`);
  try {
    return f();
  } finally {
    if (libc().setns(hostNetns, CLONE_NEWNET) !== 0) {
      console.error(`bench-netsetup: cannot return to the host network namespace (errno ${errno()})`);
      process.exit(1);
    }
  }
}
// The baselines, installed as install.sh installs netsetup (root:root 4755).
const probe = path.join(prefix, 'bin/probe-entry');
const empty = path.join(prefix, 'bin/probe-empty');
const children: ResultPromise[] = [];
const shellVeths: string[] = [];
function cleanup(): void {
  for (const c of children) c.kill('SIGKILL');
  for (const v of shellVeths) execaSync('ip', ['link', 'del', v], quiet);
  shellRules('-D');
  fs.rmSync(probe, { force: true });
  fs.rmSync(empty, { force: true });
  // Deleting a namespace takes its bridge, veths, rules and filter table along.
  for (const fd of netnsFds) fs.closeSync(fd);
  if (hostNetns >= 0) fs.closeSync(hostNetns);
  if (COMPARE !== undefined) for (const ns of NETNS) execaSync('ip', ['netns', 'del', ns], quiet);
  if (COMPARE !== undefined) execaSync(path.join(root, 'scripts/uninstall.sh'), [otherPrefix], quiet);
  execaSync(path.join(root, 'scripts/uninstall.sh'), [prefix], quiet);
  fs.rmSync(prefix, { recursive: true, force: true });
  fs.rmSync(stateDir, { recursive: true, force: true });
  fs.rmSync(`${stateDir}-compare`, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

execaSync(path.join(root, 'scripts/install.sh'), [prefix, '--config', confFile], { stdin: 'ignore', stdout: 'ignore', stderr: 'inherit' });
if (COMPARE !== undefined) {
  fs.mkdirSync(otherDist);
  fs.copyFileSync(COMPARE, path.join(otherDist, 'netsetup'));
  fs.chmodSync(path.join(otherDist, 'netsetup'), 0o755);
  fs.writeFileSync(otherConf, JSON.stringify({ ...JSON.parse(fs.readFileSync(confFile, 'utf8')), stateDir: `${stateDir}-compare` }));
  execaSync(path.join(root, 'scripts/install.sh'), [otherPrefix, '--config', otherConf, '--dist', otherDist], { stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' });
  for (const ns of NETNS) {
    if (execaSync('ip', ['netns', 'add', ns], { reject: false, stdio: ['ignore', 'ignore', 'pipe'] }).exitCode !== 0) {
      console.error(`bench-netsetup: cannot make network namespace ${ns} (left by an earlier run? ip netns del ${ns})`);
      process.exit(1);
    }
    execaSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    netnsFds.push(fs.openSync(`/run/netns/${ns}`, 'r'));
  }
  hostNetns = fs.openSync('/proc/self/ns/net', 'r');
}
/** Where each binary runs: with --compare, in a namespace of its own. */
const [binNetns, otherNetns] = COMPARE !== undefined ? NETNS : [undefined, undefined];
for (const p of [probe, empty]) execaSync('install', ['-o', 'root', '-g', 'root', '-m', '4755', path.join(root, 'dist', path.basename(p)), p]);

/** A process in its own user and network namespace, owned by uid; its pid. */
async function sandbox(uid: number): Promise<number> {
  const c = execa('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', 'unshare', '-Urn', 'sh', '-c', 'echo $$; exec sleep 600'], { stdin: 'ignore', stdout: 'pipe', stderr: 'inherit', reject: false });
  children.push(c);
  return new Promise((resolve) => c.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
}

/**
 * The served way: the launcher's netsetup (`--json --hold`), once it has
 * answered, takes its user's next sandboxes over a socket (serve.ts). Started
 * once, for a sandbox of its own; then each round sends it one request from a
 * client of the user's and times, inside that client, the request to its answer:
 * netsetup's whole work for a connect, with no start at all. The client then
 * ends the hold, and the server releases the lease.
 */
async function startServer(): Promise<void> {
  const pid = await sandbox(UID);
  const holder = inNetns(binNetns, () => execa(bin, ['--pid', String(pid), '--json', '--hold'], { uid: UID, gid: UID, env: ENV, extendEnv: false, stdin: 'pipe', stdout: 'pipe', stderr: 'inherit', reject: false }));
  children.push(holder);
  await new Promise((resolve) => holder.stdout.once('data', resolve));
}
const CLIENT = `const s = require('node:net').connect({ path: '\\0' + process.argv[1] });
let t0 = 0n, got = '', ms = -1;
s.on('connect', () => { t0 = process.hrtime.bigint(); s.write(process.argv[2]); });
s.on('data', (d) => { got += d; if (ms < 0 && got.includes('\\n')) { ms = Number(process.hrtime.bigint() - t0) / 1e6; s.end(); } });
s.on('close', () => { process.stdout.write(got.startsWith('{"lease"') ? String(ms) : 'failed: ' + got); process.exit(0); });`;
/** This Node where the bench user can run it (the checkout may be under /root). */
let userNode: string | undefined;
function served(pid: number): number {
  const name = serverName(UID, fs.statSync(bin, { bigint: true }));
  if (userNode === undefined) {
    userNode = path.join(prefix, 'node');
    fs.copyFileSync(NODE, userNode);
    fs.chmodSync(userNode, 0o755);
  }
  const r = inNetns(binNetns, () => execaSync(userNode!, ['-e', CLIENT, name, serverRequest(holdArgs([], pid))], { uid: UID, gid: UID, env: ENV, extendEnv: false, stdin: 'ignore', reject: false }));
  const ms = Number(r.stdout);
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`served connect failed: ${r.stdout}${r.stderr}`);
  return ms;
}

function timed(file: string, args: string[], uid?: number): number {
  const t0 = process.hrtime.bigint();
  const r = execaSync(file, args, { env: ENV, extendEnv: false, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe', reject: false, ...(uid !== undefined ? { uid, gid: uid } : {}) });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} failed: ${r.stderr}`);
  return ms;
}

/** Times a run of file until its first line on stdout (its answer: what a
 *  caller waits for) and until its exit. */
function timedAnswer(file: string, args: string[], uid: number): Promise<{ answer: number; exit: number }> {
  const t0 = process.hrtime.bigint();
  const ms = (): number => Number(process.hrtime.bigint() - t0) / 1e6;
  const c = spawn(file, args, { env: ENV, uid, gid: uid, stdio: ['ignore', 'pipe', 'pipe'] });
  let answer = -1;
  let out = '';
  let err = '';
  c.stdout.on('data', (d: Buffer) => {
    if (answer < 0 && d.includes(10)) answer = ms();
    out += d.toString();
  });
  c.stderr.on('data', (d: Buffer) => void (err += d.toString()));
  let exit = -1;
  c.on('exit', () => void (exit = ms()));
  return new Promise((resolve, reject) => {
    c.on('close', (code) => {
      if (code !== 0 || answer < 0) reject(new Error(`${file} ${args.join(' ')} failed (exit ${code}): ${err}${out}`));
      else resolve({ answer, exit });
    });
  });
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
    if (op === '-A') execaSync('iptables', args, quiet);
    else for (let i = 0; i < 100 && execaSync('iptables', args, quiet).exitCode === 0; i++);
  }
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo]! + (s[Math.ceil(pos)]! - s[lo]!) * (pos - lo);
}
const median = (xs: number[]): number => quantile(xs, 0.5);

async function main(): Promise<void> {
  // The host side exists in both cases (setup-host once, as an admin would).
  timed(bin, ['setup-host']);
  if (COMPARE !== undefined) {
    inNetns(binNetns, () => timed(bin, ['setup-host']));
    inNetns(otherNetns, () => timed(otherBin, ['setup-host']));
  }
  shellRules('-A');
  const serving = execaSync(bin, ['default-config']).stdout.includes('serveSeconds');
  if (serving) await startServer();
  const servedT: number[] = [];
  const nodeT: number[] = [];
  const emptyT: number[] = [];
  const shT: number[] = [];
  // Until the answer line (A) and until the exit (T).
  const probeA: number[] = [];
  const probeT: number[] = [];
  const netA: number[] = [];
  const netT: number[] = [];
  const otherA: number[] = [];
  const otherT: number[] = [];
  for (let i = 0; i < 2; i++) {
    // warm-up: page cache, the executables' first mappings
    timed(NODE, ['-e', '0'], UID);
    timed(probe, [], UID);
    timed(empty, [], UID);
  }
  const push = (a: number[], t: number[]) => (r: { answer: number; exit: number }): void => {
    a.push(r.answer);
    t.push(r.exit);
  };
  for (let i = 0; i < RUNS; i++) {
    // Interleaved so that machine noise hits all alike.
    nodeT.push(timed(NODE, ['-e', '0'], UID));
    emptyT.push(timed(empty, [], UID));
    push(probeA, probeT)(await timedAnswer(probe, [], UID));
    const p1 = await sandbox(UID);
    // The compared binary goes first in every other round: neither gains from its place.
    const p0 = COMPARE !== undefined ? await sandbox(UID) : 0;
    const other = async (): Promise<void> => push(otherA, otherT)(await inNetns(otherNetns, () => timedAnswer(otherBin, ['--pid', String(p0)], UID)));
    if (COMPARE !== undefined && i % 2 === 1) await other();
    push(netA, netT)(await inNetns(binNetns, () => timedAnswer(bin, ['--pid', String(p1)], UID)));
    if (COMPARE !== undefined && i % 2 === 0) await other();
    const p2 = await sandbox(UID);
    shT.push(timed('/bin/sh', ['-c', iproute2Script(p2, i)]));
    if (serving) servedT.push(served(await sandbox(UID)));
  }
  const sh = median(shT);
  // Own work per round (netsetup minus probe-entry of the same round): noise
  // that hits one round hits both.
  const minus = (xs: number[], ys: number[]): number[] => xs.map((x, i) => x - ys[i]!);
  const ownA = minus(netA, probeA);
  const ownT = minus(netT, probeT);
  const own = median(ownA);
  const f = (x: number): string => x.toFixed(1).padStart(6);
  // (The least of per-round differences says nothing: shown as '-'.)
  const row = (label: string, xs: number[], min = f(Math.min(...xs))): string =>
    `  ${label.padEnd(44)}${f(median(xs))}  ${min}  ${f(quantile(xs, 0.1))} .. ${quantile(xs, 0.9).toFixed(1)}`;
  const ratio = (label: string, x: number, tail = ''): string => `  ${label.padEnd(44)}${x.toFixed(2).padStart(6)}${tail}`;
  const diff = '-'.padStart(6);
  console.log(`netsetup benchmark: ${RUNS} runs, wall time in ms, as uid ${UID}; ${os.cpus().length} CPUs, load average ${os.loadavg()[0]!.toFixed(2)}`);
  console.log(`  ${''.padEnd(44)}median     min     p10 .. p90`);
  console.log(row('node -e 0 (reference only)', nodeT));
  console.log(row('probe-empty (setuid SEA: start, exit)', emptyT));
  console.log(row('probe-entry (setuid SEA: entry, line)', probeA));
  console.log(row('probe-entry (setuid SEA: entry, line, exit)', probeT));
  console.log(row('netsetup --pid (setuid SEA), to its answer', netA));
  console.log(row('netsetup --pid (setuid SEA), to its exit', netT));
  console.log(row('iproute2 shell way (to its exit)', shT));
  console.log(row("netsetup's own work, to the answer", ownA, diff));
  console.log(row("netsetup's own work, to the exit", ownT, diff));
  console.log(ratio('own work to the answer / shell way', own / sh, `  target <= 0.50: ${own / sh <= 0.5 ? 'met' : 'MISSED'}`));
  console.log(ratio('own work to the exit / shell way', median(ownT) / sh));
  if (serving) {
    console.log(row('served connect (request to answer)', servedT));
    const served = median(servedT) / sh;
    console.log(ratio('served connect / shell way', served, `  target <= 0.50: ${served <= 0.5 ? 'met' : 'MISSED'} (every connect once netsetup serves: a user's after the first, or all with the admin's netsetup serve)`));
  }
  if (COMPARE !== undefined) {
    const otherOwnA = minus(otherA, probeA);
    const otherOwnT = minus(otherT, probeT);
    console.log(`compared with ${COMPARE}, called next to netsetup in each round; each in a network namespace of its own:`);
    console.log(row('compared binary, to its answer', otherA));
    console.log(row('compared binary, to its exit', otherT));
    console.log(row('its own work, to the answer', otherOwnA, diff));
    console.log(row('its own work, to the exit', otherOwnT, diff));
    console.log(row('netsetup - compared, to the answer', minus(netA, otherA), diff));
    console.log(ratio('its own work to the answer / shell way', median(otherOwnA) / sh));
    console.log(ratio('own work / its own work, to the answer', own / median(otherOwnA)));
    console.log(ratio('own work / its own work, to the exit', median(ownT) / median(otherOwnT)));
    if (serving) {
      const over = median(servedT) - median(otherOwnA);
      console.log(`  served connect - its own work (to the answer) ${over.toFixed(1).padStart(6)} ms  target <= +1 ms: ${over <= 1 ? 'met' : 'MISSED'}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench-netsetup: ${(err as Error).message}`);
    process.exit(1);
  },
);
