// Rootless podman as the bench user, in a private HOME / XDG_RUNTIME_DIR under
// the temporary directory (nothing of the user's own podman state is read or
// left), with an image made by `podman import` of the bench rootfs. Which
// runtime and storage driver work on this host is found by trying; the choice
// and the reasons are recorded as notes. Cleanup removes the containers, the
// storage and podman's pause process.
import fs from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { check, findExecutable, run, type Context } from './context.ts';
import { tunAccess } from './slirp.ts';

export const PODMAN_IMAGE = 'localhost/nsbox-bench-busybox:latest';

export interface Podman {
  /** `podman run --rm [--runtime=R] --network=slirp4netns IMAGE ...argv` */
  runArgv(argv: string[]): string[];
  /** the same with IMAGE for the image, for tables */
  runLabel(argv: string[]): string;
  env: NodeJS.ProcessEnv;
  version: string;
  runtime: string;
  storageDriver: string;
  notes: string[];
  /** ids of the containers that exist (should be none between runs) */
  containers(): string[];
}

export type PodmanOrSkip = { podman: Podman } | { skip: string };

export function rootlessPodman(ctx: Context): PodmanOrSkip {
  return ctx.shared('podman', () => setUp(ctx));
}

interface Attempt {
  driver: 'overlay' | 'vfs';
  /** undefined: podman's configured default */
  runtime: string | undefined;
}

function setUp(ctx: Context): PodmanOrSkip {
  const podman = findExecutable('podman');
  if (!podman) return { skip: 'podman not installed' };
  if (!findExecutable('slirp4netns')) return { skip: 'slirp4netns not installed (podman --network=slirp4netns needs it)' };
  const tun = tunAccess(ctx);
  if (tun.unavailable) return { skip: tun.unavailable };
  const version = run(undefined, [podman, '--version'], { capture: true }).stdout.trim();

  const tarball = path.join(ctx.tempDir(), 'rootfs.tar');
  if (!fs.existsSync(tarball)) {
    check('tar', run(undefined, ['tar', '-C', ctx.rootfs(), '-cf', tarball, '.']));
    fs.chmodSync(tarball, 0o644);
  }
  const runtimes: (string | undefined)[] = [undefined, ...(findExecutable('runc') ? ['runc'] : []), ...(findExecutable('crun') ? ['crun'] : [])];
  const failures: string[] = [];
  let n = 0;
  for (const driver of ['overlay', 'vfs'] as const) {
    const env = privateHome(ctx, `podman-${n++}`, driver);
    const imported = run(ctx.runAs, [podman, 'import', tarball, PODMAN_IMAGE], { env, capture: true, timeoutMs: 120_000 });
    if (imported.status !== 0) {
      failures.push(`storage driver ${driver}: podman import failed: ${lastLine(imported.stderr)}`);
      continue;
    }
    const tried = new Set<string>();
    for (const runtime of runtimes) {
      const attempt: Attempt = { driver, runtime };
      const argv = (a: string[]): string[] => [podman, 'run', '--rm', ...(runtime ? [`--runtime=${runtime}`] : []), '--network=slirp4netns', PODMAN_IMAGE, ...a];
      if (runtime !== undefined && tried.has(runtime)) continue;
      const probe = run(ctx.runAs, argv(['/bin/true']), { env, timeoutMs: 120_000 });
      const used = runtime ?? defaultRuntime(podman, ctx, env);
      tried.add(used);
      if (probe.status !== 0) {
        failures.push(`${describe(attempt, used)}: ${lastLine(probe.stderr)}`);
        continue;
      }
      const warnings = [...new Set(probe.stderr.split('\n').map(warningText).filter((w): w is string => w !== undefined))];
      const notes = [
        ...tun.notes,
        `podman: ${describe(attempt, used)}, cgroup_manager=cgroupfs, events_logger=file, private HOME/XDG_RUNTIME_DIR; podman's slirp4netns runs with --mtu=65520 by default`,
        ...failures.map((f) => `podman: ${f}`),
        ...warnings.map((w) => `podman warns: ${w}`),
      ];
      ctx.log(`podman: ${describe(attempt, used)} works`);
      return {
        podman: {
          runArgv: argv,
          runLabel: (a) => ['podman', ...argv(a).slice(1).map((x) => (x === PODMAN_IMAGE ? 'IMAGE' : x))].join(' '),
          env,
          version,
          runtime: used,
          storageDriver: driver,
          notes,
          containers: () => {
            const r = run(ctx.runAs, [podman, 'ps', '--all', '--quiet'], { env, capture: true, timeoutMs: 60_000 });
            return r.stdout.split('\n').filter((l) => l.trim() !== '');
          },
        },
      };
    }
  }
  return { skip: `rootless podman does not work here: ${failures.join('; ')}` };
}

function describe(a: Attempt, used: string): string {
  return `${a.runtime ? `--runtime=${a.runtime}` : `default runtime (${used})`}, storage driver ${a.driver}`;
}

function defaultRuntime(podman: string, ctx: Context, env: NodeJS.ProcessEnv): string {
  const r = run(ctx.runAs, [podman, 'info', '--format', '{{.Host.OCIRuntime.Name}}'], { env, capture: true, timeoutMs: 60_000 });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

const lastLine = (s: string): string => s.trim().split('\n').filter((l) => l.trim() !== '').pop() ?? '(no message)';

/** `time="..." level=warning msg="X"` -> X */
function warningText(line: string): string | undefined {
  const m = /level=warning msg="((?:[^"\\]|\\.)*)"/.exec(line);
  return m ? m[1]!.replace(/\\"/g, '"') : undefined;
}

/**
 * A fresh HOME and XDG_RUNTIME_DIR for the bench user with a containers.conf and
 * storage.conf, and the cleanup of what podman makes there (its containers, its
 * storage and the pause process that keeps its user namespace).
 */
function privateHome(ctx: Context, name: string, driver: string): NodeJS.ProcessEnv {
  const base = path.join(ctx.tempDir(), name);
  const home = path.join(base, 'home');
  const runtimeDir = path.join(base, 'run');
  const config = path.join(home, '.config', 'containers');
  fs.mkdirSync(config, { recursive: true });
  fs.mkdirSync(runtimeDir, { mode: 0o700 });
  fs.writeFileSync(path.join(config, 'containers.conf'), '[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n');
  fs.writeFileSync(path.join(config, 'storage.conf'), `[storage]\ndriver = "${driver}"\n`);
  if (ctx.runAs) {
    for (const dir of [home, path.join(home, '.config'), config, path.join(config, 'containers.conf'), path.join(config, 'storage.conf'), runtimeDir]) {
      fs.chownSync(dir, ctx.runAs.uid, ctx.runAs.gid);
    }
  }
  const env: NodeJS.ProcessEnv = {
    HOME: home,
    XDG_RUNTIME_DIR: runtimeDir,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    XDG_DATA_HOME: path.join(home, '.local', 'share'),
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  };
  ctx.defer(`remove podman containers and storage in ${base}`, () => {
    const podman = findExecutable('podman')!;
    // Read before anything is removed: podman's processes all live in this user namespace.
    const userns = pauseUserns(path.join(runtimeDir, 'libpod', 'tmp', 'pause.pid'));
    run(ctx.runAs, [podman, 'rm', '--all', '--force', '--time', '0'], { env, timeoutMs: 60_000 });
    run(ctx.runAs, [podman, 'system', 'reset', '--force'], { env, timeoutMs: 60_000 });
    // A `podman run` killed half-way (the benchmark stopped by a signal) leaves
    // conmon, slirp4netns and `runc init` behind; the pause process holds the namespace.
    for (let i = 0; i < 5 && killProcesses(base, userns) > 0; i++) execaSync('sleep', ['0.2']);
  });
  return env;
}

/** The user namespace of podman's pause process named in its pid file, if it is still that process. */
function pauseUserns(pidFile: string): string | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return undefined;
    const comm = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    return comm === 'catatonit' || comm === 'podman' ? fs.readlinkSync(`/proc/${pid}/ns/user`) : undefined;
  } catch {
    return undefined;
  }
}

/** SIGKILLs every process in user namespace userns or with base in its command line; returns how many. */
function killProcesses(base: string, userns: string | undefined): number {
  if (userns === fs.readlinkSync('/proc/self/ns/user')) return 0;
  let killed = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const ns = fs.readlinkSync(`/proc/${entry}/ns/user`);
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if ((userns !== undefined && ns === userns) || cmdline.includes(`${base}/`)) {
        process.kill(Number(entry), 'SIGKILL');
        killed++;
      }
    } catch {
      // gone, or not ours to see
    }
  }
  return killed;
}
