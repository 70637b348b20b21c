import test from 'ava';
import { NsboxError, sysError } from '../../../packages/shared/src/error.ts';

test('an error is one line: program, what, why, what to do', (t) => {
  const e = new NsboxError({ what: 'network "default"', why: 'uid 1000 is not allowed to use it', todo: 'Ask the administrator', exit: 3 });
  t.is(e.line('netsetup'), 'netsetup: network "default": uid 1000 is not allowed to use it. Ask the administrator');
  t.is(e.exit, 3);
  t.is(e.errnoName, undefined);
  t.is(new NsboxError({ what: 'x', why: 'y' }).line('launcher'), 'launcher: x: y.');
});

test('a failed kernel call names its errno by name, not number', (t) => {
  const e = sysError('create veth nsb1', 17, { detail: 'File exists' });
  t.is(e.message, 'create veth nsb1: File exists (EEXIST): File exists.');
  t.is(e.errno, 17);
  t.is(e.errnoName, 'EEXIST');
  t.is(e.exit, undefined);
  t.regex(sysError('mmap 4096 bytes', 12).message, /Cannot allocate memory \(ENOMEM\)/);
});
