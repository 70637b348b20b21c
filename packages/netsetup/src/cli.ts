// Command line → action → output. The command line names only a pid, a lease
// and, at most, a network the configuration offers; everything else comes from
// the root-owned configuration.
import fs from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { formatPublish, parsePublish, PublishSyntaxError, PUBLISH_SYNTAX, type PublishSpec } from '@nsbox/shared/publish';
import * as actions from './actions.ts';
import { DEFAULT_CONFIG_TEXT, findNetwork, type Config, type Network } from './config.ts';
import { EXIT, NetsetupError } from './errors.ts';
import { LEASE_ID, type Caller, type Lease } from './leases.ts';
import { loadConfig } from './locate.ts';
import { checkInstall, type Privilege } from './secure.ts';
import { parsePid } from './target.ts';

const HELP_AFTER = `
Publishing: --publish ${PUBLISH_SYNTAX} (repeatable) forwards
HOSTPORT (on every address of the host, or on HOSTIP) to PORT in the sandbox.

Exit codes: 0 ok, 2 usage, 3 not permitted (pid not yours, lease not yours,
port or address refused), 4 quota or subnet exhausted, 5 installation or
configuration refused, 6 kernel or iptables failure, 7 state lock busy,
8 host port already published or in use, 1 internal error.`;

const HOLD_IGNORES: NodeJS.Signals[] = ['SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU'];

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** Blocks until fd reaches EOF (or cannot be read any more). */
function waitForEof(fd: number): void {
  const buf = Buffer.alloc(256);
  for (;;) {
    try {
      if (fs.readSync(fd, buf) === 0) return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') Atomics.wait(PAUSE, 0, 0, 50);
      else if (code !== 'EINTR') return;
    }
  }
}

export async function run(argv: string[], priv: Privilege): Promise<number> {
  const out = (s: string): void => void process.stdout.write(s);
  const caller: Caller = { uid: priv.uid, gids: priv.gids };
  let code: number = EXIT.OK;

  const context = (configOpt: string | undefined): Config => {
    if (configOpt !== undefined && priv.uid !== 0) throw new NetsetupError(EXIT.DENIED, '--config', 'only root may name a configuration file', 'Leave it out');
    checkInstall();
    return loadConfig(fs.realpathSync('/proc/self/exe'), configOpt).config;
  };
  const network = (config: Config, name: string | undefined): Network => {
    const net = findNetwork(config, name);
    if (!net) throw new NetsetupError(EXIT.USAGE, `--network ${name}`, 'no such network in the configuration', `Choose one of: ${config.networks.map((n) => n.name).join(', ')}`);
    return net;
  };
  const pidArg = (text: string): number => {
    const pid = parsePid(text);
    if (pid === undefined) throw new NetsetupError(EXIT.USAGE, `--pid ${JSON.stringify(text)}`, 'not a process id', 'Give a decimal pid such as 12345');
    return pid;
  };
  const rootOnly = (what: string): void => {
    if (priv.uid !== 0) throw new NetsetupError(EXIT.DENIED, what, 'only root may do this', 'Ask the administrator');
  };
  const publishArg = (text: string): PublishSpec => {
    try {
      return parsePublish(text);
    } catch (err) {
      if (err instanceof PublishSyntaxError) throw new NetsetupError(EXIT.USAGE, `--publish ${text}`, err.reason, 'Run netsetup --help');
      throw err;
    }
  };
  const publishedText = (p: PublishSpec[]): string => p.map(formatPublish).join(',');
  const leaseLine = (l: Lease): string =>
    `${l.id} ${l.network} uid=${l.uid} pid=${l.pid} ${l.address} ${l.hostVeth} ${l.created}${l.published.length > 0 ? ` published=${publishedText(l.published)}` : ''}`;

  const program = new Command('netsetup')
    .description('Give a process in its own network namespace one veth on an admin-approved bridge.')
    .enablePositionalOptions()
    .option('--pid <pid>', 'the process whose network namespace to connect')
    .option('--network <name>', 'a network from the configuration (default: the first)')
    .option('--json', 'print the result as JSON')
    .option('--hold', 'stay, and release the lease when stdin closes (how the launcher runs netsetup)')
    .option('--publish <spec>', `publish a host port to the sandbox: ${PUBLISH_SYNTAX} (repeatable)`, (v: string, all: string[] | undefined) => [...(all ?? []), v])
    .addOption(new Option('--config <file>', 'root only: use this configuration file').hideHelp())
    .addHelpText('after', HELP_AFTER)
    .action((o: { pid?: string; network?: string; json?: boolean; hold?: boolean; publish?: string[]; config?: string }) => {
      if (o.pid === undefined) throw new NetsetupError(EXIT.USAGE, 'command line', 'missing --pid', 'Run netsetup --help');
      // A holder shares the launcher's terminal: Ctrl-C, Ctrl-Z and hang-ups are the sandbox's business.
      if (o.hold) for (const sig of HOLD_IGNORES) process.on(sig, () => {});
      const pid = pidArg(o.pid);
      const publish = (o.publish ?? []).map(publishArg);
      const config = context(o.config);
      const c = actions.connect(config, network(config, o.network), caller, pid, publish);
      const published = c.published.length > 0 ? `, published ${publishedText(c.published)}` : '';
      out(o.json ? `${JSON.stringify(c)}\n` : `${c.interface} ${c.cidr} via ${c.gateway} mtu ${c.mtu} on ${c.bridge} (host ${c.hostVeth}, lease ${c.lease}${published})\n`);
      if (o.hold) {
        waitForEof(0);
        try {
          actions.release(config, caller, { id: c.lease });
        } catch (err) {
          // Already collected by another call once the sandbox was gone: released all the same.
          if (!(err instanceof NetsetupError && err.code === EXIT.DENIED)) throw err;
        }
      }
    });

  program
    .command('release')
    .description('free a lease: its veth, address and rules')
    .argument('[lease-id]')
    .option('--pid <pid>', 'release the leases of this pid')
    .option('--json', 'print the released leases as JSON')
    .addOption(new Option('--config <file>').hideHelp())
    .action((id: string | undefined, o: { pid?: string; json?: boolean; config?: string }) => {
      if ((id === undefined) === (o.pid === undefined)) throw new NetsetupError(EXIT.USAGE, 'release', 'give either a lease id or --pid', 'Run netsetup release --help');
      if (id !== undefined && !LEASE_ID.test(id)) throw new NetsetupError(EXIT.USAGE, `lease ${JSON.stringify(id)}`, 'not a lease id (8 hex digits)', 'See your leases with netsetup list');
      const by = id !== undefined ? { id } : { pid: pidArg(o.pid!) };
      const config = context(o.config);
      const gone = actions.release(config, caller, by);
      out(o.json ? `${JSON.stringify(gone)}\n` : gone.map((l) => `released ${l.id} (${l.address}, ${l.hostVeth})\n`).join(''));
    });

  program
    .command('list')
    .description("show the caller's leases (root: all)")
    .option('--json', 'print JSON')
    .addOption(new Option('--config <file>').hideHelp())
    .action((o: { json?: boolean; config?: string }) => {
      const leases = actions.list(context(o.config), caller);
      out(o.json ? `${JSON.stringify(leases)}\n` : leases.map((l) => `${leaseLine(l)}\n`).join(''));
    });

  program
    .command('setup-host')
    .description('root: create the bridges, forwarding and NAT rules ahead of time')
    .option('--network <name>', 'only this network')
    .addOption(new Option('--config <file>').hideHelp())
    .action((o: { network?: string; config?: string }) => {
      rootOnly('setup-host');
      const config = context(o.config);
      const nets = o.network ? [network(config, o.network)] : config.networks;
      actions.setupHost(config, nets);
      out(`host side ready: ${nets.map((n) => `${n.bridge} ${n.gateway}/${n.prefix}`).join(', ')}\n`);
    });

  program
    .command('teardown')
    .description('root: delete all veths, bridges, rules and state')
    .option('--network <name>', 'only this network')
    .addOption(new Option('--config <file>').hideHelp())
    .action((o: { network?: string; config?: string }) => {
      rootOnly('teardown');
      const config = context(o.config);
      const nets = o.network ? [network(config, o.network)] : config.networks;
      const n = actions.teardown(config, nets);
      out(`removed ${nets.map((x) => x.bridge).join(', ')} and ${n} lease(s)\n`);
    });

  program
    .command('check')
    .description('check the installation and configuration; print which configuration is used')
    .option('--json', 'print JSON')
    .addOption(new Option('--config <file>').hideHelp())
    .action((o: { json?: boolean; config?: string }) => {
      if (o.config !== undefined && priv.uid !== 0) throw new NetsetupError(EXIT.DENIED, '--config', 'only root may name a configuration file', 'Leave it out');
      checkInstall();
      const { config, source } = loadConfig(fs.realpathSync('/proc/self/exe'), o.config);
      out(o.json ? `${JSON.stringify({ source, config })}\n` : `ok: configuration ${source}, state in ${config.stateDir}, networks ${config.networks.map((n) => `${n.name} (${n.bridge} ${n.subnet})`).join(', ')}\n`);
    });

  program
    .command('default-config')
    .description('print the built-in default configuration (for installing it)')
    .action(() => out(DEFAULT_CONFIG_TEXT));

  program.exitOverride();
  program.configureOutput({ writeErr: () => {}, writeOut: out });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK;
      process.stderr.write(`netsetup: command line: ${err.message.replace(/^error: /, '')}. Run netsetup --help\n`);
      return EXIT.USAGE;
    }
    throw err;
  }
  return code;
}
