// Where the configuration comes from: one path, fixed by where the administrator
// installed the binary: PREFIX/bin/netsetup reads PREFIX/etc/nsbox/netsetup.conf
// (/etc/nsbox/netsetup.conf for PREFIX /usr or /), exactly what scripts/install.sh
// writes. No fallback to /etc or a built-in default: a copy of the binary moved or
// linked elsewhere (a hard link is refused anyway: secure.ts checkInstall) finds
// no configuration there and refuses, instead of running without the admin's
// quotas and policy. Never from arguments (except root's --config) or the
// environment. A file is used only if it and every directory above it are
// root-owned and not writable by others (trust.ts).
//
// Why derived rather than recorded in the binary at install time: the binary is a
// Node single executable whose blob is injected at build time; patching it per
// install would change what was built and tested. The path is a pure function of
// the binary's real path, which only root can choose for a setuid-root binary
// with one link on a trusted path.
import fs from 'node:fs';
import path from 'node:path';
import { NsboxError } from '@nsbox/shared/error';
import { EXIT } from '../exit.ts';
import { parseConfig, type Config } from '../policy/config.ts';
import { requireTrusted } from './trust.ts';

const CONFIG_NAME = 'etc/nsbox/netsetup.conf';

/** The configuration file of a binary at `exe` (a real path), or undefined when
 *  the binary is not in a `bin` directory (not where install.sh puts it). */
export function configPath(exe: string): string | undefined {
  const dir = path.dirname(exe);
  if (path.basename(dir) !== 'bin') return undefined;
  const prefix = path.dirname(dir);
  return prefix === '/usr' ? `/${CONFIG_NAME}` : path.join(prefix, CONFIG_NAME);
}

export function loadConfig(exe: string, override?: string): { config: Config; source: string } {
  const file = override ?? configPath(exe);
  if (file === undefined) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `installation ${exe}`, why: 'netsetup is not in a bin directory, so it has no configuration', todo: 'Install it with scripts/install.sh PREFIX (as PREFIX/bin/netsetup)' });
  }
  if (!override && fs.lstatSync(file, { throwIfNoEntry: false }) === undefined) {
    throw new NsboxError({ exit: EXIT.CONFIG, what: `configuration ${file}`, why: `it does not exist (netsetup at ${exe} reads only this file)`, todo: `Create it as root (netsetup default-config > ${file}) or reinstall with scripts/install.sh` });
  }
  const real = fs.realpathSync.native(file);
  if (last && last.source === real && last.identity === identity(fs.statSync(real, { bigint: true }))) return { config: last.config, source: real };
  requireTrusted(real);
  const fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    // Frozen: the next request of a serving netsetup gets the same object.
    const loaded = { config: frozen(parseConfig(fs.readFileSync(fd, 'utf8'), real)), source: real };
    last = { ...loaded, identity: identity(fs.fstatSync(fd, { bigint: true })) };
    return loaded;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The last configuration loaded, with the identity of the file it was read
 * from: a serving netsetup (serve.ts) loads it for every request, and while the
 * file at the same real path is that very file, unchanged, the walk and the
 * parse would decide the same. An edit, chmod, chown or a file put in its place
 * changes the identity (ctime is set by each, and by nothing a caller can do).
 * The directories above are root's, so only root can change whether they are
 * trusted; a file anyone else could then put there is a new file, walked again.
 */
let last: { config: Config; source: string; identity: string } | undefined;
const identity = (st: fs.BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;

function frozen<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    for (const v of Object.values(o)) frozen(v);
    Object.freeze(o);
  }
  return o;
}
