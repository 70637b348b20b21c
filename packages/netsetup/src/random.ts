// Random bytes from the kernel (getrandom), for lease ids and MAC addresses:
// node:crypto would cost ~3 ms of start-up to load.
import { libc, errno } from '@nsbox/shared/libc';
import { SysError } from './errors.ts';

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  const got = Number(libc().getrandom(b, n, 0));
  if (got !== n) throw new SysError('getrandom', got < 0 ? errno() : 5);
  return b;
}
