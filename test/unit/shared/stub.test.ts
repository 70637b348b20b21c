// The machine code the launcher ships must be exactly what the assembly sources
// in packages/shared/src/stub/ assemble to (needs binutils and
// binutils-aarch64-linux-gnu, which .ci/run installs).
import test from 'ava';
import { execaSync } from 'execa';
import path from 'node:path';
import { STUB_CODE } from '../../../packages/shared/src/stub/code.ts';

test('shipped stub bytes match the assembly sources for x86_64 and arm64', (t) => {
  const out = execaSync(path.join(import.meta.dirname, '../../../scripts/assemble-stub.sh')).stdout;
  const assembled = Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ')));
  t.is(STUB_CODE.x64, assembled.x64);
  t.is(STUB_CODE.arm64, assembled.arm64);
  t.true(STUB_CODE.x64.length > 100 && STUB_CODE.arm64.length > 100);
});
