// launcher: runs a command in new user, mount, UTS, IPC, PID, network and cgroup
// namespaces with a directory as its root. See README.md for usage and exit codes.
// This file is only the sequence; every undo is on one stack, unwound in reverse
// on any failure and when the command has exited.
import fs from 'node:fs';
import { CloneError, startStub, waitExit, type Exit, type StubChild } from '@nsbox/shared/clone';
import { NsboxError } from '@nsbox/shared/error';
import { libc } from '@nsbox/shared/libc';
import {
  CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
} from '@nsbox/shared/syscalls';
import { parseArgs } from './cli.ts';
import { etcContents } from './etc.ts';
import { openInfo, type Info } from './info.ts';
import { cancel, checkSetuidRoot, connect, findNetsetup, missingError, netsetupCandidates, openServer, release, startNetsetup, type Connection } from './netsetup.ts';
import { readCallerMaps, startMaps } from './idmap.ts';
import { sandboxEnv, type Options } from './options.ts';
import { EXIT_LAUNCHER, judgeStart } from './outcome.ts';
import { planSandbox, type SandboxPlan } from './plan.ts';
import { gatherFacts } from './rootfs.ts';
import { register, startTimeOf, type Entry } from './registry.ts';
import { forwardSignals } from './signals.ts';
import { superviseRest } from './supervise.ts';
import { explainCloneFailure, readUsernsSettings } from './userns.ts';

const NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

async function main(argv: string[]): Promise<number> {
  const uid = process.getuid!();
  // The other commands load only when used: node:child_process alone costs
  // milliseconds of every sandbox's start.
  switch (argv[0]) {
    case 'ps':
      return (await import('./manage.ts')).ps(argv.slice(1), uid);
    case 'exec':
      return (await import('./manage.ts')).exec(argv.slice(1), uid);
    case 'import':
      return (await import('./unshare.ts')).importRootfs(argv.slice(1));
    case 'unshare':
      return (await import('./unshare.ts')).unshare(argv.slice(1));
  }
  const parsed = parseArgs(argv);
  if (parsed.kind === 'info') {
    process.stdout.write(parsed.text);
    process.exit(0);
  }
  const info = parsed.options.infoFd === undefined ? undefined : openInfo(parsed.options.infoFd);
  const netsetup = chooseNetwork(parsed.options);
  const opts: Options = { ...parsed.options, net: netsetup === undefined ? 'none' : 'bridge' };
  const result = await run(opts, netsetup, info);
  info?.exited(result);
  return result.signal !== undefined ? 128 + result.signal : result.code;
}

/** Makes the sandbox, runs the command to its end and undoes everything: by the
 *  time this returns or throws, netsetup has let go of the lease. */
async function run(opts: Options, netsetup: string | undefined, info: Info | undefined): Promise<Exit> {
  using undo = new DisposableStack();
  // netsetup starts first: it boots while the sandbox is made, then waits for its
  // pid; or a netsetup of this user that still serves takes the sandbox. Until
  // connect() it is cancelled; connect() cancels it itself when it fails; once
  // connected it releases the lease.
  const holder = netsetup === undefined ? undefined : (openServer(netsetup, opts.publish, opts.network) ?? startNetsetup(netsetup, opts.publish, opts.network));
  let pending = holder;
  let net: Connection | undefined;
  undo.defer(() => {
    if (net) release(net.holder);
    else if (pending) cancel(pending);
  });

  const maps = readCallerMaps(process.getuid!(), process.getgid!());
  const facts = gatherFacts(opts, maps.kind);
  const env = sandboxEnv(opts, process.env.TERM);
  let plan: SandboxPlan | undefined;
  const child = startSandbox((ends) => (plan = planSandbox(opts, facts, ends, env)).steps);
  undo.defer(() => child.abort()); // nothing to do once released
  const signals = forwardSignals(child.pid, !opts.init);
  undo.defer(() => signals.stop());

  // The id map helpers run while the launcher goes on; netsetup is given the pid
  // only once the maps are written.
  const mapped = startMaps(child.pid, maps);
  if (holder) {
    mapped();
    pending = undefined;
    net = connect(holder, netsetup!, child.pid);
  }
  for (const [file, content] of etcContents(opts, net?.lease)) child.fill(file, Buffer.from(content));
  const entry = listed(opts, facts.root, child.pid, net?.lease.address);
  undo.defer(entry.undo);
  mapped();

  const outcome = judgeStart(plan!, child.release(), opts.command[0]!);
  if (outcome.started) {
    info?.started(child.pid, net?.lease);
    // From here on the supervisor waits, forwards, releases and reports instead
    // of this Node process (same pid); this returns only if it cannot.
    await superviseRest({ pid: child.pid, fallback: !opts.init, infoFd: info?.fd, holder: net?.holder, registry: entry.file }, signals);
  }
  const exit = await waitExit(child.pid);
  if (!outcome.started) throw outcome.error;
  const killedFor = signals.killedFor();
  return killedFor !== undefined ? { signal: killedFor } : exit;
}

/** Puts the sandbox in the caller's list (launcher ps) before its command starts;
 *  returns its file ('' if none) and the undo. A --name that is taken fails the
 *  start; without a name, a list that cannot be written only leaves this sandbox out of it. */
function listed(opts: Options, rootfs: string, pid: number, address: string | undefined): { file: string; undo: () => void } {
  const entry: Entry = {
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    pid, startTime: startTimeOf(pid) ?? 0, started: new Date().toISOString(), command: opts.command, hostname: opts.hostname,
    rootfs, network: opts.net === 'bridge' ? 'bridge' : 'none', ...(address !== undefined ? { address } : {}),
  };
  try {
    const file = register(process.getuid!(), entry);
    return { file, undo: () => fs.rmSync(file, { force: true }) };
  } catch (err) {
    if (opts.name !== undefined) throw err;
    return { file: '', undo: () => {} };
  }
}

function startSandbox(program: Parameters<typeof startStub>[1]): StubChild {
  try {
    return startStub(NAMESPACES, program);
  } catch (err) {
    if (err instanceof CloneError) throw explainCloneFailure(err.errno, readUsernsSettings(), process.getuid!() === 0);
    throw err;
  }
}

/** The netsetup to run, or undefined for --net none (also the default when none is installed). */
function chooseNetwork(opts: Options): string | undefined {
  if (opts.net === 'none') return undefined;
  const found = findNetsetup(netsetupCandidates(opts.netsetup, process.execPath, process.env.PATH));
  if (found === undefined) {
    if (opts.net === 'bridge' || opts.netsetup !== undefined || opts.publish.length > 0 || opts.network !== undefined) throw missingError(opts.netsetup);
    return undefined;
  }
  checkSetuidRoot(found);
  return found;
}

// Once the sandbox has run there is nothing left to flush (stdio writes are
// synchronous), so the launcher leaves with _exit and skips Node's teardown.
main(process.argv.slice(2)).then(
  (code) => libc()._exit(code),
  (err: unknown) => {
    const error = err instanceof NsboxError ? err : new NsboxError({ what: 'internal error', why: err instanceof Error ? err.message : String(err) });
    if (!error.reported) process.stderr.write(`${error.line('launcher')}\n`);
    process.exit(error.exit ?? EXIT_LAUNCHER);
  },
);
