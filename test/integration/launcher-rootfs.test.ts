// Hostile links in a rootfs: a rootfs may come from an untrusted tarball, so its
// links must not steer the launcher's mkdir, create or mount calls onto the host.
// The launcher runs as an unprivileged user on a rootfs that user owns (so it may
// create missing mount points), and the links aim at a directory that user may
// write on the host: only the resolution keeps the launcher out of it.
import test from 'ava';
import { execaSync } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { makeRootfs, requireRoot, run, TEST_UID, userDir } from '../helpers/sandbox.ts';

requireRoot();
const rootfs = makeRootfs();
execaSync('chown', ['-R', `${TEST_UID}:${TEST_UID}`, rootfs]);

for (const [name, link] of [
  ['.. through a missing component', (target: string) => `missing/${'../'.repeat(12)}${target.slice(1)}`],
  ['.. past the root', (target: string) => `${'../'.repeat(12)}${target.slice(1)}`],
  ['an absolute link', (target: string) => target],
] as const) {
  test(`a bind through ${name} lands inside the rootfs, never on the host`, async (t) => {
    const writable = userDir();
    const target = path.join(writable, 'target');
    const linkName = `climb-${name.replace(/\W+/g, '-')}`;
    fs.symlinkSync(link(target), path.join(rootfs, linkName));
    fs.lchownSync(path.join(rootfs, linkName), TEST_UID, TEST_UID);
    const data = userDir();
    fs.writeFileSync(path.join(data, 'marker'), 'bound\n');
    const r = await run(['--rootfs', rootfs, '--bind', `${data}:/${linkName}/x`, '--', '/bin/cat', `${target}/x/marker`]);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, 'bound\n', 'the bind is where the link leads inside the sandbox');
    t.false(fs.existsSync(target), `the launcher created ${target} on the host`);
    // The control: the mount point was made, inside the rootfs where the link leads
    // when the rootfs is /; the same check sees it there.
    t.true(fs.existsSync(path.join(rootfs, target, 'x')), 'the mount point is in the rootfs');
  });
}
