// launcher: runs a command in new user, mount, UTS, IPC, PID, network and cgroup
// namespaces with a directory as its root. See README.md for usage and exit codes.
import { CloneError, startStub, waitExit } from '@nsbox/shared/clone';
import { UserError } from '@nsbox/shared/errors';
import { libc } from '@nsbox/shared/libc';
import {
  CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
} from '@nsbox/shared/syscalls';
import { parseArgs, UsageError } from './cli.ts';
import { callerMaps, writeMaps } from './idmap.ts';
import { sandboxEnv } from './options.ts';
import { EXIT_LAUNCHER, judgeStart } from './outcome.ts';
import { planSandbox, type SandboxPlan } from './plan.ts';
import { gatherFacts } from './rootfs.ts';
import { forwardSignals } from './signals.ts';
import { explainCloneFailure, readUsernsSettings } from './userns.ts';
import { VERSION } from './version.ts';

const NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs(argv, VERSION);
  if (parsed.kind === 'info') {
    process.stdout.write(parsed.text);
    process.exit(0);
  }
  const opts = parsed.options;
  const facts = gatherFacts(opts);
  const env = sandboxEnv(opts, process.env.TERM);

  let plan: SandboxPlan | undefined;
  let child;
  try {
    child = startStub(NAMESPACES, (ends) => (plan = planSandbox(opts, facts, ends, env)).steps);
  } catch (err) {
    if (err instanceof CloneError) throw new UserError(explainCloneFailure(err.errno, readUsernsSettings(), process.getuid!() === 0), EXIT_LAUNCHER);
    throw err;
  }
  const signals = forwardSignals(child.pid);
  try {
    writeMaps(child.pid, callerMaps(process.getuid!(), process.getgid!()));
  } catch (err) {
    child.abort();
    throw new UserError(`launcher: cannot map the caller to root in the sandbox: ${(err as Error).message}`, EXIT_LAUNCHER);
  }
  const failures = child.release();
  const outcome = judgeStart(plan!, failures, opts.command[0]!);
  const exit = await waitExit(child.pid);
  signals.stop();
  if (!outcome.started) throw new UserError(outcome.message, outcome.exitCode);
  const killedFor = signals.killedFor();
  if (killedFor !== undefined) return 128 + killedFor;
  return exit.signal !== undefined ? 128 + exit.signal : exit.code;
}

// Once the sandbox has run there is nothing left to flush (stdio writes are
// synchronous), so the launcher leaves with _exit and skips Node's teardown.
main(process.argv.slice(2)).then(
  (code) => libc()._exit(code),
  (err: unknown) => {
    if (err instanceof UserError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(err.exitCode);
    }
    if (err instanceof UsageError) {
      process.stderr.write(`launcher: ${err.message}\n`);
      process.exit(EXIT_LAUNCHER);
    }
    process.stderr.write(`launcher: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT_LAUNCHER);
  },
);
