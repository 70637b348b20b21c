// Why the kernel refused a new user namespace, and what an admin changes (pure,
// given the settings read from /proc/sys; reading them is readUsernsSettings).
import fs from 'node:fs';
import { describeErrno } from '@nsbox/shared/errno';
import { NsboxError, sysError } from '@nsbox/shared/error';

export interface UsernsSettings {
  maxUserNamespaces?: number;
  /** Debian's and older Ubuntu's kernel.unprivileged_userns_clone. */
  unprivilegedUsernsClone?: number;
  /** Ubuntu 23.10+'s AppArmor restriction. */
  apparmorRestrict?: number;
}

export function explainCloneFailure(errno: number, s: UsernsSettings, isRoot: boolean): NsboxError {
  const what = "cannot create the sandbox's namespaces";
  const allow = (setting: string): string => `An admin can allow them with: sysctl -w ${setting}`;
  if (s.maxUserNamespaces === 0) {
    return new NsboxError({ what, why: 'user namespaces are disabled (user.max_user_namespaces = 0)', todo: allow('user.max_user_namespaces=15000'), errno });
  }
  if (!isRoot && s.unprivilegedUsernsClone === 0) {
    return new NsboxError({ what, why: 'unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)', todo: allow('kernel.unprivileged_userns_clone=1'), errno });
  }
  if (!isRoot && s.apparmorRestrict === 1) {
    const why = 'AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)';
    return new NsboxError({ what, why, todo: `${allow('kernel.apparmor_restrict_unprivileged_userns=0')}, or an AppArmor profile granting 'userns' to the launcher`, errno });
  }
  if (errno === 28 || errno === 87) {
    return new NsboxError({ what, why: `the limit on user namespaces is reached (${describeErrno(errno)})`, todo: 'An admin can raise user.max_user_namespaces, or end other sandboxes', errno });
  }
  return sysError(`${what}: clone`, errno);
}

function readNumber(file: string): number | undefined {
  try {
    return Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
  } catch {
    return undefined;
  }
}

export function readUsernsSettings(): UsernsSettings {
  return {
    maxUserNamespaces: readNumber('/proc/sys/user/max_user_namespaces'),
    unprivilegedUsernsClone: readNumber('/proc/sys/kernel/unprivileged_userns_clone'),
    apparmorRestrict: readNumber('/proc/sys/kernel/apparmor_restrict_unprivileged_userns'),
  };
}
