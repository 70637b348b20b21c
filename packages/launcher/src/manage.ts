// 'launcher ps' and 'launcher exec': the caller's running sandboxes (registry.ts)
// listed, and a command run in one of them. exec joins the sandbox's namespaces
// (user first) and root with util-linux's nsenter: a Node process cannot join a
// user namespace itself (setns refuses a multi-threaded caller).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { NsboxError } from '@nsbox/shared/error';
import { sandboxPath } from './cli.ts';
import { DEFAULT_PATH } from './options.ts';
import { findSandbox, listSandboxes, type Entry } from './registry.ts';

export const NSENTER = '/usr/bin/nsenter';
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The ps table (pure). */
export function psTable(entries: Entry[]): string {
  const rows = [['NAME', 'PID', 'STARTED', 'ADDRESS', 'COMMAND']];
  for (const e of entries) rows.push([e.name ?? '-', String(e.pid), e.started, e.address ?? '-', e.command.join(' ')]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export function ps(argv: string[], uid: number): number {
  const json = argv.includes('--json');
  const unknown = argv.find((a) => a !== '--json');
  if (unknown !== undefined) throw new NsboxError({ what: `ps ${unknown}`, why: 'unknown option', todo: "Try 'launcher ps [--json]'." });
  const entries = listSandboxes(uid);
  process.stdout.write(json ? `${JSON.stringify(entries.map(({ startTime: _, ...e }) => e))}\n` : psTable(entries));
  return 0;
}

export interface ExecRequest {
  which: string;
  env: [string, string][];
  cwd?: string;
  command: string[];
}

export function parseExec(argv: string[]): ExecRequest {
  const usage = (what: string, why: string): NsboxError => new NsboxError({ what, why, todo: "Try 'launcher exec NAME|PID [--env K=V] [--cwd DIR] -- CMD [ARGS...]'." });
  const env: [string, string][] = [];
  let cwd: string | undefined;
  let which: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      i++;
      break;
    }
    if (a === '--env' || a === '--cwd') {
      const v = argv[++i];
      if (v === undefined) throw usage(a, 'the option needs a value');
      if (a === '--cwd') cwd = sandboxPath('--cwd', v);
      else {
        const eq = v.indexOf('=');
        if (eq < 0 || !ENV_KEY.test(v.slice(0, eq))) throw usage(`--env ${v}`, 'expected KEY=VALUE with KEY made of letters, digits and _');
        env.push([v.slice(0, eq), v.slice(eq + 1)]);
      }
      continue;
    }
    if (a.startsWith('-')) throw usage(a, 'unknown option');
    if (which !== undefined) break;
    which = a;
  }
  if (which === undefined) throw usage('exec', 'needs the name or pid of a running sandbox');
  const command = i < argv.length ? argv.slice(i) : ['/bin/sh'];
  return { which, env, cwd, command };
}

/** nsenter's arguments (pure): every namespace of the sandbox, its root and cwd,
 *  the caller's own credentials (root inside); --cwd through the sandbox's sh,
 *  since nsenter would open the directory on the host. */
export function nsenterArgs(pid: number, req: ExecRequest): string[] {
  const args = ['-t', String(pid), '-U', '-m', '-u', '-i', '-n', '-p', '-C', '-r', '-w', '--preserve-credentials', '--'];
  if (req.cwd === undefined) return [...args, ...req.command];
  return [...args, '/bin/sh', '-c', 'cd -- "$1" && shift && exec "$@"', 'sh', req.cwd, ...req.command];
}

export function execEnv(e: Entry, req: ExecRequest, term: string | undefined): Record<string, string> {
  const env: Record<string, string> = { PATH: DEFAULT_PATH, HOME: '/root', HOSTNAME: e.hostname };
  if (term) env.TERM = term;
  for (const [k, v] of req.env) env[k] = v;
  return env;
}

export function exec(argv: string[], uid: number): number {
  const req = parseExec(argv);
  const entry = findSandbox(uid, req.which);
  const r = spawnSync(NSENTER, nsenterArgs(entry.pid, req), { stdio: 'inherit', env: execEnv(entry, req, process.env.TERM) });
  if (r.error) throw new NsboxError({ what: `exec ${req.which}: ${NSENTER}`, why: r.error.message, todo: "Install util-linux's nsenter." });
  if (r.signal) return 128 + (os.constants.signals as Record<string, number>)[r.signal]!;
  return r.status ?? 125;
}
