// The sandbox's setup as a list of raw syscalls for the native stub (pure: options
// and facts in, steps out). Order follows what the kernel needs: wait for the id
// maps, make / private, bind the rootfs, mount /proc, /dev, /sys and the user's
// mounts on it, bring lo up, pivot_root into it, then exec.
import path from 'node:path';
import type { Step } from '@nsbox/shared/program';
import type { PipeEnds } from '@nsbox/shared/clone';
import {
  AF_INET, AT_FDCWD, F_SETFD, IFF_LOOPBACK, IFF_RUNNING, IFF_UP, MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID,
  MS_PRIVATE, MS_RDONLY, MS_REC, O_CLOEXEC, O_WRONLY, PR_SET_PDEATHSIG, SIGNALS, SIOCSIFFLAGS, SOCK_CLOEXEC, SOCK_DGRAM,
} from '@nsbox/shared/syscalls';
import { etcMissing, etcSteps } from './etc.ts';
import { canOverlay, createFile, isUnder, mount, overlay, readOnly, str } from './steps.ts';
import type { BaseDir, Facts } from './rootfs.ts';
import type { Options } from './options.ts';

export interface SandboxPlan {
  steps: Step[];
  /** Index of the first exec attempt; the attempts run to the end of the list. */
  execFrom: number;
  /** Paths tried for the command, in order (several when it is looked up in PATH). */
  candidates: string[];
}

/** Where --init's binary is inside the sandbox. */
export const INIT_PATH = '/dev/init';

const DEVICES = ['null', 'zero', 'full', 'random', 'urandom', 'tty'];
const DEV_LINKS: [string, string][] = [
  ['fd', '/proc/self/fd'],
  ['stdin', '/proc/self/fd/0'],
  ['stdout', '/proc/self/fd/1'],
  ['stderr', '/proc/self/fd/2'],
  ['ptmx', 'pts/ptmx'],
];

export function planSandbox(opts: Options, facts: Facts, ends: PipeEnds, env: string[]): SandboxPlan {
  const R = facts.root;
  const steps: Step[] = [];
  const mounted: string[] = [];

  // A mount point that may be missing: created on the spot (in the rootfs, or in a
  // tmpfs mounted earlier), softly, so a failure shows up as the mount's own error.
  const mountPoint = (sandboxPath: string, isDir: boolean): string => {
    const fact = facts.targets.get(sandboxPath);
    if (!fact) throw new Error(`no facts for ${sandboxPath}`);
    const hidden = mounted.some((m) => isUnder(fact.hostPath, m) && fact.hostPath !== m);
    if (fact.exists && !hidden) return fact.hostPath;
    const parts = path.relative(R, fact.hostPath).split('/');
    for (let i = 1; i < parts.length; i++) {
      steps.push({ what: `create ${sandboxPath}`, call: 'mkdirat', args: [AT_FDCWD, str(path.join(R, ...parts.slice(0, i))), 0o755], soft: true });
    }
    if (isDir) steps.push({ what: `create ${sandboxPath}`, call: 'mkdirat', args: [AT_FDCWD, str(fact.hostPath), 0o755], soft: true });
    else steps.push(...createFile(`create ${sandboxPath}`, fact.hostPath, true));
    return fact.hostPath;
  };

  steps.push(
    { what: 'set the parent-death signal', call: 'prctl', args: [PR_SET_PDEATHSIG, SIGNALS.SIGKILL!] },
    { what: 'close the sync pipe', call: 'close', args: [ends.syncWrite] },
    { what: 'wait for the launcher', call: 'read', args: [ends.syncRead, { bytes: new Uint8Array(8) }, 1], expect: 1 },
    { what: `set the hostname to ${opts.hostname}`, call: 'sethostname', args: [str(opts.hostname), Buffer.byteLength(opts.hostname)] },
    mount('make / private', null, '/', null, MS_REC | MS_PRIVATE),
    mount(`bind the rootfs ${R}`, R, R, null, MS_BIND | MS_REC),
  );
  if (facts.ids === 'subids') {
    // The caller's own supplementary groups would show as nogroup inside.
    steps.splice(3, 0, { what: 'drop the supplementary groups', call: 'setgroups', args: [0, 0] });
  }
  // Overlays first: one mounted later would hide the mounts already made beneath it.
  const overlays = overlayDirs(opts, facts);
  for (const o of overlays) {
    steps.push(...overlay(`add mount points in ${sandboxView(R, o.hostPath)} (an overlay on it)`, o.hostPath, o.mode));
  }

  const proc = mountPoint('/proc', true);
  steps.push(mount('mount proc on /proc', 'proc', proc, 'proc', MS_NOSUID | MS_NODEV | MS_NOEXEC));
  mounted.push(proc);

  const dev = mountPoint('/dev', true);
  steps.push(mount('mount a tmpfs on /dev', 'tmpfs', dev, 'tmpfs', MS_NOSUID | MS_NOEXEC, 'mode=0755,size=1m'));
  mounted.push(dev);
  for (const name of DEVICES) {
    const node = `${dev}/${name}`;
    steps.push(...createFile(`create /dev/${name}`, node, false), mount(`bind /dev/${name}`, `/dev/${name}`, node, null, MS_BIND));
  }
  steps.push(
    { what: 'create /dev/pts', call: 'mkdirat', args: [AT_FDCWD, str(`${dev}/pts`), 0o755] },
    mount('mount devpts on /dev/pts', 'devpts', `${dev}/pts`, 'devpts', MS_NOSUID | MS_NOEXEC, 'newinstance,ptmxmode=0666,mode=0620'),
    { what: 'create /dev/shm', call: 'mkdirat', args: [AT_FDCWD, str(`${dev}/shm`), 0o755] },
    mount('mount a tmpfs on /dev/shm', 'tmpfs', `${dev}/shm`, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777'),
  );
  // --init: the host's static init, bound read-only into the /dev tmpfs (the
  // rootfs is never written); a bind keeps its source's exec permission.
  if (facts.init !== undefined) {
    steps.push(
      ...createFile('create /dev/init', `${dev}/init`, false),
      mount(`bind ${facts.init} as /dev/init`, facts.init, `${dev}/init`, null, MS_BIND),
      readOnly('make /dev/init read-only', `${dev}/init`, false),
    );
  }
  for (const [name, target] of DEV_LINKS) {
    steps.push({ what: `create /dev/${name}`, call: 'symlinkat', args: [str(target), AT_FDCWD, str(`${dev}/${name}`)] });
  }
  // The caller's terminal is not in the sandbox's own devpts; bound as /dev/console
  // it is found by ttyname() (tty, job control warnings, programs asking for a tty).
  if (facts.terminal !== undefined) {
    steps.push(...createFile('create /dev/console', `${dev}/console`, true), { ...mount('bind the terminal as /dev/console', facts.terminal, `${dev}/console`, null, MS_BIND), soft: true });
  }

  const sys = mountPoint('/sys', true);
  steps.push(mount('mount sysfs on /sys', 'sysfs', sys, 'sysfs', MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC));
  mounted.push(sys);

  for (const m of opts.mounts) {
    if (m.kind === 'tmpfs') {
      const target = mountPoint(m.target, true);
      steps.push(mount(`mount a tmpfs on ${m.target}`, 'tmpfs', target, 'tmpfs', MS_NOSUID | MS_NODEV, 'mode=1777'));
      mounted.push(target);
      continue;
    }
    const source = facts.sources.get(m.source!);
    if (!source) throw new Error(`no facts for ${m.source}`);
    const target = mountPoint(m.target, source.isDir);
    steps.push(mount(`bind ${m.source} on ${m.target}`, source.hostPath, target, null, MS_BIND | MS_REC));
    if (m.kind === 'ro-bind') steps.push(readOnly(`make ${m.target} read-only`, target, true));
    mounted.push(target);
  }
  steps.push(...etcSteps(opts, facts, dev, overlays.some((o) => o.hostPath === facts.etc.dir.hostPath)));
  if (opts.readOnly) {
    steps.push(readOnly('make the rootfs read-only', R, false));
    for (const o of overlays) if (o.hostPath !== R) steps.push(readOnly(`make ${sandboxView(R, o.hostPath)} read-only`, o.hostPath, false));
  }

  const ifreq = new Uint8Array(40);
  ifreq.set(Buffer.from('lo'));
  new DataView(ifreq.buffer).setInt16(16, IFF_UP | IFF_LOOPBACK | IFF_RUNNING, true);
  steps.push(
    { what: 'open a socket to bring lo up', call: 'socket', args: [AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0], save: true },
    { what: 'bring lo up', call: 'ioctl', args: ['saved', SIOCSIFFLAGS, { bytes: ifreq }] },
    { what: 'close the lo socket', call: 'close', args: ['saved'] },
    // Lets the sandbox's root use ping sockets; ping falls back to raw sockets if this fails.
    { what: 'allow ping', call: 'openat', args: [AT_FDCWD, str(`${proc}/sys/net/ipv4/ping_group_range`), O_WRONLY | O_CLOEXEC], save: true, soft: true },
    { what: 'allow ping', call: 'write', args: ['saved', str('0 0'), 3], soft: true },
    { what: 'allow ping', call: 'close', args: ['saved'], soft: true },
    { what: `enter the rootfs ${R}`, call: 'chdir', args: [str(R)] },
    { what: 'pivot_root into the rootfs', call: 'pivot_root', args: [str('.'), str('.')] },
    { what: 'detach the old root', call: 'umount2', args: [str('.'), MNT_DETACH] },
    { what: `change directory to ${opts.cwd}`, call: 'chdir', args: [str(opts.cwd)] },
  );
  for (const fd of [0, 1, 2]) steps.push({ what: `keep fd ${fd} open across exec`, call: 'fcntl', args: [fd, F_SETFD, 0], soft: true });

  // With --init the init looks the command up (its exit status 127 or 126 when it
  // cannot run it, as the launcher's own).
  const command = facts.init !== undefined ? [INIT_PATH, '--', ...opts.command] : opts.command;
  const candidates = facts.init !== undefined ? [INIT_PATH] : commandCandidates(opts.command[0]!, env);
  const execFrom = steps.length;
  for (const c of candidates) {
    steps.push({ what: `execute ${c}`, call: 'execve', args: [str(c), { strings: command }, { strings: env }], soft: true });
  }
  return { steps, execFrom, candidates };
}

const SYSTEM_MOUNTS = ['/proc', '/dev', '/sys'];

/**
 * The directories of the rootfs that get an overlay with a tmpfs on top (steps.ts
 * overlay()), ancestors first: the nearest existing directory above each missing
 * mount point that the caller cannot create on disk, or should not (--read-only),
 * and /etc when the launcher adds files the rootfs lacks. The rootfs on disk stays
 * unchanged; a mount point in a directory the caller may write is made there, as
 * before. A mount point under an earlier mount is made in that mount instead.
 */
export function overlayDirs(opts: Options, facts: Facts): BaseDir[] {
  const dirs = new Map<string, BaseDir>();
  const mounted: string[] = [];
  for (const target of [...SYSTEM_MOUNTS, ...opts.mounts.map((m) => m.target)]) {
    const fact = facts.targets.get(target);
    if (!fact) throw new Error(`no facts for ${target}`);
    const hidden = mounted.some((m) => isUnder(fact.hostPath, m) && fact.hostPath !== m);
    const base = fact.base;
    if (!fact.exists && !hidden && base && (!base.writable || opts.readOnly) && canOverlay(base.hostPath)) dirs.set(base.hostPath, base);
    mounted.push(fact.hostPath);
  }
  const etc = facts.etc.dir;
  if (etcMissing(opts, facts).length > 0 && etc.base && canOverlay(etc.hostPath)) dirs.set(etc.hostPath, { ...etc.base, hostPath: etc.hostPath });
  return [...dirs.values()].sort((a, b) => a.hostPath.length - b.hostPath.length);
}

/** A host path in the rootfs as the sandbox sees it. */
function sandboxView(root: string, hostPath: string): string {
  return `/${path.relative(root, hostPath)}`;
}

/** Where execvp would look for the command, given the sandbox's PATH. */
export function commandCandidates(cmd: string, env: string[]): string[] {
  if (cmd.includes('/')) return [cmd];
  const pathVar = env.findLast((e) => e.startsWith('PATH='))?.slice(5) ?? '';
  const dirs = pathVar.split(':').map((d) => (d === '' ? '.' : d));
  return dirs.map((d) => `${d.replace(/\/+$/, '')}/${cmd}`);
}
