// Shared by the plan and outcome tests: options and facts for a rootfs at /r, with
// no file system behind them (the plan is pure).
import { planSandbox } from '../../../packages/launcher/src/plan.ts';
import { sandboxEnv, type Options } from '../../../packages/launcher/src/options.ts';
import type { Facts, PathFact } from '../../../packages/launcher/src/rootfs.ts';
import type { EtcFile } from '../../../packages/launcher/src/etc.ts';

export const base: Options = { rootfs: '/r', command: ['sh'], hostname: 'h', env: [], cwd: '/', mounts: [], readOnly: false, net: 'none', netsetup: undefined, publish: [], infoFd: undefined };
export const etcFile = (name: EtcFile, exists = true): [EtcFile, PathFact] => [name, { hostPath: `/r/etc/${name}`, exists, isDir: false }];
export const facts = (extra: [string, boolean][] = [], etc = [etcFile('hostname'), etcFile('hosts'), etcFile('resolv.conf')]): Facts => ({
  etc: { dir: { hostPath: '/r/etc', exists: true, isDir: true }, files: new Map(etc) },
  root: '/r',
  targets: new Map([['/proc', true], ['/dev', true], ['/sys', true], ...extra].map(([p, exists]) => [p as string, { hostPath: `/r${p}`, exists: exists as boolean, isDir: true }])),
  sources: new Map([['/src', { hostPath: '/real/src', isDir: true }]]),
});
export const ends = { syncRead: 10, syncWrite: 11 };
export const plan = (o: Partial<Options> = {}, f = facts()) => planSandbox({ ...base, ...o }, f, ends, sandboxEnv({ ...base, ...o }, undefined));
export const whats = (p: ReturnType<typeof plan>) => p.steps.map((s) => s.what);
