// Running sandboxes: --name, 'launcher ps', 'launcher exec' into one (its
// namespaces and root, as root inside), refused for another user's; --network
// chooses one of netsetup's networks.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { collect, forgetSandboxesOf, LAUNCHER, makeRootfs, requireRoot, run, start, waitFor, type RunOptions } from '../helpers/sandbox.ts';
import { install, run as netsetup, type Install } from '../helpers/netsetup.ts';

requireRoot();
const A = 4331;
const B = 4332;
forgetSandboxesOf(A);
forgetSandboxesOf(B);
const asA: RunOptions = { uid: A, gid: A };
const asB: RunOptions = { uid: B, gid: B };
const rootfs = makeRootfs();
const cmd = (args: string[], o: RunOptions) => run(args, { ...o, defaultNet: true });
let inst: Install | undefined;

test.after.always('remove the network', () => inst?.remove());

interface Listed {
  name?: string;
  pid: number;
  started: string;
  command: string[];
  address?: string;
}

async function psJson(o: RunOptions): Promise<Listed[]> {
  const r = await cmd(['ps', '--json'], o);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Listed[];
}

test.serial('ps lists a named sandbox; exec runs in its namespaces and root as root, exit status passed; gone from ps after exit', async (t) => {
  const child = start(['--rootfs', rootfs, '--name', 'box-a', '--hostname', 'inside-a', '--', '/bin/sh', '-c', 'echo marker > /tmp/m; echo ready; read x'], { ...asA, keepStdin: true });
  const done = collect(child, { keepStdin: true });
  await waitFor(child, 'ready');
  const listed = await psJson(asA);
  t.is(listed.length, 1);
  t.like(listed[0], { name: 'box-a', command: ['/bin/sh', '-c', 'echo marker > /tmp/m; echo ready; read x'] });
  t.is(fs.readlinkSync(`/proc/${listed[0]!.pid}/ns/uts`).length > 0, true);
  const table = await cmd(['ps'], asA);
  t.regex(table.stdout, new RegExp(`^NAME +PID +STARTED +ADDRESS +COMMAND\\nbox-a +${listed[0]!.pid} `));

  const e = await cmd(['exec', 'box-a', '--env', 'X=y', '--', '/bin/sh', '-c', 'hostname; id -u; cat /tmp/m; echo $X; ls /proc | grep -cE "^[0-9]+$"; exit 7'], asA);
  t.is(e.code, 7, e.stderr);
  const [hostname, uid, marker, x, procs] = e.stdout.trim().split('\n');
  t.deepEqual([hostname, uid, marker, x], ['inside-a', '0', 'marker', 'y']);
  t.true(Number(procs) <= 6, `the sandbox's pid namespace: ${procs} processes`);
  const byPid = await cmd(['exec', String(listed[0]!.pid), '--cwd', '/tmp', '--', '/bin/sh', '-c', 'pwd'], asA);
  t.is(byPid.stdout, '/tmp\n', byPid.stderr);
  // The exec'd process is in the sandbox's namespaces, seen from the host too.
  const inner = start(['exec', 'box-a', '--', '/bin/sh', '-c', 'echo in; read y'], { ...asA, keepStdin: true, defaultNet: true });
  const innerDone = collect(inner, { keepStdin: true });
  await waitFor(inner, 'in');
  const pids = fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return fs.readFileSync(`/proc/${p}/cmdline`, 'utf8') === '/bin/sh\0-c\0echo in; read y\0';
    } catch {
      return false;
    }
  });
  t.is(pids.length, 1);
  for (const ns of ['pid', 'uts', 'mnt', 'net', 'user']) t.is(fs.readlinkSync(`/proc/${pids[0]}/ns/${ns}`), fs.readlinkSync(`/proc/${listed[0]!.pid}/ns/${ns}`), ns);
  inner.stdin!.end('\n');
  await innerDone;

  child.stdin!.end('\n');
  t.is((await done).code, 0);
  t.deepEqual(await psJson(asA), []);
  const gone = await cmd(['exec', 'box-a', '--', 'true'], asA);
  t.is(gone.code, 125);
  t.is(gone.stderr, "launcher: exec box-a: no running sandbox of yours has that name or pid. 'launcher ps' lists them.\n");
});

test.serial('another user\'s sandbox: not listed, exec refused by pid and by name; a name taken is refused', async (t) => {
  const child = start(['--rootfs', rootfs, '--name', 'mine', '--', '/bin/sh', '-c', 'echo ready; read x'], { ...asA, keepStdin: true });
  const done = collect(child, { keepStdin: true });
  await waitFor(child, 'ready');
  const [own] = await psJson(asA);
  t.truthy(own);
  t.deepEqual(await psJson(asB), []);
  const byPid = await cmd(['exec', String(own!.pid), '--', '/bin/true'], asB);
  t.is(byPid.code, 125);
  t.is(byPid.stderr, `launcher: exec ${own!.pid}: process ${own!.pid} belongs to another user (uid ${A}). Only your own sandboxes can be entered.\n`);
  const byName = await cmd(['exec', 'mine', '--', '/bin/true'], asB);
  t.is(byName.code, 125);
  // nsenter itself, as the other user, is refused by the kernel too.
  const direct = execaSync('/usr/bin/nsenter', ['-t', String(own!.pid), '-U', '--preserve-credentials', '--', '/bin/true'], { uid: B, gid: B, reject: false });
  t.not(direct.exitCode, 0);
  // The control: the owner gets in.
  t.is((await cmd(['exec', 'mine', '--', '/bin/true'], asA)).code, 0);
  const taken = await run(['--rootfs', rootfs, '--name', 'mine', '--', '/bin/true'], asA);
  t.is(taken.code, 125);
  t.is(taken.stderr, `launcher: --name mine: a sandbox of yours with that name is running (pid ${own!.pid}). Choose another name, or end that one.\n`);
  t.is((await run(['--rootfs', rootfs, '--name', 'mine', '--', '/bin/true'], asB)).code, 0, 'names are per user');
  child.stdin!.end('\n');
  await done;
});

test.serial('a stale entry (its launcher killed) is not listed and does not hold the name', async (t) => {
  const dir = `/tmp/nsbox-${A}`;
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chownSync(dir, A, A);
  // pid 1 of the host: alive, but neither the user's nor started then.
  const stale = { name: 'old', pid: 1, startTime: 12345, started: '2020-01-01T00:00:00.000Z', command: ['x'], hostname: 'h', rootfs: '/', network: 'none' };
  fs.writeFileSync(path.join(dir, '1.json'), JSON.stringify(stale));
  t.deepEqual(await psJson(asA), []);
  t.is((await run(['--rootfs', rootfs, '--name', 'old', '--', '/bin/true'], asA)).code, 0);
  t.false(fs.existsSync(path.join(dir, '1.json')), 'the next writer removes it');
});

test.serial('--network NAME chooses one of netsetup\'s networks; an unknown one is netsetup\'s one-line refusal', async (t) => {
  inst = install({ octet: 96 });
  const launcher = path.join(inst.prefix, 'bin/launcher');
  t.is((await netsetup(inst, ['setup-host'])).code, 0);
  const child = start(['--rootfs', rootfs, '--network', 'test', '--name', 'net', '--', '/bin/sh', '-c', 'ip -4 -o addr show dev eth0; echo ready; read x'], { ...asA, launcher, keepStdin: true });
  const done = collect(child, { keepStdin: true });
  await waitFor(child, 'ready');
  const [entry] = await psJson(asA);
  t.regex(entry?.address ?? '', /^10\.231\.96\.\d+$/);
  child.stdin!.end('\n');
  const r = await done;
  t.regex(r.stdout, new RegExp(`inet ${entry!.address!.replaceAll('.', '\\.')}/24`));
  const bad = await run(['--rootfs', rootfs, '--network', 'nope', '--', '/bin/true'], { ...asA, launcher });
  t.is(bad.code, 125);
  t.regex(bad.stderr, /^netsetup: --network nope: no such network in the configuration\. Choose one of: test\n$/);
  const none = await run(['--rootfs', rootfs, '--net', 'none', '--network', 'test', '--', '/bin/true'], { ...asA, launcher: LAUNCHER });
  t.is(none.code, 125);
});
