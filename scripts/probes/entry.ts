// Probe: netsetup's entry and nothing else. Built like netsetup and installed
// setuid root like it, it does what every netsetup call does before its own
// work (loads the FFI module, reads AT_SECURE, hardens the process: dumpable
// off, fixed environment, full root ids), writes an empty line where netsetup
// writes its answer, and exits as netsetup does (_exit).
// scripts/bench-netsetup.ts subtracts it to get netsetup's own work: until the
// answer line, and until the exit.
import fs from 'node:fs';
import { libc } from '../../packages/shared/src/libc.ts';
import { harden } from '../../packages/netsetup/src/setuid/secure.ts';

harden();
fs.writeSync(1, '\n');
libc()._exit(0);
