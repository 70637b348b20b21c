// A hostile local user against the installed setuid netsetup: every attack must
// fail with one clear line and a documented exit code, and change nothing.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostVeths, install, oneLineError, ownRules, rules, run, sandbox, type Connection, type Install, type Sandbox } from '../helpers/netsetup.ts';
import { ROOT } from '../helpers/sandbox.ts';

const U = 1000;
const OTHER = 1001;
let inst: Install;
let userDir: string;
const sandboxes: Sandbox[] = [];
const cleanups: (() => void)[] = [];
const spawnBox = async (uid: number, o?: Parameters<typeof sandbox>[1]): Promise<Sandbox> => {
  const s = await sandbox(uid, o);
  sandboxes.push(s);
  return s;
};

test.before(() => {
  inst = install({ octet: 51 });
  userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-attacker-'));
  fs.chownSync(userDir, U, U);
  fs.chmodSync(userDir, 0o755);
});
test.after.always(async () => {
  for (const s of sandboxes) await s.kill();
  for (const c of cleanups.reverse()) c();
  inst?.remove();
  if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
});

/** Host state an attack must not change. */
function snapshot(i: Install): string {
  const leases = fs.existsSync(`${i.stateDir}/leases.json`) ? fs.readFileSync(`${i.stateDir}/leases.json`, 'utf8') : '';
  // Only this install's lines: other test files change their own bridges meanwhile.
  const own = (text: string): string[] => text.split('\n').filter((l) => l.includes(i.bridge));
  return JSON.stringify([hostVeths(i.bridge), own(rules(i, 'nat')), own(rules(i, 'filter')), leases]);
}

test.serial('malformed pids are refused as usage errors', async (t) => {
  const before = snapshot(inst);
  for (const pid of ['-1', '0', '1x', '99999999999999999999', '', '1;id', ' 1', '0x10', '+5']) {
    const r = await run(inst, ['--pid', pid], { uid: U });
    t.is(r.code, 2, `--pid ${JSON.stringify(pid)}: ${r.stderr}`);
    t.true(oneLineError(r.stderr), r.stderr);
  }
  const none = await run(inst, [], { uid: U });
  t.is(none.code, 2);
  t.is(none.stderr, 'netsetup: command line: missing --pid. Run netsetup --help\n');
  const bogus = await run(inst, ['--pid', '5', '--bridge', 'eth0'], { uid: U });
  t.is(bogus.code, 2);
  t.true(oneLineError(bogus.stderr), bogus.stderr);
  t.is(snapshot(inst), before);
});

test.serial('pid 1, a nonexistent pid and another user\'s sandbox get the same error', async (t) => {
  const before = snapshot(inst);
  const theirs = await spawnBox(OTHER);
  const gone = await spawnBox(U);
  const gonePid = gone.pid;
  await gone.kill();
  const messages: string[] = [];
  for (const pid of [1, gonePid, theirs.pid]) {
    const r = await run(inst, ['--pid', String(pid)], { uid: U });
    t.is(r.code, 3, r.stderr);
    t.true(oneLineError(r.stderr));
    messages.push(r.stderr.replace(String(pid), 'PID'));
  }
  t.is(new Set(messages).size, 1, messages.join(''));
  t.is(messages[0], 'netsetup: pid PID: no such process of yours in a network namespace of your own. Give the pid of a process you started in its own user and network namespace (e.g. unshare -Urn)\n');
  t.is(snapshot(inst), before);
});

test.serial("the caller's own process in the host's network namespace is refused", async (t) => {
  const before = snapshot(inst);
  const box = await spawnBox(U, { hostNet: true });
  const r = await run(inst, ['--pid', String(box.pid)], { uid: U });
  t.is(r.code, 3);
  t.regex(r.stderr, /it is in the host's network namespace/);
  t.true(oneLineError(r.stderr));
  t.is(snapshot(inst), before);
});

test.serial('a target that exits during the call leaves nothing behind', async (t) => {
  for (let i = 0; i < 8; i++) {
    const box = await spawnBox(U, { life: `0.0${i + 1}` });
    const r = await run(inst, ['--pid', String(box.pid)], { uid: U });
    t.true(r.code === 0 || ((r.code === 3 || r.code === 6) && oneLineError(r.stderr)), `${r.code} ${r.stderr}`);
  }
  await new Promise((r) => setTimeout(r, 300));
  const l = await run(inst, ['list', '--json']);
  t.is(l.code, 0);
  t.deepEqual(JSON.parse(l.stdout), []);
  t.deepEqual(hostVeths(inst.bridge), []);
  t.false(ownRules(inst, 'filter').includes('nsbox:lease:'));
});

test.serial('a hostile environment changes nothing: NODE_OPTIONS, NODE_V8_COVERAGE, PATH, HOME, LD_PRELOAD, OPENSSL_CONF, TMPDIR', async (t) => {
  const marker = path.join(userDir, 'pwned');
  fs.writeFileSync(path.join(userDir, 'evil.cjs'), `require('fs').writeFileSync(${JSON.stringify(marker)}, 'node-options')`);
  fs.mkdirSync(path.join(userDir, 'bin'));
  for (const name of ['iptables', 'iptables-restore', 'iptables-nft-restore', 'xtables-nft-multi', 'ip']) {
    fs.writeFileSync(path.join(userDir, 'bin', name), `#!/bin/sh\necho ${name} >> ${marker}\n`, { mode: 0o755 });
  }
  fs.writeFileSync(path.join(userDir, 'evil.cnf'), 'openssl_conf = x\n[x]\n.include /etc/shadow\n');
  // A real preload library: its constructor appends to the marker in any process that loads it.
  const evilC = `#include <fcntl.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) {\n  int fd = open(${JSON.stringify(marker)}, O_WRONLY | O_CREAT | O_APPEND, 0644);\n  if (fd >= 0) { write(fd, "ld-preload\\n", 11); close(fd); }\n}\n`;
  fs.writeFileSync(path.join(userDir, 'evil.c'), evilC);
  execaSync('cc', ['-shared', '-fPIC', '-o', path.join(userDir, 'evil.so'), path.join(userDir, 'evil.c')]);
  fs.mkdirSync(path.join(userDir, 'tmp'));
  // Coverage directories the user wants root to create: a fresh path under a
  // root-only directory, and a symlink to a root-only directory.
  const victim = fs.mkdtempSync('/run/nsbox-victim-');
  fs.chmodSync(victim, 0o700);
  cleanups.push(() => fs.rmSync(victim, { recursive: true, force: true }));
  fs.symlinkSync(victim, path.join(userDir, 'cov-link'));
  for (const f of fs.readdirSync(userDir)) fs.lchownSync(path.join(userDir, f), U, U);
  // Control: the library works, in a program the user runs without privileges.
  const control = execaSync('/bin/true', [], { uid: U, gid: U, env: { LD_PRELOAD: `${userDir}/evil.so` }, extendEnv: false, reject: false });
  t.is(control.exitCode, 0);
  t.is(fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '', 'ld-preload\n', 'the preload library leaves its marker');
  fs.rmSync(marker);

  const hostile = (cov: string): Record<string, string> => ({
    PATH: `${userDir}/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    HOME: userDir,
    NODE_OPTIONS: `--require ${userDir}/evil.cjs`,
    NODE_V8_COVERAGE: cov,
    NODE_DEBUG: 'child_process,fs,net',
    NODE_EXTRA_CA_CERTS: '/etc/shadow',
    LD_PRELOAD: `${userDir}/evil.so`,
    LD_LIBRARY_PATH: userDir,
    OPENSSL_CONF: `${userDir}/evil.cnf`,
    TMPDIR: `${userDir}/tmp`,
    UV_THREADPOOL_SIZE: '1',
  });
  for (const cov of [path.join(victim, 'created/by/root'), path.join(userDir, 'cov-link')]) {
    const box = await spawnBox(U);
    // With a published port, so that iptables-restore runs.
    const r = await run(inst, ['--pid', String(box.pid), '--json', '--publish', cov.endsWith('root') ? '51080:80' : '51081:80'], { uid: U, env: hostile(cov) });
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, '', 'no debug output');
    const c = JSON.parse(r.stdout) as Connection;
    t.true(ownRules(inst, 'filter').includes(`nsbox:lease:${c.lease}`), 'the real iptables ran');
    t.deepEqual(fs.readdirSync(victim), [], 'no coverage written as root');
    t.false(fs.existsSync(marker), fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '');
    t.deepEqual(fs.readdirSync(path.join(userDir, 'tmp')), []);
    t.is((await run(inst, ['release', c.lease], { uid: U, env: hostile(cov) })).code, 0);
  }
  // Nothing in the user's directory is owned by root.
  for (const f of fs.readdirSync(userDir)) t.is(fs.lstatSync(path.join(userDir, f)).uid, U, f);
});

test.serial("releasing another user's lease is refused and changes nothing", async (t) => {
  const box = await spawnBox(U);
  const c = JSON.parse((await run(inst, ['--pid', String(box.pid), '--json'], { uid: U })).stdout) as Connection;
  const before = snapshot(inst);
  const r = await run(inst, ['release', c.lease], { uid: OTHER });
  t.is(r.code, 3);
  t.is(r.stderr, `netsetup: lease ${c.lease}: no such lease of yours. See your leases with netsetup list\n`);
  const byPid = await run(inst, ['release', '--pid', String(box.pid)], { uid: OTHER });
  t.is(byPid.code, 3);
  const missing = await run(inst, ['release', '0123abcd'], { uid: OTHER });
  t.is(missing.stderr.replace('0123abcd', c.lease), r.stderr, 'same error for a lease that does not exist');
  const malformed = await run(inst, ['release', '../../etc'], { uid: OTHER });
  t.is(malformed.code, 2);
  t.is(snapshot(inst), before);
  t.is((await run(inst, ['release', c.lease], { uid: U })).code, 0);
});

test.serial('users cannot name a configuration or run admin commands', async (t) => {
  const evil = path.join(userDir, 'evil.conf');
  fs.writeFileSync(evil, JSON.stringify({ networks: [{ bridge: 'eth0', subnet: '192.0.2.0/24' }] }));
  const box = await spawnBox(U);
  const before = snapshot(inst);
  for (const args of [['--pid', String(box.pid), '--config', evil], ['setup-host'], ['teardown'], ['list', '--config', evil]]) {
    const r = await run(inst, args, { uid: U });
    t.is(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
    t.true(oneLineError(r.stderr));
  }
  t.is(snapshot(inst), before);
});

test.serial('quota per user and per group: the exact error at the limit', async (t) => {
  const q = install({ octet: 52, quota: { users: { '1003': 2 }, groups: { '1004': 1 } } });
  cleanups.push(() => q.remove());
  const boxes = await Promise.all([spawnBox(1003), spawnBox(1003), spawnBox(1003)]);
  t.is((await run(q, ['--pid', String(boxes[0]!.pid)], { uid: 1003 })).code, 0);
  t.is((await run(q, ['--pid', String(boxes[1]!.pid)], { uid: 1003 })).code, 0);
  const before = snapshot(q);
  const third = await run(q, ['--pid', String(boxes[2]!.pid)], { uid: 1003 });
  t.is(third.code, 4);
  t.is(third.stderr, 'netsetup: network "test": uid 1003 already holds 2 of 2 allowed leases. Release one (netsetup list; netsetup release ID) or ask the administrator for a higher quota\n');
  t.is(snapshot(q), before);

  const g1 = await spawnBox(1006);
  const g2 = await spawnBox(1007);
  t.is((await run(q, ['--pid', String(g1.pid)], { uid: 1006, gid: 1004 })).code, 0);
  const g = await run(q, ['--pid', String(g2.pid)], { uid: 1007, gid: 1004 });
  t.is(g.code, 4);
  t.is(g.stderr, 'netsetup: network "test": group 1004 already holds 1 of 1 allowed leases. Release one or ask the administrator for a higher quota\n');
  const stranger = await spawnBox(1008);
  const s = await run(q, ['--pid', String(stranger.pid)], { uid: 1008 });
  t.is(s.code, 3);
  t.regex(s.stderr, /uid 1008 is not allowed to use it/);
});

test.serial('a planted symlink or user-owned directory where the state goes is refused', async (t) => {
  const stateDir = path.join(os.tmpdir(), `nsbox-attack-state-${process.pid}`);
  const victim = fs.mkdtempSync('/run/nsbox-victim-');
  cleanups.push(() => {
    fs.rmSync(stateDir, { recursive: true, force: true });
    fs.rmSync(victim, { recursive: true, force: true });
  });
  const s = install({ octet: 53, stateDir });
  cleanups.push(() => s.remove());
  const box = await spawnBox(U);

  fs.symlinkSync(victim, stateDir);
  fs.lchownSync(stateDir, U, U);
  const r1 = await run(s, ['--pid', String(box.pid)], { uid: U });
  t.is(r1.code, 5, r1.stderr);
  t.regex(r1.stderr, /state directory .*: refusing to use it: it is a symbolic link/);
  t.deepEqual(fs.readdirSync(victim), []);

  fs.rmSync(stateDir);
  fs.mkdirSync(stateDir, { mode: 0o700 });
  fs.chownSync(stateDir, U, U);
  fs.symlinkSync('/etc/passwd', path.join(stateDir, 'leases.json.new'));
  const r2 = await run(s, ['--pid', String(box.pid)], { uid: U });
  t.is(r2.code, 5, r2.stderr);
  t.regex(r2.stderr, /refusing to use it: it is owned by uid 1000, not root/);
  t.true(oneLineError(r2.stderr));
  t.deepEqual(hostVeths(s.bridge), []);
});

test.serial('admin: an install whose configuration directory is not root-owned, or whose config is writable, is refused', async (t) => {
  const etc = path.join(inst.prefix, 'etc/nsbox');
  fs.chownSync(etc, U, U);
  try {
    for (const uid of [U, 0]) {
      const r = await run(inst, ['check'], { uid });
      t.is(r.code, 5);
      t.is(r.stderr, `netsetup: configuration ${inst.configFile}: refusing to trust it: directory ${etc} is owned by uid 1000, not root. Every directory on the path and the file itself must be owned by root and not writable by group or others (chown root:root; chmod go-w)\n`);
    }
    // install.sh itself refuses (its last step is netsetup check).
    const again = execaSync(path.join(ROOT, 'scripts/install.sh'), [inst.prefix], { reject: false });
    t.not(again.exitCode, 0);
    t.regex(again.stderr, new RegExp(`directory ${etc} is owned by uid 1000, not root`));
  } finally {
    fs.chownSync(etc, 0, 0);
  }
  fs.chmodSync(inst.configFile, 0o664);
  try {
    const r = await run(inst, ['check'], { uid: U });
    t.is(r.code, 5);
    t.regex(r.stderr, /refusing to trust it: it is writable by its group/);
  } finally {
    fs.chmodSync(inst.configFile, 0o644);
  }
  t.is((await run(inst, ['check'], { uid: U })).code, 0);
});

test.serial('admin: a file-capability install or a writable binary is refused', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-caps-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.chmodSync(dir, 0o755);
  const capBin = path.join(dir, 'netsetup');
  fs.copyFileSync(inst.bin, capBin);
  fs.chmodSync(capBin, 0o755);
  execaSync('setcap', ['cap_net_admin,cap_sys_admin+ep', capBin]);
  const box = await spawnBox(U);
  const r = await run(capBin, ['--pid', String(box.pid)], { uid: U });
  t.is(r.code, 5, r.stderr);
  t.regex(r.stderr, /file capabilities instead of setuid root/);

  fs.rmSync(capBin);
  fs.copyFileSync(inst.bin, capBin);
  fs.chownSync(capBin, 0, U);
  fs.chmodSync(capBin, 0o4775);
  const w = await run(capBin, ['--pid', String(box.pid)], { uid: U });
  t.is(w.code, 5, w.stderr);
  t.regex(w.stderr, /writable by group or others/);
  t.deepEqual(hostVeths(inst.bridge), []);
});
