// The root-made baseline: a network namespace (ip netns add) joined by a veth
// pair to a test bridge with a test subnet, all with iproute2, at the bench
// network's MTU. Removed at cleanup.
import { HOST_SCOPE } from '../../packages/netsetup/src/policy/bridgerules.ts';
import { asRoot, findExecutable, run, type Context } from './context.ts';

const NETNS = 'nsbench-veth';
const BRIDGE = 'nsbenchv0';
// Not named like netsetup's ports (nsb*): the host-wide bridge filter would
// take it for a sandbox's port with no lease and drop all it sends.
const HOST_VETH = 'benchveth1';
if (HOST_VETH.startsWith(HOST_SCOPE.portPrefix)) throw new Error(`the baseline veth ${HOST_VETH} is named like netsetup's ports`);
const HOST_ADDRESS = '10.232.11.1';
const NS_ADDRESS = '10.232.11.2';

export interface VethNamespace {
  /** the bridge's address on the host side */
  hostAddress: string;
  address: string;
  mtu: number;
  /** argv that runs argv inside the namespace (from root), as the bench user */
  inside(argv: string[]): string[];
}

export function vethUnavailable(): string | undefined {
  if (process.getuid!() !== 0) return 'needs root (ip netns, a bridge and a veth pair)';
  if (!findExecutable('ip')) return 'ip (iproute2) not installed';
  return undefined;
}

export function vethNamespace(ctx: Context, mtu: number): VethNamespace {
  return ctx.shared('veth', () => {
    for (const [what, argv] of [['netns', ['ip', 'netns', 'exec', NETNS, 'true']], ['link', ['ip', 'link', 'show', BRIDGE]], ['link', ['ip', 'link', 'show', HOST_VETH]]] as const) {
      if (run(undefined, [...argv]).status === 0) {
        throw new Error(`${what} ${argv[3]} exists already (left by an earlier run?); remove it with 'ip ${what} del ${argv[3]}'`);
      }
    }
    ctx.log(`root-made baseline: netns ${NETNS}, bridge ${BRIDGE} ${HOST_ADDRESS}/24, veth ${HOST_VETH}, mtu ${mtu}`);
    ctx.defer(`remove netns ${NETNS}, ${BRIDGE}, ${HOST_VETH}`, () => {
      run(undefined, ['ip', 'netns', 'del', NETNS]);
      run(undefined, ['ip', 'link', 'del', HOST_VETH]);
      run(undefined, ['ip', 'link', 'del', BRIDGE]);
    });
    asRoot(['ip', 'netns', 'add', NETNS]);
    asRoot(['ip', 'link', 'add', BRIDGE, 'mtu', String(mtu), 'type', 'bridge']);
    asRoot(['ip', 'addr', 'add', `${HOST_ADDRESS}/24`, 'dev', BRIDGE]);
    asRoot(['ip', 'link', 'set', BRIDGE, 'up']);
    asRoot(['ip', 'link', 'add', HOST_VETH, 'mtu', String(mtu), 'type', 'veth', 'peer', 'name', 'eth0', 'mtu', String(mtu), 'netns', NETNS]);
    asRoot(['ip', 'link', 'set', HOST_VETH, 'master', BRIDGE, 'up']);
    asRoot(['ip', '-n', NETNS, 'addr', 'add', `${NS_ADDRESS}/24`, 'dev', 'eth0']);
    asRoot(['ip', '-n', NETNS, 'link', 'set', 'eth0', 'up']);
    asRoot(['ip', '-n', NETNS, 'link', 'set', 'lo', 'up']);
    const as = ctx.runAs;
    return {
      hostAddress: HOST_ADDRESS,
      address: NS_ADDRESS,
      mtu,
      inside: (argv: string[]) => [
        'ip', 'netns', 'exec', NETNS,
        ...(as ? ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups'] : []),
        ...argv,
      ],
    };
  });
}
