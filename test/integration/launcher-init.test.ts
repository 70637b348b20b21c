// --init: Debian's tini-static as pid 1 and the command as pid 2, so a command that
// signals itself ends as an ordinary process would, orphans are reaped, and the
// exit status is the command's.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import { collect, forgetSandboxesOf, LAUNCHER, makeRootfs, processesOf, requireRoot, run, sandboxPid, sleep, start, waitFor, type RunOptions } from '../helpers/sandbox.ts';

requireRoot();
const UID = 4324;
forgetSandboxesOf(UID);
const as: RunOptions = { uid: UID, gid: UID };
const rootfs = makeRootfs();
const sh = (script: string, ...extra: string[]): string[] => ['--rootfs', rootfs, ...extra, '--', '/bin/sh', '-c', script];

for (const [sig, n] of [['TERM', 15], ['USR1', 10], ['HUP', 1]] as const) {
  test(`--init: a command that sends itself SIG${sig} without a handler gives 128+${n}; without --init pid 1 survives it (the control)`, async (t) => {
    const r = await run(sh(`echo pid=$$; kill -${sig} $$; echo survived`, '--init'), as);
    t.is(r.code, 128 + n, r.stderr);
    t.is(r.stdout, 'pid=2\n');
    const control = await run(sh(`echo pid=$$; kill -${sig} $$; echo survived`), as);
    t.is(control.code, 0);
    t.is(control.stdout, 'pid=1\nsurvived\n');
  });
}

test('--init: the exit status is the command\'s; a missing command gives 127', async (t) => {
  t.is((await run(sh('exit 42', '--init'), as)).code, 42);
  t.is((await run(sh('true', '--init'), as)).code, 0);
  const missing = await run(['--rootfs', rootfs, '--init', '--', 'no-such-command'], as);
  t.is(missing.code, 127);
});

/** The sandbox's zombies, seen from the host: processes of UID in state Z. */
function zombies(): number {
  return processesOf(UID).filter((p) => {
    try {
      return /^\d+ \(.*\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }).length;
}

test('--init: orphans are reaped (without it, a pid 1 that never waits keeps them as zombies: the control)', async (t) => {
  // The subshell's child is orphaned, then dies while the command still runs.
  const script = '(sleep 0.2 &) ; echo ready; exec sleep 2';
  for (const [init, expected] of [[true, 0], [false, 1]] as const) {
    const child = start(sh(script, ...(init ? ['--init'] : [])), as);
    const done = collect(child);
    await waitFor(child, 'ready');
    await sleep(1000);
    t.is(zombies(), expected, init ? 'with --init' : 'without --init');
    t.is((await done).code, 0);
  }
});

test('--init: a signal sent to the launcher reaches the command through the init', async (t) => {
  const child = start(sh('trap "echo got-term; exit 3" TERM; echo ready; while true; do sleep 0.1; done', '--init'), as);
  const done = collect(child);
  await waitFor(child, 'ready');
  const pid = sandboxPid(child.pid!);
  t.regex(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^\/dev\/init\0--\0\/bin\/sh/);
  await sleep(100);
  child.kill('SIGTERM');
  const r = await done;
  t.is(r.code, 3, r.stderr);
  t.regex(r.stdout, /got-term/);
});

test('--init without tini-static installed: exit 125 and one line saying what to install', (t) => {
  // The binary is hidden under /dev/null in a mount namespace of the test's own.
  const script = `mount --bind /dev/null /usr/bin/tini-static && exec setpriv --reuid=${UID} --regid=${UID} --clear-groups "$@"`;
  const hidden = (extra: string[]) =>
    execaSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', LAUNCHER, '--net', 'none', '--rootfs', rootfs, ...extra, '--', '/bin/true'], {
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
    });
  const r = hidden(['--init']);
  t.is(r.exitCode, 125);
  t.is(r.stderr, "launcher: --init: /usr/bin/tini-static is missing. An admin installs it with 'apt-get install tini' (Debian's static tini).\n");
  t.is(hidden([]).exitCode, 0, 'the control: the same run without --init works');
});
