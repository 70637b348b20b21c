// The supervisor the launcher and netsetup ship must be exactly what
// packages/shared/src/supervisor/supervisor.c compiles to for x86_64 and arm64
// (needs gcc and gcc-aarch64-linux-gnu, which scripts/setup.sh installs), and
// the bytes must be a static ELF executable of the right machine.
import test from 'ava';
import { execaSync } from 'execa';
import path from 'node:path';
import { REDIRECT_CODE, SUPERVISOR_ELF } from '../../../packages/shared/src/supervisor/code.ts';

test('shipped supervisor bytes match the C source for x86_64 and arm64, the signal handler its assembly', (t) => {
  const out = execaSync(path.join(import.meta.dirname, '../../../scripts/build-supervisor.sh')).stdout;
  const built = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
  t.is(SUPERVISOR_ELF.x64, built.x64);
  t.is(SUPERVISOR_ELF.arm64, built.arm64);
  t.is(REDIRECT_CODE.x64, built['redirect-x64']);
  t.is(REDIRECT_CODE.arm64, built['redirect-arm64']);
  t.true(REDIRECT_CODE.x64.length > 20 && REDIRECT_CODE.arm64.length > 20);
});

test('each is a small static ELF executable for its machine', (t) => {
  const EM = { x64: 62, arm64: 183 } as const;
  for (const arch of ['x64', 'arm64'] as const) {
    const elf = Buffer.from(SUPERVISOR_ELF[arch], 'base64');
    t.is(elf.toString('latin1', 0, 4), '\x7fELF', arch);
    t.is(elf.readUInt16LE(16), 2, `${arch}: ET_EXEC`);
    t.is(elf.readUInt16LE(18), EM[arch], `${arch}: machine`);
    const phoff = Number(elf.readBigUInt64LE(32));
    const types = Array.from({ length: elf.readUInt16LE(56) }, (_, i) => elf.readUInt32LE(phoff + i * elf.readUInt16LE(54)));
    t.false(types.includes(3), `${arch}: no interpreter (PT_INTERP)`);
    t.true(elf.length < 16384, `${arch}: ${elf.length} bytes`);
  }
});
