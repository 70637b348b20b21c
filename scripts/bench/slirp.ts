// slirp4netns, the user-mode network of rootless podman: access to /dev/net/tun,
// and a network namespace made with unshare as the unprivileged user with
// slirp4netns attached (for iperf3 against slirp's host loopback mapping).
import fs from 'node:fs';
import { findExecutable, run, sleep, type Context } from './context.ts';

/** slirp's address for the host's 127.0.0.1 (host loopback is on unless --disable-host-loopback). */
export const SLIRP_HOST_LOOPBACK = '10.0.2.2';

interface TunAccess {
  /** why slirp4netns cannot work here, or undefined */
  unavailable: string | undefined;
  notes: string[];
}

/**
 * slirp4netns opens /dev/net/tun inside the user namespace it joins, where only
 * the "other" permission bits count. Debian's udev makes it 0666; without udev it
 * can be 0600. As root, the benchmark then makes it 0666 for the run and puts the
 * old mode back at cleanup.
 */
export function tunAccess(ctx: Context): TunAccess {
  return ctx.shared('tun', (): TunAccess => {
    const tun = '/dev/net/tun';
    let st: fs.Stats;
    try {
      st = fs.statSync(tun);
    } catch {
      return { unavailable: `${tun} does not exist (load the tun module)`, notes: [] };
    }
    const mode = st.mode & 0o7777;
    if ((mode & 0o006) === 0o006) return { unavailable: undefined, notes: [] };
    if (process.getuid!() !== 0) return { unavailable: `${tun} is mode ${mode.toString(8)}: slirp4netns needs it 0666 (ask root)`, notes: [] };
    fs.chmodSync(tun, 0o666);
    ctx.defer(`restore mode ${mode.toString(8)} of ${tun}`, () => fs.chmodSync(tun, mode));
    ctx.log(`${tun} is mode ${mode.toString(8)}: 0666 for this run (restored at the end)`);
    return { unavailable: undefined, notes: [`${tun} was mode ${mode.toString(8)}; set to 0666 (Debian's udev default) for the run, restored afterwards`] };
  });
}

/** Why the slirp4netns baseline cannot run here, or undefined. */
export function slirpUnavailable(ctx: Context): string | undefined {
  for (const tool of ['slirp4netns', 'unshare', 'nsenter']) {
    if (!findExecutable(tool)) return `${tool} not installed`;
  }
  return tunAccess(ctx).unavailable;
}

export interface SlirpNamespace {
  /** pid of the process holding the user + network namespace */
  pid: number;
  /** --mtu given to slirp4netns; undefined: its default (1500) */
  mtu: number | undefined;
  /** argv that runs argv inside the namespace, as the same user */
  inside(argv: string[]): string[];
  stop(): Promise<void>;
}

/** A user + network namespace of the unprivileged user with slirp4netns attached as tap0 (10.0.2.100/24). */
export async function slirpNamespace(ctx: Context, mtu: number | undefined): Promise<SlirpNamespace> {
  const holder = ctx.spawn(ctx.runAs, [findExecutable('unshare')!, '--user', '--map-root-user', '--net', 'sleep', '3600']);
  const pid = holder.child.pid!;
  const ownNet = fs.readlinkSync('/proc/self/ns/net');
  for (let i = 0; ; i++) {
    let net: string | undefined;
    try {
      net = fs.readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      // not yet, or it died
    }
    if (net !== undefined && net !== ownNet) break;
    if (i > 100 || holder.child.exitCode !== null) throw new Error(`unshare --user --net as uid ${ctx.runAs?.uid ?? process.getuid!()} did not make a network namespace`);
    await sleep(20);
  }
  const slirpArgs = ['--configure', '--ready-fd=3', ...(mtu === undefined ? [] : [`--mtu=${mtu}`]), String(pid), 'tap0'];
  const slirp = ctx.spawn(ctx.runAs, [findExecutable('slirp4netns')!, ...slirpArgs], { extraFds: 1 });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('slirp4netns did not become ready in 10 s')), 10_000);
    (slirp.child.stdio[3] as NodeJS.ReadableStream).once('data', () => {
      clearTimeout(timer);
      resolve();
    });
    void slirp.done.then((r) => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns ${slirpArgs.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`));
    }, reject);
  });
  try {
    await ready;
  } catch (err) {
    holder.child.kill('SIGKILL');
    slirp.child.kill('SIGKILL');
    throw err;
  }
  return {
    pid,
    mtu,
    inside: (argv) => [findExecutable('nsenter')!, '-t', String(pid), '--user', '--net', '--preserve-credentials', ...argv],
    async stop() {
      slirp.child.kill('SIGTERM');
      holder.child.kill('SIGKILL');
      await Promise.allSettled([slirp.done, holder.done]);
    },
  };
}

/** slirp4netns's version line, for the record. */
export function slirpVersion(): string {
  const r = run(undefined, ['slirp4netns', '--version'], { capture: true });
  return r.stdout.split('\n')[0]?.trim() ?? 'unknown';
}
