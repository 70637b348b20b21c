// The machine code the launcher ships must be exactly what the assembly sources
// in packages/shared/src/stub/ assemble to (needs binutils and
// binutils-aarch64-linux-gnu, which .ci/run installs).
import test from 'ava';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { STUB_CODE } from '../../../packages/shared/src/stub/code.ts';

test('shipped stub bytes match the assembly sources for x86_64 and arm64', (t) => {
  const out = execFileSync(path.join(import.meta.dirname, '../../../scripts/assemble-stub.sh'), { encoding: 'utf8' });
  const assembled = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
  t.is(STUB_CODE.x64, assembled.x64);
  t.is(STUB_CODE.arm64, assembled.arm64);
  t.true(STUB_CODE.x64.length > 100 && STUB_CODE.arm64.length > 100);
});
