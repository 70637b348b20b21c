// Shared by the netsetup integration tests: install the built dist/netsetup into a
// temporary prefix with a test configuration (scripts/install.sh), start processes
// in their own user+network namespace as unprivileged users, run netsetup as them,
// and remove everything afterwards (also when a test fails).
import { execa, execaSync } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { ROOT, busybox, type Child } from './sandbox.ts';

export const DIST_NETSETUP = path.join(ROOT, 'dist/netsetup');
export const NODE = process.execPath;

/** The binary under test: dist/netsetup, built first if missing. */
export function builtNetsetup(): string {
  if (process.getuid!() !== 0) throw new Error('netsetup integration tests run as root');
  if (!fs.existsSync(DIST_NETSETUP)) execaSync(NODE, [path.join(ROOT, 'scripts/build.ts'), 'netsetup'], { stdio: 'ignore' });
  return DIST_NETSETUP;
}

export interface NetworkOptions {
  /** Third octet of the test subnet 10.231.N.0/24, unique per test file. */
  octet: number;
  quota?: { users?: Record<string, number>; groups?: Record<string, number> };
  iptables?: 'auto' | 'nft' | 'legacy';
  stateDir?: string;
  mtu?: number;
  /** Prefix length of the test subnet (default 24). */
  prefix?: number;
  publish?: { minPort?: number; maxPerLease?: number };
  /** The network's isolation setting (default: netsetup's, "user"). */
  isolation?: 'user' | 'none';
  /** How long a user's netsetup serves that user's next sandboxes. Default 0
   *  here (netsetup's own default is 30): every launcher runs a netsetup of its
   *  own, the path most tests are about; netsetup-server.test.ts turns it on. */
  serveSeconds?: number;
}

export interface Install {
  prefix: string;
  bin: string;
  configFile: string;
  stateDir: string;
  bridge: string;
  subnet: string;
  gateway: string;
  iptables: string;
  /** Removes the install, the bridge, the rules and the state, whatever happened. */
  remove(): void;
}

export function install(o: NetworkOptions): Install {
  builtNetsetup();
  scrub(`nstest${o.octet}`);
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-netsetup-'));
  fs.chmodSync(prefix, 0o755);
  const bridge = `nstest${o.octet}`;
  const stateDir = o.stateDir ?? `/run/nsbox-test-${o.octet}-${process.pid}`;
  const gateway = `10.231.${o.octet}.1`;
  const config = {
    stateDir,
    iptables: o.iptables ?? 'auto',
    serveSeconds: o.serveSeconds ?? 0,
    networks: [
      {
        name: 'test',
        bridge,
        subnet: `10.231.${o.octet}.0/${o.prefix ?? 24}`,
        gateway,
        mtu: o.mtu ?? 1500,
        nat: true,
        dns: [gateway],
        quota: { users: o.quota?.users ?? { '*': 8 }, groups: o.quota?.groups ?? {} },
        ...(o.publish ? { publish: o.publish } : {}),
        ...(o.isolation ? { isolation: o.isolation } : {}),
      },
    ],
  };
  const configSrc = path.join(prefix, 'test.conf');
  fs.writeFileSync(configSrc, JSON.stringify(config, null, 2));
  execaSync(path.join(ROOT, 'scripts/install.sh'), [prefix, '--config', configSrc], { stdio: ['ignore', 'ignore', 'pipe'] });
  const iptables = o.iptables === 'legacy' ? '/usr/sbin/iptables-legacy' : o.iptables === 'nft' ? '/usr/sbin/iptables-nft' : '/usr/sbin/iptables';
  const inst: Install = {
    prefix,
    bin: path.join(prefix, 'bin/netsetup'),
    configFile: path.join(prefix, 'etc/nsbox/netsetup.conf'),
    stateDir,
    bridge,
    subnet: `10.231.${o.octet}.0/${o.prefix ?? 24}`,
    gateway,
    iptables,
    remove() {
      quiet(path.join(ROOT, 'scripts/uninstall.sh'), [prefix]);
      scrub(bridge);
      fs.rmSync(stateDir, { recursive: true, force: true });
      fs.rmSync(prefix, { recursive: true, force: true });
    },
  };
  return inst;
}

/** Removes a test bridge, its veths and its rules in both iptables backends:
 *  belt and braces after uninstall, and before a run in case an earlier one was
 *  killed (an ava timeout kills the worker before its after.always hooks). */
export function scrub(bridge: string): void {
  for (const l of hostVeths(bridge)) quiet('ip', ['link', 'del', l]);
  quiet('ip', ['link', 'del', bridge]);
  scrubFilter(bridge);
  for (const ipt of ['/usr/sbin/iptables-nft', '/usr/sbin/iptables-legacy']) {
    const jumps = [
      ['nat', 'POSTROUTING', `NSBOX-POST-${bridge}`, []],
      ['nat', 'PREROUTING', `NSBOX-DNAT-${bridge}`, []],
      ['nat', 'OUTPUT', `NSBOX-DNAT-${bridge}`, ['!', '-d', '127.0.0.0/8']],
      ['filter', 'FORWARD', `NSBOX-FWD-${bridge}`, []],
    ] as const;
    for (const [table, chain, own, match] of jumps) {
      for (let i = 0; i < 10; i++) {
        if (quiet(ipt, ['-w', '-t', table, '-D', chain, ...match, '-m', 'comment', '--comment', `nsbox:${bridge}`, '-j', own]) !== 0) break;
      }
    }
    for (const [table, , own] of jumps) {
      quiet(ipt, ['-w', '-t', table, '-F', own]);
      quiet(ipt, ['-w', '-t', table, '-X', own]);
    }
  }
}

/** Removes a test network's parts from the host's bridge filter table (its
 *  bridge's name, the isolated ranges of its 10.231.N.0/24), as a teardown of a
 *  killed run would have. Ports' elements go with their leases' GC. */
function scrubFilter(bridge: string): void {
  const octet = /^nstest(\d+)$/.exec(bridge)?.[1];
  quiet('nft', ['delete', 'element', 'ip', 'nsbox', 'bridges', `{ "${bridge}" }`]);
  if (octet === undefined) return;
  const r = execaSync('nft', ['-j', 'list', 'set', 'bridge', 'nsbox', 'isolated'], { reject: false });
  if (r.exitCode !== 0) return;
  const sets = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: unknown[] } }[] }).nftables;
  for (const e of sets.flatMap((i) => i.set?.elem ?? [])) {
    const text = typeof e === 'string' ? e : (e as { range?: [string, string] }).range?.join('-');
    if (text?.startsWith(`10.231.${octet}.`)) quiet('nft', ['delete', 'element', 'bridge', 'nsbox', 'isolated', `{ ${text} }`]);
  }
}

/** Host-side veths attached to the bridge. */
export function hostVeths(bridge: string): string[] {
  const r = execaSync('ip', ['-j', 'link', 'show', 'master', bridge], { reject: false });
  if (r.exitCode !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

export function linkExists(name: string): boolean {
  return quiet('ip', ['link', 'show', 'dev', name]) === 0;
}

export function rules(inst: Install, table: 'nat' | 'filter'): string {
  // Without the quotes iptables puts around comments, so both backends compare alike.
  return execaSync(inst.iptables, ['-w', '-t', table, '-S'], { stdin: 'ignore', stderr: 'ignore' }).stdout.replaceAll('"', '');
}

/** The lines of `iptables -S` about this install's bridge only. */
export function ownRules(inst: Install, table: 'nat' | 'filter'): string {
  return rules(inst, table).split('\n').filter((l) => l.includes(inst.bridge)).join('\n');
}

export interface Sandbox {
  pid: number;
  uid: number;
  proc: Child;
  kill(): Promise<void>;
}

/** A process of `uid` in its own user and network namespace (sleep), or with
 *  `hostNet` in the host's network namespace. */
export async function sandbox(uid: number, opts: { hostNet?: boolean; life?: string } = {}): Promise<Sandbox> {
  const inner = `echo $$; exec sleep ${opts.life ?? '600'}`;
  const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...(opts.hostNet ? ['sh', '-c', inner] : ['unshare', '-Urn', 'sh', '-c', inner])];
  const proc = execa('setpriv', args, { stdio: ['ignore', 'pipe', 'inherit'], reject: false, forceKillAfterDelay: false });
  const pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    proc.on('error', reject);
    proc.on('exit', () => reject(new Error('sandbox process exited early')));
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    pid,
    uid,
    proc,
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  uid?: number;
  gid?: number;
  env?: Record<string, string>;
  cwd?: string;
}

/** Held by whatever rewrites the host's one bridge-filter table as a whole (a
 *  root `setup-host` repairs it in place) and by a test that tampers with it and
 *  asks `check`: test files run at once, and a repair in between would hide the
 *  tampering. */
export const FILTER_LOCK = '/tmp/nsbox-filter.lock';

/** Runs the installed netsetup as `uid` (default: root). */
export async function run(inst: Install | string, args: string[], o: RunOptions = {}): Promise<Run> {
  const bin = typeof inst === 'string' ? inst : inst.bin;
  const locked = args[0] === 'setup-host' && o.uid === undefined;
  const r = await execa(locked ? 'flock' : bin, locked ? [FILTER_LOCK, bin, ...args] : args, {
    env: o.env ?? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    extendEnv: false,
    cwd: o.cwd ?? '/',
    ...(o.uid !== undefined ? { uid: o.uid, gid: o.gid ?? o.uid } : {}),
    stdin: 'ignore',
    timeout: 60_000,
    reject: false,
    stripFinalNewline: false,
  });
  return { code: r.exitCode ?? 128, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a command inside the network namespace of `pid` (as root). */
export function inNetns(pid: number, cmd: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = execaSync('nsenter', ['-t', String(pid), '-n', ...cmd], { timeout: 30_000, reject: false, stripFinalNewline: false });
  return { status: r.exitCode ?? null, stdout: r.stdout, stderr: r.stderr };
}

/** Pings `address` once from the network namespace of `pid`, with the test rootfs's busybox. */
export function pingFrom(pid: number, address: string): { status: number | null; stdout: string; stderr: string } {
  return inNetns(pid, [busybox(), 'ping', '-c', '1', '-W', '3', address]);
}

/** Runs a command, output discarded; its exit code. */
function quiet(file: string, args: string[]): number | undefined {
  return execaSync(file, args, { stdio: 'ignore', reject: false }).exitCode;
}

export type { Answer as Connection } from '../../packages/shared/src/protocol.ts';

/** Every user-facing failure is exactly one line in the documented format. */
export function oneLineError(stderr: string): boolean {
  return /^netsetup: [^\n]+\n$/.test(stderr) && !/\bat .*\(.*:\d+:\d+\)/.test(stderr);
}
