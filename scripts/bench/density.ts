// Section density: for each N (--density, default 100 and 500), N sandboxes
// running `sleep` at once, one contender after the other: networked launchers
// (--net bridge on the bench's dense network), --net none launchers,
// `bwrap --unshare-all` and rootless `podman run -d` (slirp4netns, --init).
// For each: the wall time until all have started (started with at most
// --density-parallel starting at once: 500 Node programs starting together
// would need tens of GB at their peak), the private memory of the processes the
// contender keeps per sandbox beside the sandbox itself, the host's MemAvailable
// drop per sandbox, and the wall time from SIGTERM to all until all have exited.
// Afterwards nothing may be left (veths, leases, containers).
//
// What a contender keeps: the process the benchmark started and all its
// descendants, except the sandbox's own process tree (its pid 1 from the
// started line of --info-fd: the launcher's `pid`, bwrap's `child-pid`). For
// the launcher that is the launcher and its netsetup holder (root), whatever
// programs they are by then. For podman, whose `run -d` exits, it is the new
// processes of the user outside any container (conmon and slirp4netns per
// container). Private memory = Private_Clean + Private_Dirty + Private_Hugetlb of
// /proc/PID/smaps_rollup. MemAvailable is read after `sync` and dropping the page
// cache (drop_caches 3: its reclaimable estimate was the largest noise): the
// median of 9 readings over 2 s before the start, after the sandboxes have
// settled, and after they have all exited and their leftovers were checked.
// Beside it, `held`: the memory no cache can give back (meminfo's AnonPages,
// Shmem, SUnreclaim, KernelStack, PageTables, Percpu), read at the same moments;
// it is what the sandboxes cost the kernel and their processes, without
// MemAvailable's estimate of the reclaimable cache. The host is shared (other
// programs' memory comes and goes), so the drop is taken both ways, start
// (before - running) and end (after - running), and their mean is reported
// with both.
import { execaSync } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { findExecutable, run, sleep, type Context } from './context.ts';
import { networkedBench, networkLeftovers, settled, type BenchNetwork } from './benchnet.ts';
import { rootlessPodman, type Podman } from './podman.ts';
import { checkTarget, round, skipped, table, target, type SectionReport, type Target } from './report.ts';

/** Target: what the launcher and netsetup keep per networked sandbox, in KiB. */
const PRIVATE_LIMIT_KIB = 1024;
/** Target: the memory a running networked sandbox costs the host, as a multiple of
 *  bwrap's: its `held` memory (the MemAvailable drop without MemAvailable's estimate
 *  of the reclaimable cache, whose swings on a shared host exceed the whole cost:
 *  the MemAvailable drop is shown beside it). */
const BWRAP_LIMIT = 2;
const INFO_FD = 3;
/** Starting stops when MemAvailable falls below this share of MemTotal, or 2 GiB. */
const MEMORY_FLOOR_SHARE = 0.15;
const MEMORY_FLOOR_MIN_KIB = 2 * 1024 * 1024;
const SLEEP = ['/bin/sleep', '100000'];

interface Instance {
  /** the process the benchmark started and waits for (undefined: podman) */
  root?: number;
  /** the sandbox's pid 1 on the host, excluded from what the contender keeps */
  sandbox?: number;
  address?: string;
  /** ends when the instance has exited, with the failure if it did not start or exit cleanly */
  exited: Promise<string | undefined>;
}

interface Contender {
  id: string;
  label: string;
  /** whether it reports an address (and so must report a distinct one) */
  networked: boolean;
  /** Starts one; resolves once it has started. */
  start(i: number): Promise<Instance>;
  /** Private memory (KiB) and the processes it keeps for the instances, by command name. */
  kept(instances: Instance[], before: Set<number>): Map<string, { count: number; kib: number }>;
  /** Sends SIGTERM to every instance; resolves when all have exited. */
  stop(instances: Instance[]): Promise<string[]>;
  leftovers(): string[];
}

interface Outcome {
  id: string;
  label: string;
  n: number;
  started: number;
  failures: string[];
  stoppedEarly?: string;
  startSeconds: number;
  exitSeconds: number;
  /** mean of the two below */
  memAvailableDropKiB: number;
  /** (before - running) / started */
  dropAtStartKiB: number;
  /** (after the exit - running) / started */
  riseAtEndKiB: number;
  /** mean of the two below: memory no cache gives back (meminfo's AnonPages,
   *  Shmem, SUnreclaim, KernelStack, PageTables, Percpu) */
  heldKiB: number;
  /** (running - before) / started */
  heldAtStartKiB: number;
  /** (running - after the exit) / started */
  heldFallAtEndKiB: number;
  privateKiB: number;
  processes: Record<string, { perSandbox: number; kibPerSandbox: number }>;
  addresses: number;
  distinctAddresses: number;
  leftBehind: string[];
}

// ---------------------------------------------------------------- /proc

/** MemAvailable, MemTotal, and `held`: the memory that no cache can give back,
 *  AnonPages + Shmem + SUnreclaim + KernelStack + PageTables + Percpu (KiB). */
function meminfo(): { available: number; total: number; held: number } {
  const text = fs.readFileSync('/proc/meminfo', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const held = ['AnonPages', 'Shmem', 'SUnreclaim', 'KernelStack', 'PageTables', 'Percpu'].reduce((a, f) => a + field(f), 0);
  return { available: field('MemAvailable'), total: field('MemTotal'), held };
}

/** The medians of 9 readings over 2 s of MemAvailable and of `held`, in KiB,
 *  after the page cache was written back and dropped: MemAvailable only
 *  estimates how much of the cache could be reclaimed, and the cache of a shared
 *  host (logs, builds) moves by hundreds of MB between readings. */
async function memAvailable(): Promise<{ available: number; held: number }> {
  execaSync('sync');
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
  await sleep(500);
  const xs: number[] = [];
  const hs: number[] = [];
  for (let i = 0; i < 9; i++) {
    if (i > 0) await sleep(250);
    const m = meminfo();
    xs.push(m.available);
    hs.push(m.held);
  }
  const median = (v: number[]): number => v.sort((a, b) => a - b)[4]!;
  return { available: median(xs), held: median(hs) };
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  uid: number;
  pidns: string;
}

/** Every process on the host, from /proc (those that vanish meanwhile are left out). */
function processes(): Map<number, Proc> {
  const out = new Map<number, Proc>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      // The program's file name: a Node single executable's threads are all "MainThread".
      let comm = stat.slice(stat.indexOf('(') + 1, close);
      try {
        comm = path.basename(fs.readlinkSync(`/proc/${entry}/exe`)).replace(/ \(deleted\)$/, '');
      } catch {
        // a kernel thread, or gone
      }
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      const uid = Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1]);
      const pidns = fs.readlinkSync(`/proc/${entry}/ns/pid`);
      out.set(Number(entry), { pid: Number(entry), ppid, comm, uid, pidns });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Private_Clean + Private_Dirty + Private_Hugetlb of a process, in KiB (0 when it is gone). */
export function privateKiB(pid: number): number {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  } catch {
    return 0;
  }
  let kib = 0;
  for (const m of text.matchAll(/^Private_(?:Clean|Dirty|Hugetlb):\s+(\d+) kB/gm)) kib += Number(m[1]);
  return kib;
}

/** root and its descendants, except the subtree of `exclude` (pure). */
export function treeWithout(root: number, exclude: number | undefined, table: Map<number, Pick<Proc, 'pid' | 'ppid'>>): number[] {
  const children = new Map<number, number[]>();
  for (const p of table.values()) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out: number[] = [];
  const stack = table.has(root) ? [root] : [];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (pid === exclude) continue;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

function addKept(into: Map<string, { count: number; kib: number }>, comm: string, kib: number): void {
  const k = into.get(comm) ?? { count: 0, kib: 0 };
  k.count++;
  k.kib += kib;
  into.set(comm, k);
}

/** What the started processes keep beside their sandboxes. */
function keptTrees(instances: Instance[]): Map<string, { count: number; kib: number }> {
  const table = processes();
  const kept = new Map<string, { count: number; kib: number }>();
  for (const inst of instances) {
    if (inst.root === undefined) continue;
    for (const pid of treeWithout(inst.root, inst.sandbox, table)) addKept(kept, table.get(pid)!.comm, privateKiB(pid));
  }
  return kept;
}

/** Keys a user may have apart from the containers' session keyrings. */
const KEY_MARGIN = 10;

/** The kernel's per-user key quota (kernel.keys.maxkeys), if readable. */
function maxKeys(): number | undefined {
  try {
    return Number(fs.readFileSync('/proc/sys/kernel/keys/maxkeys', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/** Whether pid still runs: a zombie has exited (an orphan waits for init to reap it). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- contenders

/** A contender that is one process per sandbox, reporting its sandbox's pid on --info-fd 3. */
function treeContender(ctx: Context, id: string, label: string, argv: string[], parse: (info: string) => { sandbox: number; address?: string } | undefined, networked: boolean, leftovers: () => string[]): Contender {
  return {
    id,
    label,
    networked,
    start() {
      const r = ctx.spawn(ctx.runAs, argv, { extraFds: 1, timeoutMs: 3_600_000 });
      const exited = r.done.then(
        (x) => (x.status === 0 || x.signal === 'SIGTERM' || x.status === 143 ? undefined : `${x.signal ? `died of ${x.signal}` : `exited ${x.status}`}: ${x.stderr.trim().split('\n').pop() ?? ''}`),
        (err: Error) => err.message,
      );
      return new Promise<Instance>((resolve, reject) => {
        let info = '';
        (r.child.stdio[INFO_FD] as NodeJS.ReadableStream).on('data', (d: Buffer | string) => {
          info += d.toString();
          const got = parse(info);
          if (got) resolve({ root: r.child.pid, ...got, exited });
        });
        void exited.then((why) => reject(new Error(why ?? 'exited before it started')));
      });
    },
    kept: (instances) => keptTrees(instances),
    async stop(instances) {
      for (const i of instances) process.kill(i.root!, 'SIGTERM');
      const failures = (await Promise.all(instances.map((i) => i.exited))).filter((f): f is string => f !== undefined);
      // bwrap's sandbox dies with it (--die-with-parent) a moment later.
      for (let k = 0; k < 500 && instances.some((i) => i.sandbox !== undefined && alive(i.sandbox)); k++) await sleep(10);
      return failures;
    },
    leftovers,
  };
}

function launcherInfo(info: string): { sandbox: number; address?: string } | undefined {
  for (const line of info.split('\n')) {
    try {
      const e = JSON.parse(line) as { event?: string; pid?: number; address?: string };
      if (e.event === 'started' && typeof e.pid === 'number') return { sandbox: e.pid, ...(e.address ? { address: e.address } : {}) };
    } catch {
      // not a whole line yet
    }
  }
  return undefined;
}

function bwrapInfo(info: string): { sandbox: number } | undefined {
  const m = /"child-pid":\s*(\d+)/.exec(info);
  return m ? { sandbox: Number(m[1]) } : undefined;
}

function podmanContender(ctx: Context, podman: Podman): Contender {
  const argv = podman.runArgv(SLEEP);
  // podman run -d --init: detached, with catatonit as pid 1 so that SIGTERM ends it as it ends the others.
  argv.splice(argv.indexOf('run') + 1, 0, '-d', '--init');
  const file = argv[0]!;
  return {
    id: 'podman',
    label: `${podman.runLabel(SLEEP).replace(' run ', ' run -d --init ')}`,
    networked: false,
    async start() {
      const r = await ctx.spawn(ctx.runAs, argv, { env: podman.env, capture: true, timeoutMs: 600_000 }).done;
      if (r.status !== 0) throw new Error(`podman run exited ${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      return { exited: Promise.resolve(undefined) };
    },
    kept(_instances, before) {
      // conmon and slirp4netns are not podman run's children (it has exited):
      // the user's new processes outside any container that name the private
      // runtime directory on their command line.
      const table = processes();
      const hostPidns = fs.readlinkSync('/proc/self/ns/pid');
      const runtimeDir = podman.env.XDG_RUNTIME_DIR!;
      const kept = new Map<string, { count: number; kib: number }>();
      for (const p of table.values()) {
        if (before.has(p.pid) || p.uid !== ctx.runAs?.uid || p.pidns !== hostPidns) continue;
        let cmdline = '';
        try {
          cmdline = fs.readFileSync(`/proc/${p.pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        if (cmdline.includes(runtimeDir)) addKept(kept, p.comm, privateKiB(p.pid));
      }
      return kept;
    },
    async stop() {
      // podman stop sends SIGTERM (to catatonit, which passes it on) and waits for every container.
      const r = await ctx.spawn(ctx.runAs, [file, 'stop', '--all', '--time', '10'], { env: podman.env, timeoutMs: 600_000 }).done;
      return r.status === 0 ? [] : [`podman stop exited ${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`];
    },
    leftovers() {
      run(ctx.runAs, [file, 'rm', '--all', '--force', '--time', '0'], { env: podman.env, timeoutMs: 600_000 });
      return podman.containers().map((c) => `podman container ${c}`);
    },
  };
}

// ---------------------------------------------------------------- one batch

async function batch(ctx: Context, c: Contender, n: number, floorKiB: number): Promise<Outcome> {
  const { opts } = ctx;
  // The previous batch's memory comes back a while after its exit (network
  // namespaces are freed by a kernel worker): settle first.
  await sleep(opts.densitySettle * 1000);
  const before = new Set(processes().keys());
  const memBefore = await memAvailable();
  const instances: Instance[] = [];
  const failures: string[] = [];
  let stoppedEarly: string | undefined;
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (next < n && stoppedEarly === undefined) {
      const i = next++;
      const { available } = meminfo();
      const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
      if (elapsed > opts.densityBudget) {
        stoppedEarly = `stopped starting at ${i} of ${n}: the starts took over --density-budget ${opts.densityBudget} s`;
        break;
      }
      if (available < floorKiB) {
        stoppedEarly = `stopped starting at ${i} of ${n}: MemAvailable ${Math.round(available / 1024)} MiB is below ${Math.round(floorKiB / 1024)} MiB`;
        break;
      }
      try {
        instances.push(await c.start(i));
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.densityParallel, n) }, worker));
  const startSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  ctx.log(`density: ${c.id} x ${n}: ${instances.length} started in ${startSeconds.toFixed(1)} s${failures.length ? `, ${failures.length} failed` : ''}${stoppedEarly ? `; ${stoppedEarly}` : ''}`);

  await sleep(opts.densitySettle * 1000);
  const memAfter = await memAvailable();
  const kept = c.kept(instances, before);
  const started = instances.length;
  const per = (x: number): number => (started > 0 ? x / started : NaN);
  const privateKiB = per([...kept.values()].reduce((a, k) => a + k.kib, 0));

  const t1 = process.hrtime.bigint();
  failures.push(...(await c.stop(instances)));
  const exitSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
  const leftBehind = await settled(c.leftovers, 30_000);
  // What ends with them (netsetup's release, network namespaces freed by a
  // kernel worker) takes a moment longer than their veths and leases.
  await sleep(opts.densitySettle * 1000);
  const memEnd = await memAvailable();
  const addresses = instances.flatMap((i) => (i.address ? [i.address] : []));
  ctx.log(`density: ${c.id} x ${n}: ${privateKiB.toFixed(0)} KiB private, ${per(memBefore.available - memAfter.available).toFixed(0)} KiB MemAvailable, ${per(memAfter.held - memBefore.held).toFixed(0)} KiB held per sandbox (start); all exited ${exitSeconds.toFixed(1)} s after SIGTERM`);
  return {
    id: c.id,
    label: c.label,
    n,
    started,
    failures,
    ...(stoppedEarly ? { stoppedEarly } : {}),
    startSeconds,
    exitSeconds,
    memAvailableDropKiB: per((memBefore.available - memAfter.available + memEnd.available - memAfter.available) / 2),
    dropAtStartKiB: per(memBefore.available - memAfter.available),
    riseAtEndKiB: per(memEnd.available - memAfter.available),
    heldKiB: per((memAfter.held - memBefore.held + memAfter.held - memEnd.held) / 2),
    heldAtStartKiB: per(memAfter.held - memBefore.held),
    heldFallAtEndKiB: per(memAfter.held - memEnd.held),
    privateKiB,
    processes: Object.fromEntries([...kept].map(([comm, k]) => [comm, { perSandbox: per(k.count), kibPerSandbox: per(k.kib) }])),
    addresses: addresses.length,
    distinctAddresses: new Set(addresses).size,
    leftBehind,
  };
}

// ---------------------------------------------------------------- the section

export async function density(ctx: Context): Promise<SectionReport> {
  const { opts } = ctx;
  const counts = opts.densityCounts;
  const TARGETS = counts.flatMap((n) => [
    `N=${n}: launcher + netsetup private memory per networked sandbox <= 1 MiB`,
    `N=${n}: memory held per running networked sandbox (MemAvailable's drop without the cache) <= ${BWRAP_LIMIT} x bwrap's`,
  ]).concat(['every networked sandbox started, each with its own address', 'nothing left behind (veths, leases, containers)']);
  const bench = networkedBench(ctx);
  if ('skip' in bench) return skipped(bench.skip, TARGETS);
  const { launcher, net } = bench;
  const rootfs = ctx.rootfs();
  const notes: string[] = [];
  const skips: string[] = [];

  const contenders: Contender[] = [
    treeContender(ctx, 'bridge', `launcher --net bridge --network ${net.dense.name} -- sleep`, networkedArgvDense(launcher, net, rootfs), launcherInfo, true, () => networkLeftovers(net, net.dense.bridge)),
    treeContender(ctx, 'none', 'launcher --net none -- sleep', [launcher, '--rootfs', rootfs, '--net', 'none', '--info-fd', String(INFO_FD), '--', ...SLEEP], launcherInfo, false, () => []),
  ];
  const bwrap = findExecutable('bwrap');
  if (bwrap) {
    contenders.push(treeContender(ctx, 'bwrap', 'bwrap --unshare-all --die-with-parent -- sleep', [bwrap, '--unshare-all', '--die-with-parent', '--bind', rootfs, '/', '--proc', '/proc', '--dev', '/dev', '--info-fd', String(INFO_FD), ...SLEEP], bwrapInfo, false, () => []));
  } else skips.push('bwrap not installed');
  const pod = rootlessPodman(ctx);
  const podman = 'podman' in pod ? podmanContender(ctx, pod.podman) : undefined;
  if ('skip' in pod) skips.push(pod.skip);
  else notes.push(...pod.podman.notes);

  const { total } = meminfo();
  const floor = Math.max(MEMORY_FLOOR_MIN_KIB, total * MEMORY_FLOOR_SHARE);
  notes.push(`started with at most ${opts.densityParallel} starting at once; measured ${opts.densitySettle} s after the last start; `
    + `starting stops if MemAvailable falls below ${Math.round(floor / 1024)} MiB or after ${opts.densityBudget} s (the row then says how many started)`);
  const outcomes: Outcome[] = [];
  for (const n of counts) {
    for (const c of [...contenders, ...(podman ? [podman] : [])]) {
      if (c === podman && n > opts.densityPodmanMax) {
        skips.push(`podman at N=${n}: skipped (more than --density-podman-max ${opts.densityPodmanMax})`);
        continue;
      }
      // runc gives every container a session keyring of its own: past the
      // user's key quota its containers fail ("unable to create session key:
      // disk quota exceeded"). The user's other keys need a few.
      const keys = maxKeys();
      if (c === podman && keys !== undefined && n > keys - KEY_MARGIN) {
        skips.push(`podman at N=${n}: skipped (runc makes a session keyring per container, and kernel.keys.maxkeys allows a user ${keys} keys)`);
        continue;
      }
      outcomes.push(await batch(ctx, c, n, floor));
    }
  }

  const find = (id: string, n: number): Outcome | undefined => outcomes.find((o) => o.id === id && o.n === n);
  const text: string[] = [];
  for (const n of counts) {
    const rows = outcomes.filter((o) => o.n === n);
    const bw = find('bwrap', n);
    text.push(
      `N=${n} sandboxes running sleep (all at once; started ${opts.densityParallel} at a time)`,
      ...table(
        ['command', 'started', 'start s', 'exit s', 'private KiB/sandbox', 'MemAvailable KiB/sandbox (start, end)', 'x bwrap', 'held KiB/sandbox (start, end)', 'x bwrap'],
        rows.map((o) => [o.label, `${o.started}/${o.n}`, o.startSeconds.toFixed(1), o.exitSeconds.toFixed(1), o.privateKiB.toFixed(0),
          `${o.memAvailableDropKiB.toFixed(0)} (${o.dropAtStartKiB.toFixed(0)}, ${o.riseAtEndKiB.toFixed(0)})`, bw ? (o.memAvailableDropKiB / bw.memAvailableDropKiB).toFixed(2) : '-',
          `${o.heldKiB.toFixed(0)} (${o.heldAtStartKiB.toFixed(0)}, ${o.heldFallAtEndKiB.toFixed(0)})`, bw ? (o.heldKiB / bw.heldKiB).toFixed(2) : '-']),
        [false, true, true, true, true, true, true, true, true],
      ),
      ...rows.map((o) => `  ${o.id}: kept per sandbox: ${Object.entries(o.processes).map(([comm, p]) => `${comm} ${p.perSandbox.toFixed(2)} x, ${p.kibPerSandbox.toFixed(0)} KiB`).join('; ') || 'nothing'}`),
      ...rows.filter((o) => o.stoppedEarly).map((o) => `  ${o.id}: ${o.stoppedEarly}`),
      '',
    );
  }
  const bridgeRuns = outcomes.filter((o) => o.id === 'bridge');
  const failures = outcomes.flatMap((o) => o.failures.map((f) => `${o.id} N=${o.n}: ${f}`));
  const left = [...new Set(outcomes.flatMap((o) => o.leftBehind))];
  text.push(
    `networked sandboxes with an address: ${bridgeRuns.map((o) => `N=${o.n}: ${o.addresses} (${o.distinctAddresses} distinct)`).join(', ')}`,
    `left behind: ${left.length === 0 ? 'nothing' : left.join(', ')}`,
    ...failures.slice(0, 5).map((f) => `failure: ${f}`),
    ...(failures.length > 5 ? [`... and ${failures.length - 5} more failures`] : []),
    ...skips.map((x) => `skipped: ${x}`),
    ...notes.map((x) => `note: ${x}`),
  );
  const targets: Target[] = counts.flatMap((n) => {
    const b = find('bridge', n);
    const complete = b !== undefined && b.started === n;
    return [
      target(TARGETS[counts.indexOf(n) * 2]!, complete ? b.privateKiB : undefined, PRIVATE_LIMIT_KIB, 1),
      target(TARGETS[counts.indexOf(n) * 2 + 1]!, complete ? b.heldKiB : undefined, find('bwrap', n)?.heldKiB, BWRAP_LIMIT),
    ];
  });
  targets.push(
    checkTarget(TARGETS[counts.length * 2]!, bridgeRuns.every((o) => o.started === o.n && o.failures.length === 0 && o.distinctAddresses === o.n)),
    checkTarget(TARGETS[counts.length * 2 + 1]!, left.length === 0),
  );
  return {
    text,
    targets,
    data: {
      counts,
      parallel: opts.densityParallel,
      settleSeconds: opts.densitySettle,
      podmanMax: opts.densityPodmanMax,
      memoryFloorKiB: Math.round(floor),
      network: net.dense,
      outcomes: outcomes.map((o) => ({ ...o, startSeconds: round(o.startSeconds, 3), exitSeconds: round(o.exitSeconds, 3), privateKiB: round(o.privateKiB, 1), memAvailableDropKiB: round(o.memAvailableDropKiB, 1), dropAtStartKiB: round(o.dropAtStartKiB, 1), riseAtEndKiB: round(o.riseAtEndKiB, 1), heldKiB: round(o.heldKiB, 1), heldAtStartKiB: round(o.heldAtStartKiB, 1), heldFallAtEndKiB: round(o.heldFallAtEndKiB, 1) })),
      leftBehind: left,
      skipped: skips,
      notes,
    },
  };
}

function networkedArgvDense(launcher: string, net: BenchNetwork, rootfs: string): string[] {
  return [launcher, '--rootfs', rootfs, '--net', 'bridge', '--netsetup', net.netsetup, '--network', net.dense.name, '--info-fd', String(INFO_FD), '--', ...SLEEP];
}

