// What the user asked for, after parsing and validation (pure).
export interface Mount {
  kind: 'bind' | 'ro-bind' | 'tmpfs';
  /** Host path (binds only). */
  source?: string;
  /** Absolute path inside the sandbox. */
  target: string;
}

export type NetMode = 'none' | 'bridge';

export interface Options {
  rootfs: string;
  command: string[];
  hostname: string;
  env: [string, string][];
  cwd: string;
  mounts: Mount[];
  readOnly: boolean;
  /** Undefined: bridge when a netsetup is found, else none. */
  net: NetMode | undefined;
  /** The netsetup to use (--netsetup); else next to the launcher, then PATH. */
  netsetup: string | undefined;
  /** -p specs, passed to netsetup, which decides. */
  publish: string[];
  /** --info-fd: where to write JSON lines about the sandbox. */
  infoFd: number | undefined;
  /** --init: a minimal init is pid 1 and the command pid 2. */
  init?: boolean;
  /** --name: the name in the caller's list of running sandboxes (launcher ps). */
  name?: string;
  /** --network: which of netsetup's networks (default: its first). */
  network?: string;
}

export const DEFAULT_HOSTNAME = 'sandbox';
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_COMMAND = ['/bin/sh'];

/** The command's environment: a clean default, then the user's --env in order. */
export function sandboxEnv(opts: Options, callerTerm: string | undefined): string[] {
  const env = new Map<string, string>([
    ['PATH', DEFAULT_PATH],
    ['HOME', '/root'],
    ['HOSTNAME', opts.hostname],
  ]);
  if (callerTerm) env.set('TERM', callerTerm);
  for (const [k, v] of opts.env) env.set(k, v);
  return [...env].map(([k, v]) => `${k}=${v}`);
}
