// Probe: the empty program plus commander parsing a command line shaped like the
// launcher's. Its start-up minus the empty probe's is what commander would cost
// bundled into a program's single executable (scripts/bench.ts startup).
import { Command } from 'commander';

const program = new Command('probe')
  .option('--rootfs <dir>', 'root directory')
  .option('--net <mode>', 'network', 'bridge')
  .option('--publish <spec...>', 'published ports')
  .option('--hostname <name>', 'host name')
  .argument('[command...]', 'command to run')
  .exitOverride();
program.parse(['--rootfs', '/tmp/r', '--net', 'none', '--', '/bin/true'], { from: 'user' });
if (program.opts().rootfs !== '/tmp/r') process.exitCode = 1;
