// Throwaway users with subordinate ids, as Debian's useradd makes them (65536 each
// in /etc/subuid and /etc/subgid), removed again with /etc/subuid and /etc/subgid
// as they were, also when a test fails or the process is ended. Only one test file
// may use this (they run in parallel and would restore each other's files).
import { execaSync } from 'execa';
import fs from 'node:fs';

const FILES = ['/etc/subuid', '/etc/subgid'];

export interface SubidUser {
  name: string;
  uid: number;
  gid: number;
  /** The first subordinate uid and gid (the same for users made here) and the count. */
  subStart: number;
  subCount: number;
}

const made: string[] = [];
let saved: Map<string, string | undefined> | undefined;

function save(): void {
  if (saved) return;
  saved = new Map(FILES.map((f) => [f, fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined]));
  process.on('exit', removeUsers);
  // useradd gives subordinate ids only when the files exist (a fresh minbase root has none).
  for (const f of FILES) if (!fs.existsSync(f)) fs.writeFileSync(f, '');
}

/** userdel every user made here and put /etc/subuid and /etc/subgid back. */
export function removeUsers(): void {
  for (const name of made.splice(0)) {
    const uid = execaSync('id', ['-u', name], { reject: false }).stdout.trim();
    // The list of running sandboxes the launcher kept for the user.
    if (/^\d+$/.test(uid)) fs.rmSync(`/tmp/nsbox-${uid}`, { recursive: true, force: true });
    execaSync('userdel', ['-f', name], { stdio: 'ignore', reject: false });
  }
  if (!saved) return;
  for (const [f, text] of saved) {
    if (text === undefined) fs.rmSync(f, { force: true });
    else fs.writeFileSync(f, text);
  }
}

export function subidsOf(file: string, name: string): { start: number; count: number } | undefined {
  const line = fs.readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) return undefined;
  const [, start, count] = line.split(':');
  return { start: Number(start), count: Number(count) };
}

/** A new user (no home) with the subordinate ids useradd gives it. */
export function addSubidUser(tag: string): SubidUser {
  save();
  const name = `nsbx${process.pid % 100000}${tag}`;
  execaSync('useradd', ['-M', '-s', '/usr/sbin/nologin', name]);
  made.push(name);
  const uid = Number(execaSync('id', ['-u', name]).stdout.trim());
  const gid = Number(execaSync('id', ['-g', name]).stdout.trim());
  const u = subidsOf('/etc/subuid', name);
  const g = subidsOf('/etc/subgid', name);
  if (!u || !g || u.start !== g.start || u.count !== g.count) throw new Error(`useradd gave ${name} no matching subordinate ids (subuid ${JSON.stringify(u)}, subgid ${JSON.stringify(g)})`);
  return { name, uid, gid, subStart: u.start, subCount: u.count };
}

/** Replaces a user's line in a subordinate id file. */
export function setSubids(file: string, name: string, line: string): number {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.startsWith(`${name}:`));
  if (i < 0) throw new Error(`${name} has no line in ${file}`);
  lines[i] = line;
  fs.writeFileSync(file, lines.join('\n'));
  return i + 1;
}
