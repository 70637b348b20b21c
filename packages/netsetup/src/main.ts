// Entry point of netsetup (bundled to CJS for the single executable: no
// top-level await, no import.meta). Hardening comes before anything else.
import { EXIT, NetsetupError } from './errors.ts';
import { harden } from './secure.ts';
import { run } from './cli.ts';

async function main(): Promise<number> {
  const priv = harden();
  // Stopped from the terminal while holding the state lock, netsetup would block
  // every other caller; the user cannot send SIGSTOP to it (it runs as root).
  for (const sig of ['SIGTSTP', 'SIGTTIN', 'SIGTTOU'] as const) process.on(sig, () => {});
  return run(process.argv.slice(2), priv);
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof NetsetupError) {
      process.stderr.write(`netsetup: ${err.message}\n`);
      process.exitCode = err.code;
    } else {
      const e = err as Error;
      process.stderr.write(`netsetup: internal error: ${e?.message ?? String(err)}. Please report this\n`);
      process.exitCode = EXIT.INTERNAL;
    }
  },
);
