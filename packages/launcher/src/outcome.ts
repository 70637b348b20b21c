// What the stub's failure records mean for the user (pure): the sandbox started,
// or an error with its exit code (125 setup, 126 cannot execute, 127 not found).
import { describeErrno, ENOENT, ENOTDIR } from '@nsbox/shared/errno';
import { NsboxError, sysError } from '@nsbox/shared/error';
import type { Failure } from '@nsbox/shared/program';
import type { SandboxPlan } from './plan.ts';

export const EXIT_LAUNCHER = 125;
const EXIT_CANNOT_EXECUTE = 126;
const EXIT_NOT_FOUND = 127;

export type Outcome = { started: true } | { started: false; error: NsboxError };

export function judgeStart(plan: SandboxPlan, failures: Failure[], command: string): Outcome {
  const hard = failures.find((f) => !plan.steps[f.step]?.soft);
  if (hard) {
    const step = plan.steps[hard.step];
    const earlier = failures.filter((f) => f.step < hard.step && f.step < plan.execFrom && plan.steps[f.step]?.soft).at(-1);
    const because = earlier ? ` (after: ${plan.steps[earlier.step]?.what}: ${describeErrno(earlier.errno)})` : '';
    const what = `sandbox setup failed: ${step?.what ?? `step ${hard.step}`}`;
    return { started: false, error: new NsboxError({ what, why: `${describeErrno(hard.errno)}${because}`, errno: hard.errno, exit: EXIT_LAUNCHER }) };
  }
  const execFailures = failures.filter((f) => f.step >= plan.execFrom);
  if (execFailures.length < plan.candidates.length) return { started: true };
  const real = execFailures.find((f) => f.errno !== ENOENT && f.errno !== ENOTDIR);
  if (real) {
    const tried = plan.candidates[real.step - plan.execFrom];
    return { started: false, error: sysError(`cannot execute ${tried} in the sandbox`, real.errno, { exit: EXIT_CANNOT_EXECUTE }) };
  }
  const where = command.includes('/') ? `${command} does not exist in the rootfs` : `${command} was not found in the sandbox's PATH (${plan.candidates.map((c) => c.slice(0, c.lastIndexOf('/'))).join(':')})`;
  return { started: false, error: new NsboxError({ what: 'command not found', why: where, exit: EXIT_NOT_FOUND }) };
}
