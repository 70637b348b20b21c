// Profiling marks: with NETSETUP_TIMING=1 in the environment of a run that is
// not setuid (root running it directly), netsetup prints to stderr when each
// step ended, in ms since the process started. Read once, before harden()
// clears the environment; a setuid start never looks at it.
import fs from 'node:fs';

const on = process.env.NETSETUP_TIMING === '1' && process.getuid!() === process.geteuid!();
// process.uptime() counts from Node's start and, unlike performance.now(), does
// not load perf_hooks (~0.7 ms).
const now = (): number => process.uptime() * 1000;
const marks: [string, number][] = on ? [['loader started', (globalThis as { __nsboxStart?: number }).__nsboxStart ?? Number.NaN]] : [];

export function mark(step: string): void {
  if (on) marks.push([step, now()]);
}

export function report(): void {
  // fs.writeSync, not process.stderr: that would load node:net and node:stream (~1.5 ms).
  if (on) fs.writeSync(2, `${marks.map(([s, t]) => `${t.toFixed(2).padStart(7)} ms  ${s}`).join('\n')}\n`);
}
