// iperf3: a rootfs for the sandbox that contains it, host-side servers bound to
// one test-made address each, and the client's JSON result.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { asRoot, check, findExecutable, run, type Context, type RunResult } from './context.ts';

export function iperfUnavailable(): string | undefined {
  return findExecutable('iperf3') ? undefined : 'iperf3 not installed';
}

/** The host's iperf3, resolved. */
export function iperfBinary(): string {
  return fs.realpathSync(findExecutable('iperf3')!);
}

/**
 * A copy of the bench rootfs plus the host's iperf3 and the shared libraries ldd
 * names for it, at the same paths, so that the same binary runs in the sandbox.
 */
export function iperfRootfs(ctx: Context): string {
  return ctx.shared('iperf-rootfs', () => {
    const dir = path.join(ctx.tempDir(), 'rootfs-iperf3');
    check('cp', run(undefined, ['cp', '-a', ctx.rootfs(), dir]));
    const bin = iperfBinary();
    const libs = [...asRoot(['ldd', bin]).matchAll(/(\/\S+)\s+\(0x[0-9a-f]+\)/g)].map((m) => m[1]!);
    for (const file of [bin, ...libs]) {
      const dest = path.join(dir, file);
      fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
      fs.copyFileSync(file, dest);
      fs.chmodSync(dest, 0o755);
    }
    check('chmod', run(undefined, ['chmod', '-R', 'a+rX', dir]));
    ctx.log(`rootfs with iperf3 and ${libs.length} libraries in ${dir}`);
    return dir;
  });
}

/** A TCP port nobody listens on at address right now. */
function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface IperfServer {
  address: string;
  port: number;
  stop(): Promise<void>;
}

/** `iperf3 -s` as the bench user on the host, bound to address only. */
export async function iperfServer(ctx: Context, address: string): Promise<IperfServer> {
  const port = await freePort(address);
  const argv = [iperfBinary(), '--server', '--bind', address, '--port', String(port), '--forceflush'];
  const server = ctx.spawn(ctx.runAs, argv, { capture: true });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: not listening after 10 s`)), 10_000);
    server.child.stdout!.on('data', (d: Buffer | string) => {
      out += d.toString();
      if (out.includes('Server listening')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void server.done.then((r) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim() || r.stdout.trim()}`));
    }, reject);
  });
  return {
    address,
    port,
    async stop() {
      server.child.kill('SIGTERM');
      await server.done.catch(() => undefined);
    },
  };
}

/** Client arguments: TIME seconds to server, -R: the server sends. */
export function iperfClientArgs(server: { address: string; port: number }, address: string, seconds: number, reverse: boolean): string[] {
  return ['-c', address, '-p', String(server.port), '-t', String(seconds), '--connect-timeout', '5000', '-J', ...(reverse ? ['-R'] : [])];
}

export class IperfError extends Error {}

/** Bits per second the receiving side counted, from `iperf3 -J` output. */
export function receivedBitsPerSecond(label: string, r: RunResult): number {
  let j: { error?: string; end?: { sum_received?: { bits_per_second?: number } } } | undefined;
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    // not JSON: report the exit below
  }
  if (j?.error) throw new IperfError(`'${label}': ${j.error}`);
  const bps = j?.end?.sum_received?.bits_per_second;
  if (r.status !== 0 || typeof bps !== 'number') {
    throw new IperfError(`'${label}' ${r.signal ? `died of ${r.signal}` : `exited ${r.status}`}: ${r.stderr.trim() || r.stdout.trim().slice(0, 500)}`);
  }
  return bps;
}
