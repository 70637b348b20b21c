import test from 'ava';
import { assemble, decodeFailures, link } from '../../../packages/shared/src/program.ts';

test('steps are 64-byte records after a 64-byte header; pointers are linked to the base', (t) => {
  const image = assemble([
    { what: 'a', call: 'write', args: [1, { str: 'hi' }, 2], expect: 2 },
    { what: 'b', call: 'close', args: ['saved'], soft: true, save: true },
    { what: 'c', call: 'execve', args: [{ str: '/bin/sh' }, { strings: ['sh', '-c'] }, { strings: [] }] },
  ], 9, 'x64');
  const mem = new Uint8Array(image.bytes.length);
  const base = 0x7000_0000_0000n;
  link(image, mem, base);
  const v = new DataView(mem.buffer);
  const u64 = (at: number) => v.getBigUint64(at, true);
  const cstr = (addr: bigint) => {
    const at = Number(addr - base);
    return Buffer.from(mem.subarray(at, mem.indexOf(0, at))).toString();
  };
  t.is(u64(0), base + 64n, 'steps pointer');
  t.is(u64(8), 3n);
  t.is(v.getInt32(16, true), 9, 'error fd');
  t.is(u64(64), 1n, 'write is syscall 1 on x86_64');
  t.is(u64(72), 1n);
  t.is(cstr(u64(80)), 'hi');
  t.is(v.getUint32(64 + 56, true), 4, 'expect flag');
  t.is(v.getInt32(64 + 60, true), 2);
  t.is(u64(128), 3n, 'close');
  t.is(v.getUint32(128 + 56, true), 1 | 2 | 8, 'soft, save, arg 0 = saved');
  t.is(u64(192), 59n, 'execve');
  t.is(cstr(u64(200)), '/bin/sh');
  const argv = Number(u64(208) - base);
  t.deepEqual([cstr(u64(argv)), cstr(u64(argv + 8)), u64(argv + 16)], ['sh', '-c', 0n]);
  t.is(u64(Number(u64(216) - base)), 0n, 'empty envp is just NULL');
});

test('arm64 numbers differ', (t) => {
  const image = assemble([{ what: 'x', call: 'openat', args: [] }], 3, 'arm64');
  t.is(Buffer.from(image.bytes).readBigUInt64LE(64), 56n);
});

test('failure records decode', (t) => {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(3, 0);
  b.writeInt32LE(13, 4);
  b.writeUInt32LE(7, 8);
  b.writeInt32LE(0, 12);
  t.deepEqual(decodeFailures(b), [{ step: 3, errno: 13 }, { step: 7, errno: 0 }]);
});

test('a step with too many arguments is refused', (t) => {
  t.throws(() => assemble([{ what: 'x', call: 'mount', args: [1, 2, 3, 4, 5, 6, 7] }], 3, 'x64'));
  t.throws(() => assemble([{ what: 'x', call: 'mount', args: [1, 2, 3, 'saved'] }], 3, 'x64'));
});
