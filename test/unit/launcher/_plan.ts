// Shared by the plan and outcome tests: options and facts for a rootfs at /r, with
// no file system behind them (the plan is pure).
import { planSandbox } from '../../../packages/launcher/src/plan.ts';
import { sandboxEnv, type Options } from '../../../packages/launcher/src/options.ts';
import type { Facts, PathFact } from '../../../packages/launcher/src/rootfs.ts';
import type { EtcFile } from '../../../packages/launcher/src/etc.ts';

export const base: Options = { rootfs: '/r', command: ['sh'], hostname: 'h', env: [], cwd: '/', mounts: [], readOnly: false, net: 'none', netsetup: undefined, publish: [], infoFd: undefined };
export const etcFile = (name: EtcFile, exists = true): [EtcFile, PathFact] => [name, { hostPath: `/r/etc/${name}`, exists, isDir: false }];
/** Missing targets lie in a directory of the rootfs the caller may write (`writable`). */
export const facts = (extra: [string, boolean][] = [], etc = [etcFile('hostname'), etcFile('hosts'), etcFile('resolv.conf')], writable = true): Facts => ({
  etc: { dir: { hostPath: '/r/etc', exists: true, isDir: true, base: { hostPath: '/r/etc', writable: false, mode: 0o755 } }, files: new Map(etc) },
  root: '/r',
  targets: new Map([['/proc', true], ['/dev', true], ['/sys', true], ...extra].map(([p, exists]) => {
    const fact: PathFact = { hostPath: `/r${p}`, exists: exists as boolean, isDir: true };
    if (!exists) fact.base = { hostPath: (p as string).split('/').length > 2 ? `/r/${(p as string).split('/')[1]}` : '/r', writable, mode: 0o755 };
    return [p as string, fact];
  })),
  sources: new Map([['/src', { hostPath: '/real/src', isDir: true }]]),
});
export const ends = { syncRead: 10, syncWrite: 11 };
export const plan = (o: Partial<Options> = {}, f = facts()) => planSandbox({ ...base, ...o }, f, ends, sandboxEnv({ ...base, ...o }, undefined));
export const whats = (p: ReturnType<typeof plan>) => p.steps.map((s) => s.what);
