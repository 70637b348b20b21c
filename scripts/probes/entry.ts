// Probe: netsetup's entry and nothing else. Built like netsetup and installed
// setuid root like it, it does what every netsetup call does before its own
// work (loads the FFI module, reads AT_SECURE, hardens the process: dumpable
// off, fixed environment, full root ids) and exits as netsetup does (_exit).
// scripts/bench-netsetup.ts subtracts it to get netsetup's own work.
import { libc } from '../../packages/shared/src/libc.ts';
import { harden } from '../../packages/netsetup/src/setuid/secure.ts';

harden();
libc()._exit(0);
