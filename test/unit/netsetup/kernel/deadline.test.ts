// Time limits on blocking calls (kernel/deadline.ts), on the real kernel: a
// blocking flock on a lock this process already holds through another open file
// is interrupted at the deadline; a free lock is taken at once.
import test from 'ava';
import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errno, libc } from '../../../../packages/shared/src/libc.ts';
import { EINTR } from '../../../../packages/shared/src/errno.ts';
import { LOCK_EX, LOCK_NB } from '../../../../packages/shared/src/syscalls.ts';
import { withDeadline } from '../../../../packages/netsetup/src/kernel/deadline.ts';

const LOCK_UN = 8;

test.serial('a blocking flock on a held lock returns at the deadline (EINTR), not before', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-deadline-'));
  const file = path.join(dir, 'lock');
  const holder = fs.openSync(file, 'w');
  const waiter = fs.openSync(file, 'r');
  try {
    const c = libc();
    t.is(c.flock(holder, LOCK_EX | LOCK_NB), 0);
    const errnos: number[] = [];
    const t0 = Date.now();
    const got = withDeadline(300, () => {
      if (c.flock(waiter, LOCK_EX) === 0) return 'done';
      errnos.push(errno());
      return 'again';
    });
    const ms = Date.now() - t0;
    t.false(got);
    t.true(ms >= 295 && ms < 1000, `${ms} ms`);
    t.true(errnos.length >= 1 && errnos.every((e) => e === EINTR), errnos.join(','));
    // Control: freed, the same call succeeds at once.
    c.flock(holder, LOCK_UN);
    const t1 = Date.now();
    t.true(withDeadline(300, () => (c.flock(waiter, LOCK_EX) === 0 ? 'done' : 'again')));
    t.true(Date.now() - t1 < 100);
  } finally {
    fs.closeSync(holder);
    fs.closeSync(waiter);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('the timer is cleared afterwards: a later blocking flock waits for the lock, uninterrupted', async (t) => {
  t.true(withDeadline(20, () => 'done'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nsbox-deadline-'));
  const file = path.join(dir, 'lock');
  fs.writeFileSync(file, '');
  const fd = fs.openSync(file, 'r');
  // Killed below with SIGTERM alone; reject: false as that ends it by a signal.
  const child = execa('flock', [file, 'sleep', '0.4'], { stdio: 'ignore', reject: false, forceKillAfterDelay: false });
  try {
    const c = libc();
    // Wait until the child holds it.
    for (let i = 0; i < 200 && c.flock(fd, LOCK_EX | LOCK_NB) === 0; i++) {
      c.flock(fd, LOCK_UN);
      await new Promise((r) => setTimeout(r, 5));
    }
    const t0 = Date.now();
    // A leftover timer (repeating every 50 ms) would make this fail with EINTR.
    t.is(c.flock(fd, LOCK_EX), 0, `errno ${errno()}`);
    t.true(Date.now() - t0 >= 100, `${Date.now() - t0} ms`);
  } finally {
    child.kill();
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
