// Where the configuration comes from: PREFIX/etc/nsbox/netsetup.conf when the
// binary is PREFIX/bin/netsetup and that file exists, else /etc/nsbox/netsetup.conf,
// else the built-in default. Never from arguments (except root's --config) or
// the environment. A file is used only if it and every directory above it are
// root-owned and not writable by others.
import fs from 'node:fs';
import path from 'node:path';
import { DEFAULT_CONFIG_TEXT, parseConfig, type Config } from '../policy/config.ts';
import { requireTrusted } from './trust.ts';

const SYSTEM_CONFIG = '/etc/nsbox/netsetup.conf';

export function configCandidates(exe: string): string[] {
  const dir = path.dirname(exe);
  const out: string[] = [];
  if (path.basename(dir) === 'bin') out.push(path.join(path.dirname(dir), 'etc/nsbox/netsetup.conf'));
  out.push(SYSTEM_CONFIG);
  return [...new Set(out)];
}

export function loadConfig(exe: string, override?: string): { config: Config; source: string } {
  const candidates = override ? [override] : configCandidates(exe);
  for (const file of candidates) {
    if (!override && !exists(file)) continue;
    const real = fs.realpathSync.native(file);
    requireTrusted(real);
    return { config: parseConfig(fs.readFileSync(real, 'utf8'), real), source: real };
  }
  return { config: parseConfig(DEFAULT_CONFIG_TEXT, '(built-in default)'), source: '(built-in default)' };
}

const exists = (file: string): boolean => fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined;
