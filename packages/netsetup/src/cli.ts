// Command line → action → output. The command line names only a pid, a lease
// and, at most, a network the configuration offers; everything else comes from
// the root-owned configuration. Parsing is pure (parseArgs); run() does the rest.
// Hand-written rather than commander: loading commander costs ~2 ms of each call.
import { sleepSync } from '@nsbox/shared/sleep';
import fs from 'node:fs';
import { errno, libc } from '@nsbox/shared/libc';
import { EAGAIN, EINTR } from '@nsbox/shared/errno';
import { currentArch, SYSCALLS } from '@nsbox/shared/syscalls';
import { formatAnswer, noWaitSlotLine, releasingLine } from '@nsbox/shared/protocol';
import { formatPublish, parsePublish, PublishSyntaxError, PUBLISH_SYNTAX, type PublishSpec } from '@nsbox/shared/publish';
import { filterProblems } from './check.ts';
import { connect } from './connect.ts';
import { list } from './list.ts';
import { release, releaseHeld } from './release.ts';
import { setupHost } from './setup-host.ts';
import { teardown } from './teardown.ts';
import { DEFAULT_CONFIG_TEXT, findNetwork, type Config, type Network } from './policy/config.ts';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from './exit.ts';
import { LEASE_ID, type Caller, type Lease } from './policy/leases.ts';
import { loadConfig } from './setuid/locate.ts';
import { checkInstall, type Privilege } from './setuid/secure.ts';
import { parsePid } from './kernel/target.ts';
import { withDeadline } from './kernel/deadline.ts';
import { ensureDir, takeWaitSlot } from './kernel/state.ts';
import { mark } from './timing.ts';
import { superviseHold } from './hold.ts';
import { serve } from './serve.ts';

export const HELP = `Usage: netsetup --pid PID [--network NAME] [--json] [--hold] [--publish SPEC]...
       netsetup COMMAND [options]

Give a process in its own network namespace one veth on an admin-approved bridge.

Options:
  --pid PID             the process whose network namespace to connect; '-':
                        read PID from the first line of stdin (no line: do
                        nothing; none within 5 s: exit 2), so that netsetup
                        can start before the process
  --network NAME        a network from the configuration (default: the first)
  --json                print the result as JSON
  --hold                stay, and release the lease when stdin closes (how the
                        launcher runs netsetup); with --json, also take this
                        user's next launchers meanwhile and for serveSeconds
                        (configuration) after the last
  --publish SPEC        forward a host port to the sandbox (repeatable, at
                        most 64): SPEC is ${PUBLISH_SYNTAX};
                        HOSTPORT on every address of the host, or on HOSTIP,
                        goes to PORT inside
  -h, --help            show this help

Commands:
  release LEASE-ID | --pid PID [--json]   free a lease: its veth, address and rules
  list [--json]                           show the caller's leases (root: all)
  check [--json]                          check the installation and configuration;
                                          print the binary and the configuration
  default-config                          print the built-in default configuration
  setup-host [--network NAME]             root: create the bridges, forwarding and
                                          NAT rules ahead of time
  teardown [--network NAME]               root: delete all veths, bridges, rules
                                          and state
  serve                                   root: take every user's launchers until
                                          this binary is replaced (a service)

Exit codes: 0 ok, 2 usage, 3 not permitted (pid not yours, lease not yours,
port or address refused), 4 quota or subnet exhausted, 5 installation or
configuration refused, 6 kernel or iptables failure (or state filesystem
full), 7 state lock busy, 8 host port already published or in use, 9 a
resource limit of yours (ulimit -n, -f, -v) too low, 1 internal error.
`;

/** What the command line asks for. `config` is root's hidden --config FILE. */
export type Invocation =
  | { command: 'connect'; pid: number | 'stdin'; network?: string; json: boolean; hold: boolean; publish: PublishSpec[]; config?: string }
  | { command: 'release'; by: { id: string } | { pid: number }; json: boolean; config?: string }
  | { command: 'release-held'; id: string; json: boolean; config?: string }
  | { command: 'list' | 'check'; json: boolean; config?: string }
  | { command: 'setup-host' | 'teardown'; network?: string; config?: string }
  | { command: 'serve'; config?: string }
  | { command: 'default-config' }
  | { command: 'help' };

const usage = (why: string): NsboxError => new NsboxError({ exit: EXIT.USAGE, what: 'command line', why, todo: 'Run netsetup --help' });

/** release-held is hidden (not in HELP): the holder's supervisor runs it as root
 *  at the end of a hold (docs/security.md §5). */
const COMMANDS = ['release', 'release-held', 'list', 'check', 'default-config', 'setup-host', 'teardown', 'serve', 'help'];
/** Options each command takes: true = takes a value, false = a flag. */
const OPTIONS: Record<string, Record<string, boolean>> = {
  connect: { '--pid': true, '--network': true, '--json': false, '--hold': false, '--publish': true, '--config': true },
  release: { '--pid': true, '--json': false, '--config': true },
  'release-held': { '--json': false, '--config': true },
  list: { '--json': false, '--config': true },
  check: { '--json': false, '--config': true },
  'default-config': {},
  'setup-host': { '--network': true, '--config': true },
  teardown: { '--network': true, '--config': true },
  serve: { '--config': true },
  help: {},
};

function publishArg(text: string): PublishSpec {
  try {
    return parsePublish(text);
  } catch (err) {
    if (err instanceof PublishSyntaxError) throw new NsboxError({ exit: EXIT.USAGE, what: `--publish ${text}`, why: err.reason, todo: 'Run netsetup --help' });
    throw err;
  }
}

function pidArg(text: string): number {
  const pid = parsePid(text);
  if (pid === undefined) throw new NsboxError({ exit: EXIT.USAGE, what: `--pid ${JSON.stringify(text)}`, why: 'not a process id', todo: 'Give a decimal pid such as 12345' });
  return pid;
}

/** At most this many --publish, root included: checked while parsing, before any
 *  work, so no request can make a call (or its pairwise checks under the state
 *  lock) arbitrarily long. The network's publish.maxPerLease still applies below it. */
export const MAX_PUBLISH = 64;
/** At most this many arguments and bytes of them: the longest real command line
 *  is a few options and MAX_PUBLISH specs. */
export const MAX_ARGS = 2 * MAX_PUBLISH + 16;
export const MAX_ARG_BYTES = 8192;

/** Parses argv (without the program name). Throws a usage error (exit 2). */
export function parseArgs(argv: string[]): Invocation {
  if (argv.length > MAX_ARGS) throw usage(`${argv.length} arguments, at most ${MAX_ARGS} are accepted`);
  let bytes = 0;
  for (const a of argv) bytes += a.length + 1;
  if (bytes > MAX_ARG_BYTES) throw usage(`the arguments are ${bytes} bytes long, at most ${MAX_ARG_BYTES} are accepted`);
  const first = argv[0];
  const command = first !== undefined && COMMANDS.includes(first) ? first : 'connect';
  const allowed = OPTIONS[command]!;
  const values: Record<string, string> = {};
  const flags = new Set<string>();
  const publish: string[] = [];
  const positional: string[] = [];
  for (let i = command === 'connect' ? 0 : 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return { command: 'help' };
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') && eq > 0 ? arg.slice(0, eq) : arg;
    const takesValue = allowed[name];
    if (takesValue === undefined) throw usage(`unknown option '${name}'`);
    if (!takesValue) {
      if (name !== arg) throw usage(`option '${name}' does not take a value`);
      flags.add(name);
      continue;
    }
    let value: string;
    if (name !== arg) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length) value = argv[++i]!;
    else throw usage(`option '${name} <value>' argument missing`);
    if (name === '--publish') {
      if (publish.length === MAX_PUBLISH) throw usage(`more than ${MAX_PUBLISH} --publish options`);
      publish.push(value);
    } else values[name] = value;
  }
  const json = flags.has('--json');
  const config = values['--config'];
  const withConfig = config !== undefined ? { config } : {};
  const network = values['--network'] !== undefined ? { network: values['--network'] } : {};
  const positionals = (max: number): void => {
    if (positional.length > max) throw command === 'connect' && max === 0 ? usage(`unknown command '${positional[0]}'`) : usage('too many arguments');
  };

  switch (command) {
    case 'connect': {
      positionals(0);
      const pid = values['--pid'];
      if (pid === undefined) throw usage('missing --pid');
      return { command, pid: pid === '-' ? 'stdin' : pidArg(pid), ...network, json, hold: flags.has('--hold'), publish: publish.map(publishArg), ...withConfig };
    }
    case 'release': {
      positionals(1);
      const id = positional[0];
      const pid = values['--pid'];
      if ((id === undefined) === (pid === undefined)) throw new NsboxError({ exit: EXIT.USAGE, what: 'release', why: 'give either a lease id or --pid', todo: 'Run netsetup --help' });
      if (id !== undefined && !LEASE_ID.test(id)) throw new NsboxError({ exit: EXIT.USAGE, what: `lease ${JSON.stringify(id)}`, why: 'not a lease id (8 hex digits)', todo: 'See your leases with netsetup list' });
      return { command, by: id !== undefined ? { id } : { pid: pidArg(pid!) }, json, ...withConfig };
    }
    case 'release-held': {
      positionals(1);
      const id = positional[0];
      if (id === undefined || !LEASE_ID.test(id)) throw usage('release-held needs a lease id (8 hex digits)');
      return { command, id, json, ...withConfig };
    }
    case 'list':
    case 'check':
      positionals(0);
      return { command, json, ...withConfig };
    case 'setup-host':
    case 'teardown':
      positionals(0);
      return { command, ...network, ...withConfig };
    case 'serve':
      positionals(0);
      return { command, ...withConfig };
    case 'default-config':
      positionals(0);
      return { command };
    default:
      return { command: 'help' };
  }
}

/** What run() leaves to do: the text for stdout, and for a holder what follows it. */
export interface Outcome {
  text: string;
  afterwards?: () => void;
}

const HOLD_IGNORES: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT', 'SIGHUP'];

/** How long `--pid -` waits for its pid: the launcher writes it within
 *  milliseconds; a caller that never does must not keep a root process. */
export const PID_WAIT_MS = 5000;
/** How many `--pid -` of one user (not root) may wait for their pid at once. */
export const MAX_WAITING = 8;

/** The pid on the first line of fd, or undefined at EOF without one. Reads a
 *  byte at a time up to the newline, at most a pid's length: what follows on
 *  stdin is the holder's business (its end is the release). Gives up after
 *  PID_WAIT_MS. */
function readPid(fd: number): number | undefined {
  const line = Buffer.alloc(16);
  let n = 0;
  let eof = false;
  const done = withDeadline(PID_WAIT_MS, () => {
    for (;;) {
      let got: number;
      try {
        got = fs.readSync(fd, line, n, 1, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') waitReadable(fd);
        else if (code !== 'EINTR') throw err;
        return 'again';
      }
      if (got === 0) {
        eof = true;
        return 'done';
      }
      if (line[n] === 10) return 'done';
      if (++n === line.length) return 'done';
    }
  });
  if (!done) throw new NsboxError({ exit: EXIT.USAGE, what: '--pid -', why: `no pid arrived on stdin within ${PID_WAIT_MS / 1000} s`, todo: 'Write the pid and a newline to its stdin as soon as it starts (the launcher does)' });
  if (eof && n === 0) return undefined;
  return pidArg(line.toString('latin1', 0, n));
}

const POLLIN = 1;

/** Blocks until fd (a non-blocking stdin a caller gave) has input, its writer
 *  has gone, or a signal (withDeadline's alarm) interrupts: poll(2) rather than
 *  a sleep between reads, so the pid is read as soon as it is written. */
function waitReadable(fd: number): void {
  const pollfd = Buffer.alloc(8); // struct pollfd: int fd; short events; short revents
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(POLLIN, 4);
  libc().poll(pollfd, 1, -1);
}

/** Writes `text` to fd for at most `ms`; what cannot be written in time (a full
 *  pipe nobody reads, a closed one) is dropped. */
function writeLimited(fd: number, text: string, ms: number): void {
  const bytes = Buffer.from(text);
  let at = 0;
  const c = libc();
  withDeadline(ms, () => {
    const n = Number(c.write(fd, bytes.subarray(at), bytes.length - at));
    if (n > 0) at += n;
    else if (n < 0 && errno() === EAGAIN) sleepSync(1);
    else if (n < 0 && errno() !== EINTR) return 'done';
    return at === bytes.length ? 'done' : 'again';
  });
}

/** Blocks until fd reaches EOF (or cannot be read any more). */
function waitForEof(fd: number): void {
  const buf = Buffer.alloc(256);
  try {
    while (readWaiting(fd, buf, 0, buf.length) > 0);
  } catch {
    // Unreadable: as good as closed.
  }
}

/** How long a holder waits in Node before it hands over to the supervisor. */
export const HAND_OVER_MS = 2000;

/** Whether fd reaches EOF (or cannot be read) within `ms`; what it reads is dropped. */
function eofWithin(fd: number, ms: number): boolean {
  const buf = Buffer.alloc(256);
  let eof = false;
  withDeadline(ms, () => {
    try {
      if (fs.readSync(fd, buf, 0, buf.length, null) > 0) return 'again';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINTR') return 'again';
      if (code === 'EAGAIN') {
        sleepSync(10);
        return 'again';
      }
    }
    eof = true;
    return 'done';
  });
  return eof;
}

/** read(2) that waits out EINTR and, on a non-blocking fd, EAGAIN. */
function readWaiting(fd: number, buf: Buffer, offset: number, length: number): number {
  for (;;) {
    try {
      return fs.readSync(fd, buf, offset, length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') sleepSync(10);
      else if (code !== 'EINTR') throw err;
    }
  }
}

/** How long the holder tries to write its releasing line. */
const RELEASING_WRITE_MS = 2000;

/** `--pid -`: the pid from stdin, waiting in one of the caller's MAX_WAITING slots.
 *  With all taken (many launchers of one user starting at once) a `--json`
 *  caller is told so on stdout only (noWaitSlotLine), with nothing on stderr:
 *  the launcher then runs `--pid PID` once it has the pid, which waits for
 *  nothing, so the number of waiting root processes stays bounded. */
function waitForPid(config: Config, caller: Caller, json: boolean): number | undefined {
  if (caller.uid === 0) return readPid(0);
  ensureDir(config.stateDir);
  const slot = takeWaitSlot(config.stateDir, caller.uid, MAX_WAITING);
  if (slot === undefined) {
    if (json) writeLimited(1, noWaitSlotLine(MAX_WAITING), RELEASING_WRITE_MS);
    throw new NsboxError({ exit: EXIT.QUOTA, what: '--pid -', why: `${MAX_WAITING} netsetup processes of uid ${caller.uid} are already waiting for their pid`, todo: 'Write their pids to their stdin or end them, then try again', reported: json });
  }
  try {
    return readPid(0);
  } finally {
    fs.closeSync(slot);
  }
}

/** Lets go of the caller's stderr: whoever reads it to its end (a script capturing
 *  the launcher's output) need not wait for a release nobody can be told about. */
function detachStderr(): void {
  const nul = fs.openSync('/dev/null', 'w');
  libc().syscall(SYSCALLS.dup3[currentArch()], 'int', nul, 'int', 2, 'int', 0);
  fs.closeSync(nul);
}

/** What the holder does once its lease is marked: every other call now treats it
 *  as gone, so the launcher may go. Written after the lock is let go, for at most
 *  RELEASING_WRITE_MS: the caller's stdout may be a pipe nobody reads. */
function releasing(lease: string, json: boolean): () => void {
  return () => {
    writeLimited(1, releasingLine(lease, json), RELEASING_WRITE_MS);
    detachStderr();
  };
}

/** Does what the invocation asks; returns the text for stdout (and, holding, what comes after). */
export function run(inv: Invocation, priv: Privilege): Outcome {
  const text = (t: string): Outcome => ({ text: t });
  const caller: Caller = { uid: priv.uid, gids: priv.gids };
  const configFor = (configOpt: string | undefined): { config: Config; source: string } => {
    if (configOpt !== undefined && priv.uid !== 0) throw new NsboxError({ exit: EXIT.DENIED, what: '--config', why: 'only root may name a configuration file', todo: 'Leave it out' });
    checkInstall();
    return loadConfig(fs.realpathSync.native('/proc/self/exe'), configOpt);
  };
  const network = (config: Config, name: string | undefined): Network => {
    const net = findNetwork(config, name);
    if (!net) throw new NsboxError({ exit: EXIT.USAGE, what: `--network ${name}`, why: 'no such network in the configuration', todo: `Choose one of: ${config.networks.map((n) => n.name).join(', ')}` });
    return net;
  };
  const rootOnly = (what: string): void => {
    if (priv.uid !== 0) throw new NsboxError({ exit: EXIT.DENIED, what: what, why: 'only root may do this', todo: 'Ask the administrator' });
  };
  const publishedText = (p: PublishSpec[]): string => p.map(formatPublish).join(',');
  const leaseLine = (l: Lease): string =>
    `${l.id} ${l.network} uid=${l.uid} pid=${l.pid} ${l.address} ${l.hostVeth} ${l.created}${l.published.length > 0 ? ` published=${publishedText(l.published)}` : ''}\n`;

  switch (inv.command) {
    case 'help':
      return text(HELP);
    case 'default-config':
      return text(DEFAULT_CONFIG_TEXT);
    case 'connect': {
      // A holder shares the launcher's terminal: Ctrl-C and hang-ups are the sandbox's business.
      if (inv.hold) for (const sig of HOLD_IGNORES) process.on(sig, () => {});
      const { config, source } = configFor(inv.config);
      mark('configuration read');
      const net = network(config, inv.network);
      const pid = inv.pid === 'stdin' ? waitForPid(config, caller, inv.json) : inv.pid;
      if (pid === undefined) return text('');
      const c = connect(config, net, caller, pid, inv.publish);
      const line = formatAnswer(c, inv.json);
      if (!inv.hold) return text(line);
      return {
        text: line,
        afterwards: () => {
          // The launcher's netsetup also takes this user's next sandboxes for a
          // while (serve.ts); unless serving is off or another one serves already.
          if (inv.json && serve({ mode: 'user', caller, ownLease: c.lease, config, configFile: source, handOverMs: HAND_OVER_MS, requestMs: PID_WAIT_MS, parse: parseArgs, load: () => configFor(undefined), network })) return;
          // A sandbox that is still running after HAND_OVER_MS is left to the
          // supervisor, which waits for the end of stdin instead of this Node
          // process and then runs release-held (below); superviseHold returns only
          // if it cannot. A shorter one is released from here: a hand-over would
          // cost it a second Node start at its end to save memory for moments.
          if (!eofWithin(0, HAND_OVER_MS)) superviseHold(c.lease, source, inv.json);
          waitForEof(0);
          releaseHeld(config, caller, c.lease, releasing(c.lease, inv.json));
        },
      };
    }
    case 'release-held': {
      // Only the holder's supervisor, as root, runs this (docs/security.md §5).
      rootOnly('release-held');
      for (const sig of HOLD_IGNORES) process.on(sig, () => {});
      const { config } = configFor(inv.config);
      releaseHeld(config, caller, inv.id, releasing(inv.id, inv.json));
      return text('');
    }
    case 'release': {
      const gone = release(configFor(inv.config).config, caller, inv.by);
      return text(inv.json ? `${JSON.stringify(gone)}\n` : gone.map((l) => `released ${l.id} (${l.address}, ${l.hostVeth})\n`).join(''));
    }
    case 'list': {
      const leases = list(configFor(inv.config).config, caller);
      return text(inv.json ? `${JSON.stringify(leases)}\n` : leases.map(leaseLine).join(''));
    }
    case 'check': {
      // checkInstall (in configFor) has refused a binary with more than one link.
      const { config, source } = configFor(inv.config);
      const binary = fs.realpathSync.native('/proc/self/exe');
      const links = fs.statSync('/proc/self/exe').nlink;
      const problems = filterProblems(config);
      if (problems.length > 0) {
        throw new NsboxError({ exit: EXIT.SYSTEM, what: 'the bridge filter', why: problems.join('; '), todo: 'Repair it as root: netsetup setup-host' });
      }
      return text(
        inv.json
          ? `${JSON.stringify({ binary, links, source, config })}\n`
          : `ok: binary ${binary} (${links} link), configuration ${source}, state in ${config.stateDir}, networks ${config.networks.map((n) => `${n.name} (${n.bridge} ${n.subnet})`).join(', ')}\n`,
      );
    }
    case 'serve': {
      rootOnly('serve');
      const { config, source } = configFor(inv.config);
      const load = (): { config: Config; source: string } => configFor(inv.config);
      if (!serve({ mode: 'system', caller, config, configFile: source, handOverMs: HAND_OVER_MS, requestMs: PID_WAIT_MS, parse: parseArgs, load, network })) {
        throw new NsboxError({ exit: EXIT.CONFIG, what: 'serve', why: "its socket's name is taken: another netsetup serve of this binary runs, or another process bound the name first", todo: 'Find it with: ss -xlp | grep nsbox-netsetup/all' });
      }
      return text('');
    }
    case 'setup-host': {
      rootOnly('setup-host');
      const { config } = configFor(inv.config);
      const nets = inv.network !== undefined ? [network(config, inv.network)] : config.networks;
      setupHost(config, nets);
      return text(`host side ready: ${nets.map((n) => `${n.bridge} ${n.gateway}/${n.prefix}`).join(', ')}\n`);
    }
    case 'teardown': {
      rootOnly('teardown');
      const { config } = configFor(inv.config);
      const nets = inv.network !== undefined ? [network(config, inv.network)] : config.networks;
      const n = teardown(config, nets);
      return text(`removed ${nets.map((x) => x.bridge).join(', ')} and ${n} lease(s)\n`);
    }
  }
}
