// Shared by the netsetup integration tests: install the built dist/netsetup into a
// temporary prefix with a test configuration (scripts/install.sh), start processes
// in their own user+network namespace as unprivileged users, run netsetup as them,
// and remove everything afterwards (also when a test fails).
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../../..');
export const DIST_NETSETUP = path.join(ROOT, 'dist/netsetup');
export const NODE = process.execPath;

/** The binary under test: dist/netsetup, built first if missing. */
export function builtNetsetup(): string {
  if (process.getuid!() !== 0) throw new Error('netsetup integration tests run as root');
  if (!fs.existsSync(DIST_NETSETUP)) execFileSync(NODE, [path.join(ROOT, 'scripts/build.ts'), 'netsetup'], { stdio: 'ignore' });
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
      },
    ],
  };
  const configSrc = path.join(prefix, 'test.conf');
  fs.writeFileSync(configSrc, JSON.stringify(config, null, 2));
  execFileSync(path.join(ROOT, 'scripts/install.sh'), [prefix, '--config', configSrc], { stdio: ['ignore', 'ignore', 'pipe'] });
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
      spawnSync(path.join(ROOT, 'scripts/uninstall.sh'), [prefix], { stdio: 'ignore' });
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
  for (const l of hostVeths(bridge)) spawnSync('ip', ['link', 'del', l], { stdio: 'ignore' });
  spawnSync('ip', ['link', 'del', bridge], { stdio: 'ignore' });
  for (const ipt of ['/usr/sbin/iptables-nft', '/usr/sbin/iptables-legacy']) {
    const jumps = [
      ['nat', 'POSTROUTING', `NSBOX-POST-${bridge}`, []],
      ['nat', 'PREROUTING', `NSBOX-DNAT-${bridge}`, []],
      ['nat', 'OUTPUT', `NSBOX-DNAT-${bridge}`, ['!', '-d', '127.0.0.0/8']],
      ['filter', 'FORWARD', `NSBOX-FWD-${bridge}`, []],
    ] as const;
    for (const [table, chain, own, match] of jumps) {
      for (let i = 0; i < 10; i++) {
        if (spawnSync(ipt, ['-w', '-t', table, '-D', chain, ...match, '-m', 'comment', '--comment', `nsbox:${bridge}`, '-j', own], { stdio: 'ignore' }).status !== 0) break;
      }
    }
    for (const [table, , own] of jumps) {
      spawnSync(ipt, ['-w', '-t', table, '-F', own], { stdio: 'ignore' });
      spawnSync(ipt, ['-w', '-t', table, '-X', own], { stdio: 'ignore' });
    }
  }
}

/** Host-side veths attached to the bridge. */
export function hostVeths(bridge: string): string[] {
  const r = spawnSync('ip', ['-j', 'link', 'show', 'master', bridge], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname);
}

export function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', 'dev', name], { stdio: 'ignore' }).status === 0;
}

export function rules(inst: Install, table: 'nat' | 'filter'): string {
  // Without the quotes iptables puts around comments, so both backends compare alike.
  return execFileSync(inst.iptables, ['-w', '-t', table, '-S'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replaceAll('"', '');
}

/** The lines of `iptables -S` about this install's bridge only. */
export function ownRules(inst: Install, table: 'nat' | 'filter'): string {
  return rules(inst, table).split('\n').filter((l) => l.includes(inst.bridge)).join('\n');
}

export interface Sandbox {
  pid: number;
  uid: number;
  proc: ChildProcess;
  kill(): Promise<void>;
}

/** A process of `uid` in its own user and network namespace (sleep), or with
 *  `hostNet` in the host's network namespace. */
export async function sandbox(uid: number, opts: { hostNet?: boolean; life?: string } = {}): Promise<Sandbox> {
  const inner = `echo $$; exec sleep ${opts.life ?? '600'}`;
  const args = ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...(opts.hostNet ? ['sh', '-c', inner] : ['unshare', '-Urn', 'sh', '-c', inner])];
  const proc = spawn('setpriv', args, { stdio: ['ignore', 'pipe', 'inherit'] });
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

/** Runs the installed netsetup as `uid` (default: root). */
export function run(inst: Install | string, args: string[], o: RunOptions = {}): Promise<Run> {
  const bin = typeof inst === 'string' ? inst : inst.bin;
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      {
        encoding: 'utf8',
        env: o.env ?? { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
        cwd: o.cwd ?? '/',
        ...(o.uid !== undefined ? { uid: o.uid, gid: o.gid ?? o.uid } : {}),
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 128) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs a command inside the network namespace of `pid` (as root). */
export function inNetns(pid: number, cmd: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', ['-t', String(pid), '-n', ...cmd], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export type { Answer as Connection } from '../../../packages/shared/src/protocol.ts';

/** Every user-facing failure is exactly one line in the documented format. */
export function oneLineError(stderr: string): boolean {
  return /^netsetup: [^\n]+\n$/.test(stderr) && !/\bat .*\(.*:\d+:\d+\)/.test(stderr);
}
