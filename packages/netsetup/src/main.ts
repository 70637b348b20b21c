// Entry point of netsetup (bundled to CJS for the single executable: no
// top-level await, no import.meta). Hardening comes before anything else:
// setuid/early.ts, imported first, runs before any other module's code.
import './setuid/early.ts';
import { sleepSync } from '@nsbox/shared/sleep';
import fs from 'node:fs';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from './exit.ts';
import { harden } from './setuid/secure.ts';
import { parseArgs, run } from './cli.ts';
import { libc, libcLoaded } from '@nsbox/shared/libc';
import { mark, report } from './timing.ts';

/** Writes all of `text` to fd, waiting out EAGAIN (a non-blocking pipe). */
function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text);
  for (let at = 0; at < bytes.length; ) {
    try {
      at += fs.writeSync(fd, bytes, at);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      sleepSync(1);
    }
  }
}

function main(): number {
  mark('bundle loaded');
  try {
    const priv = harden();
    mark('hardened');
    // Stopped from the terminal while holding the state lock, netsetup would block
    // every other caller; the user cannot send SIGSTOP to it (it runs as root).
    for (const sig of ['SIGTSTP', 'SIGTTIN', 'SIGTTOU'] as const) process.on(sig, () => {});
    const outcome = run(parseArgs(process.argv.slice(2)), priv);
    writeAll(1, outcome.text);
    mark('output written');
    outcome.afterwards?.();
    return EXIT.OK;
  } catch (err) {
    const known = err instanceof NsboxError;
    const line = known ? err.line('netsetup') : `netsetup: internal error: ${(err as Error)?.message ?? String(err)}. Please report this`;
    try {
      // Reported: said on stdout for a program (--json), not for people.
      if (!(known && err.reported)) writeAll(2, `${line}\n`);
    } catch {
      // stderr is gone: the exit code still tells.
    }
    return known ? (err.exit ?? EXIT.SYSTEM) : EXIT.INTERNAL;
  }
}

const code = main();
report();
// Everything is written (synchronously); Node's own teardown would add ~1 ms.
// Before the FFI module is loaded (a refusal of the caller's limits), Node's
// exit is the only way out, and a safe one: early.ts has stopped coverage or
// re-executed without it, so nothing is written at exit.
if (libcLoaded()) libc()._exit(code);
process.exit(code);
