// Command line -> Options (pure: argv in, options or an NsboxError out).
// Hand-written rather than commander: loading and running commander cost ~6 ms
// of the launcher's ~30 ms start, and scripts start many sandboxes.
import { NsboxError } from '@nsbox/shared/error';
import { parsePublish, PublishSyntaxError } from '@nsbox/shared/publish';
import { VERSION } from './version.ts';
import { DEFAULT_COMMAND, DEFAULT_HOSTNAME, type Mount, type NetMode, type Options } from './options.ts';

const HINT = "Try 'launcher --help'.";
/** A bad command line: exit 125 like every launcher failure. */
const usage = (what: string, why: string, todo?: string): NsboxError => new NsboxError({ what, why, todo });

type Parsed = { kind: 'run'; options: Options } | { kind: 'info'; text: string };

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NET_MODES: NetMode[] = ['bridge', 'none'];

const HELP = `Usage: launcher --rootfs DIR [options] [-- CMD [ARGS...]]

Runs CMD (default: /bin/sh) in new user, mount, UTS, IPC, PID, network and cgroup
namespaces, as root inside (the caller outside), with DIR as its root filesystem.

Options:
  --rootfs DIR          directory to use as the root filesystem (required)
  --hostname NAME       hostname inside the sandbox (default: ${DEFAULT_HOSTNAME})
  --env KEY=VALUE       set an environment variable (repeatable); the default
                        environment is PATH, HOME=/root, TERM, HOSTNAME
  --cwd DIR             working directory inside the sandbox (default: /)
  --bind SRC:DST        bind-mount host path SRC at DST (repeatable)
  --ro-bind SRC:DST     the same, read-only (repeatable)
  --tmpfs DST           mount an empty tmpfs at DST (repeatable)
  --read-only           mount the rootfs read-only (and a tmpfs on /tmp)
  --net MODE            bridge: eth0 on a host bridge with NAT, set up by the
                        setuid helper netsetup; none: only lo (default: bridge
                        when netsetup is installed, else none)
  --netsetup PATH       the netsetup to use (default: next to the launcher,
                        else the first one in PATH)
  -p, --publish [HOSTIP:]HOSTPORT:PORT[/tcp|/udp]
                        make PORT of the sandbox reachable at HOSTPORT on the
                        host's addresses (repeatable; needs --net bridge)
  --network NAME        which of netsetup's networks (default: its first;
                        implies --net bridge)
  --info-fd FD          write JSON lines to FD: when the sandbox has started
                        (pid, address, gateway, lease) and when it has exited
  --init                run a minimal init (Debian's tini-static) as pid 1 and
                        the command as pid 2: it reaps orphans and passes
                        signals on, so they act as on an ordinary process
  --name NAME           a name for 'launcher ps' and 'launcher exec' (unique
                        among the caller's running sandboxes)
  -h, --help            show this help
  -V, --version         show the version

Other commands:
  launcher ps [--json]                     the caller's running sandboxes
  launcher exec NAME|PID [--env K=V] [--cwd DIR] [--] CMD [ARGS...]
                                           run CMD in a running sandbox, as root
  launcher import FILE|- DIR               unpack a rootfs tarball (plain, gzip,
                                           xz, zstd) into DIR, owners kept in
                                           the caller's subordinate ids
  launcher unshare [--] CMD [ARGS...]      run a host command as root in a user
                                           namespace with the caller's id maps
                                           (to remove or inspect such a tree)

Exit status: the command's; 128+N if it died of signal N; 125 if the launcher
failed (also when netsetup refused or failed: its message says why); 126 if the
command cannot be executed; 127 if it was not found.
`;

type Handler = (value: string) => void;

export function parseArgs(argv: string[]): Parsed {
  const mounts: Mount[] = [];
  const env: [string, string][] = [];
  let rootfs: string | undefined;
  let hostname = DEFAULT_HOSTNAME;
  let cwd = '/';
  let readOnly = false;
  let net: NetMode | undefined;
  let netsetup: string | undefined;
  let infoFd: number | undefined;
  let init = false;
  let name: string | undefined;
  let network: string | undefined;
  const publish: string[] = [];

  const withValue: Record<string, Handler> = {
    '--rootfs': (v) => (rootfs = v),
    '--hostname': (v) => (hostname = v),
    '--cwd': (v) => (cwd = sandboxPath('--cwd', v)),
    '--env': (v) => {
      const eq = v.indexOf('=');
      const key = eq < 0 ? v : v.slice(0, eq);
      if (eq < 0 || !ENV_KEY.test(key)) throw usage(`--env ${v}`, 'expected KEY=VALUE with KEY made of letters, digits and _');
      env.push([key, v.slice(eq + 1)]);
    },
    '--bind': (v) => mounts.push(bindSpec('bind', v)),
    '--ro-bind': (v) => mounts.push(bindSpec('ro-bind', v)),
    '--tmpfs': (v) => mounts.push({ kind: 'tmpfs', target: sandboxPath('--tmpfs', v) }),
    '--net': (v) => {
      if (!NET_MODES.includes(v as NetMode)) throw usage(`--net ${v}`, `unknown network mode (choose from: ${NET_MODES.join(', ')})`);
      net = v as NetMode;
    },
    '--netsetup': (v) => {
      if (v === '') throw usage('--netsetup', 'needs a path');
      netsetup = v;
    },
    '--publish': (v) => publish.push(publishSpec(v)),
    '-p': (v) => publish.push(publishSpec(v)),
    '--name': (v) => (name = checkName('--name', v)),
    '--network': (v) => (network = checkName('--network', v)),
    '--info-fd': (v) => {
      if (!/^\d{1,9}$/.test(v)) throw usage(`--info-fd ${v}`, 'expected a file descriptor number');
      infoFd = Number(v);
    },
  };

  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    if (arg === '-h' || arg === '--help') return { kind: 'info', text: HELP };
    if (arg === '-V' || arg === '--version') return { kind: 'info', text: `${VERSION}\n` };
    if (arg === '--read-only') {
      readOnly = true;
      continue;
    }
    if (arg === '--init') {
      init = true;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 && arg.startsWith('--') ? arg.slice(0, eq) : arg;
    const handler = withValue[name];
    if (!handler) throw usage(name, 'unknown option', HINT);
    let value: string;
    if (eq > 0 && name !== arg) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i]!;
    else throw usage(name, 'the option needs a value', HINT);
    handler(value);
  }

  if (rootfs === undefined) throw usage('--rootfs DIR', 'the option is required', HINT);
  if (rootfs === '') throw usage('--rootfs', 'needs a directory');
  if (!HOSTNAME.test(hostname) || hostname.length > 64) throw usage(`--hostname ${hostname}`, "not a valid hostname (letters, digits, '-' and '.', at most 64 characters)");
  const command = i < argv.length ? argv.slice(i) : DEFAULT_COMMAND;
  if (command[0] === '') throw usage('the command', 'an empty string');
  if (readOnly && !mounts.some((m) => m.target === '/tmp')) mounts.unshift({ kind: 'tmpfs', target: '/tmp' });
  if (net === 'none' && publish.length > 0) throw usage('-p', 'needs a network: it cannot be used with --net none');
  if (net === 'none' && network !== undefined) throw usage('--network', 'names a network: it cannot be used with --net none');
  if (network !== undefined) net = 'bridge';
  const extra = { ...(init ? { init } : {}), ...(name !== undefined ? { name } : {}), ...(network !== undefined ? { network } : {}) };
  return { kind: 'run', options: { rootfs, command, hostname, env, cwd, mounts, readOnly, net, netsetup, publish, infoFd, ...extra } };
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** A sandbox or network name: letters, digits, '_', '.', '-', at most 63 characters. */
export function checkName(flag: string, v: string): string {
  if (!NAME.test(v)) throw usage(`${flag} ${v}`, "not a valid name (letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63 characters)");
  return v;
}

// The syntax only; netsetup decides what may be published.
function publishSpec(v: string): string {
  try {
    parsePublish(v);
  } catch (err) {
    if (err instanceof PublishSyntaxError) throw usage(`-p ${err.spec}`, err.reason);
    throw err;
  }
  return v;
}

function bindSpec(kind: 'bind' | 'ro-bind', v: string): Mount {
  const colon = v.indexOf(':');
  const source = colon < 0 ? v : v.slice(0, colon);
  const target = colon < 0 ? v : v.slice(colon + 1);
  if (source === '') throw usage(`--${kind} ${v}`, 'expected SRC:DST');
  return { kind, source, target: sandboxPath(`--${kind}`, target) };
}

/** Normalises an absolute path inside the sandbox: no '.', '..' or repeated '/'. */
export function sandboxPath(flag: string, p: string): string {
  if (p.includes('\0')) throw usage(flag, 'the path contains a NUL byte');
  if (!p.startsWith('/')) throw usage(`${flag} ${p}`, 'the path inside the sandbox must be absolute');
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  return `/${parts.join('/')}`;
}
