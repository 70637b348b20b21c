// launcher: runs a command in new user, mount, UTS, IPC, PID, network and cgroup
// namespaces with a directory as its root. See README.md for usage and exit codes.
import fs from 'node:fs';
import { CloneError, startStub, waitExit, type Exit } from '@nsbox/shared/clone';
import { UserError } from '@nsbox/shared/errors';
import { libc } from '@nsbox/shared/libc';
import {
  CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUSER, CLONE_NEWUTS,
} from '@nsbox/shared/syscalls';
import { parseArgs, UsageError } from './cli.ts';
import { hostnameFile, hostsFile, resolvConf, type EtcFile } from './etc.ts';
import { openInfo } from './info.ts';
import { cancel, checkSetuidRoot, connect, findNetsetup, missingMessage, netsetupCandidates, release, startNetsetup, type Connection, type Lease } from './netsetup.ts';
import { callerMaps, writeMaps } from './idmap.ts';
import { sandboxEnv, type Options } from './options.ts';
import { EXIT_LAUNCHER, judgeStart } from './outcome.ts';
import { etcFilesFor, planSandbox, type SandboxPlan } from './plan.ts';
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
  const info = parsed.options.infoFd === undefined ? undefined : openInfo(parsed.options.infoFd);
  const netsetup = chooseNetwork(parsed.options);
  const opts: Options = { ...parsed.options, net: netsetup === undefined ? 'none' : 'bridge' };
  // netsetup starts first: it boots while the sandbox is made, then waits for its pid.
  const holder = netsetup === undefined ? undefined : startNetsetup(netsetup, opts.publish);
  let child;
  let plan: SandboxPlan | undefined;
  try {
    const facts = gatherFacts(opts);
    const env = sandboxEnv(opts, process.env.TERM);
    try {
      child = startStub(NAMESPACES, (ends) => (plan = planSandbox(opts, facts, ends, env)).steps);
    } catch (err) {
      if (err instanceof CloneError) throw new UserError(explainCloneFailure(err.errno, readUsernsSettings(), process.getuid!() === 0), EXIT_LAUNCHER);
      throw err;
    }
  } catch (err) {
    if (holder) cancel(holder);
    throw err;
  }
  const signals = forwardSignals(child.pid);
  let net: Connection | undefined;
  try {
    writeMaps(child.pid, callerMaps(process.getuid!(), process.getgid!()));
  } catch (err) {
    child.abort();
    if (holder) cancel(holder);
    throw new UserError(`launcher: cannot map the caller to root in the sandbox: ${(err as Error).message}`, EXIT_LAUNCHER);
  }
  try {
    if (holder) net = connect(holder, netsetup!, child.pid);
    for (const [file, content] of etcContents(opts, net?.lease)) child.fill(file, Buffer.from(content));
  } catch (err) {
    child.abort();
    if (net) release(net.holder);
    throw err;
  }
  const failures = child.release();
  const outcome = judgeStart(plan!, failures, opts.command[0]!);
  if (outcome.started && info) info.started(child.pid, net?.lease);
  const exit = await waitExit(child.pid);
  signals.stop();
  if (net) release(net.holder);
  if (!outcome.started) throw new UserError(outcome.message, outcome.exitCode);
  const killedFor = signals.killedFor();
  const result: Exit = killedFor !== undefined ? { signal: killedFor } : exit;
  info?.exited(result);
  return result.signal !== undefined ? 128 + result.signal : result.code;
}

/** The netsetup to run, or undefined for --net none (also the default when none is installed). */
function chooseNetwork(opts: Options): string | undefined {
  if (opts.net === 'none') return undefined;
  const found = findNetsetup(netsetupCandidates(opts.netsetup, process.execPath, process.env.PATH));
  if (found === undefined) {
    if (opts.net === 'bridge' || opts.netsetup !== undefined || opts.publish.length > 0) throw new UserError(missingMessage(opts.netsetup), EXIT_LAUNCHER);
    return undefined;
  }
  checkSetuidRoot(found);
  return found;
}

function etcContents(opts: Options, lease: Lease | undefined): [EtcFile, string][] {
  const out: [EtcFile, string][] = [];
  for (const file of etcFilesFor(opts)) {
    if (file === 'hostname') out.push([file, hostnameFile(opts.hostname)]);
    else if (file === 'hosts') out.push([file, hostsFile(opts.hostname, lease?.address)]);
    else out.push([file, resolvConf(lease?.dns ?? [], readIfAny('/etc/resolv.conf'), UPSTREAM_RESOLVERS.map(readIfAny))]);
  }
  return out;
}

/** Where local resolvers keep the upstream servers they forward to. */
const UPSTREAM_RESOLVERS = ['/run/systemd/resolve/resolv.conf', '/run/NetworkManager/no-stub-resolv.conf'];

function readIfAny(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

// Once the sandbox has run there is nothing left to flush (stdio writes are
// synchronous), so the launcher leaves with _exit and skips Node's teardown.
main(process.argv.slice(2)).then(
  (code) => libc()._exit(code),
  (err: unknown) => {
    if (err instanceof UserError) {
      if (err.message !== '') process.stderr.write(`${err.message}\n`);
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
