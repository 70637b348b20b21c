// Random bytes from the kernel (getrandom), for lease ids and MAC addresses:
// node:crypto would cost ~3 ms of start-up to load.
import { EIO } from '@nsbox/shared/errno';
import { libc, errno } from '@nsbox/shared/libc';
import { sysError } from '@nsbox/shared/error';

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  const got = Number(libc().getrandom(b, n, 0));
  if (got !== n) throw sysError('getrandom', got < 0 ? errno() : EIO);
  return b;
}
