// Loads koffi. In a single executable the native module travels as the SEA asset
// `koffi.node`: it is written into an unnamed O_TMPFILE file and dlopen'd through
// /proc/self/fd, so no path exists that another user could replace (this also runs
// setuid root). Outside a SEA (tests, development) the npm package is used.
import fs from 'node:fs';
import sea from 'node:sea';
import type * as Koffi from 'koffi';

export type KoffiApi = typeof Koffi;

const O_TMPFILE: Record<string, number> = { x64: 0o20200000, arm64: 0o20040000 };
const TMP_DIRS = ['/run', '/dev/shm', '/tmp'];

let cached: KoffiApi | undefined;

export function koffi(): KoffiApi {
  // node:module only outside a SEA: loading it costs ~0.1 ms of every start.
  cached ??= sea.isSea() ? loadFromAsset() : (process.getBuiltinModule('node:module').createRequire(import.meta.url)('koffi') as KoffiApi);
  return cached;
}

function loadFromAsset(): KoffiApi {
  const bytes = new Uint8Array(sea.getRawAsset('koffi.node') as ArrayBuffer);
  const tmpfile = O_TMPFILE[process.arch];
  if (tmpfile === undefined) throw new Error(`unsupported architecture ${process.arch}`);
  const failures: string[] = [];
  for (const dir of TMP_DIRS) {
    let fd = -1;
    try {
      fd = fs.openSync(dir, tmpfile | fs.constants.O_RDWR | fs.constants.O_EXCL, 0o500);
      // A short write (a file-size limit) would leave a truncated file that dlopen maps: SIGBUS.
      if (fs.writeSync(fd, bytes) !== bytes.length) throw new Error('short write (a file-size limit?)');
      const mod = { exports: {} as KoffiApi };
      process.dlopen(mod, `/proc/self/fd/${fd}`);
      return mod.exports;
    } catch (err) {
      failures.push(`${dir}: ${(err as Error).message}`);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
    }
  }
  throw new Error(`cannot load the FFI module (${failures.join('; ')})`);
}
