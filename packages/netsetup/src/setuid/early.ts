// The first code of netsetup that runs (main.ts imports it before anything else,
// so esbuild puts it first in the bundle). Started setuid, the caller's
// environment still drives Node (docs/platform.md §4): NODE_V8_COVERAGE makes
// Node, as root, create a directory and write a file wherever it names when the
// process exits, by any path but _exit (process.exit, an uncaught exception, and
// process.execve too). So before any FFI and before any step that can fail,
// coverage is stopped: then nothing is written at exit, whichever way the process
// exits. (Node then prints one line, "Failed to get 'result' from coverage
// profile response", if it leaves by process.exit; only a refusal before the FFI
// module loads does: secure.ts re-executes through execve(2) otherwise.) The
// re-execution with a clean environment (secure.ts) needs the FFI module, and
// so the caller's limits checked first (limits.ts).
import { NETSETUP_PATH } from '@nsbox/shared/protocol';

/** The whole environment of netsetup after sanitising, and of every child. */
export const FIXED_ENV: Record<string, string> = { PATH: NETSETUP_PATH, LC_ALL: 'C' };

/** Variables that nothing in Node, glibc or OpenSSL reads at startup. A setuid
 *  start with anything else re-executes itself with FIXED_ENV. */
export const INERT = new Set(['PATH', 'HOME', 'TERM', 'USER', 'LOGNAME', 'SHELL', 'PWD', 'OLDPWD', 'SHLVL', '_', 'LC_ALL', 'MAIL', 'HOSTNAME', 'COLORTERM', 'SUDO_USER', 'SUDO_UID', 'SUDO_GID', 'SUDO_COMMAND']);

/** Started setuid or setgid: real and effective ids differ (no FFI needed to tell). */
export const SETUID = process.getuid!() !== process.geteuid!() || process.getgid!() !== process.getegid!();

/** The kernel's AT_SECURE (setuid, setgid or file capabilities), from
 *  /proc/self/auxv: pairs of 64-bit words, type then value (x86_64, arm64). */
function atSecure(): boolean {
  const auxv = process.getBuiltinModule('node:fs').readFileSync('/proc/self/auxv');
  for (let at = 0; at + 16 <= auxv.length; at += 16) {
    if (auxv.readBigUInt64LE(at) === AT_SECURE) return auxv.readBigUInt64LE(at + 8) !== 0n;
  }
  return true; // unreadable: assume the worst
}
const AT_SECURE = 23n;

if (process.env.NODE_V8_COVERAGE !== undefined && (SETUID || atSecure())) process.getBuiltinModule('node:v8').stopCoverage();
