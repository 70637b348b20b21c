// Syscall numbers and kernel constants used by the stub's step lists. arm64 has
// no legacy calls (open, mkdir, symlink), so plans use the *at forms everywhere.
export type Arch = 'x64' | 'arm64';

export const SYSCALLS = {
  read: { x64: 0, arm64: 63 },
  write: { x64: 1, arm64: 64 },
  close: { x64: 3, arm64: 57 },
  ioctl: { x64: 16, arm64: 29 },
  socket: { x64: 41, arm64: 198 },
  execve: { x64: 59, arm64: 221 },
  exit_group: { x64: 231, arm64: 94 },
  fcntl: { x64: 72, arm64: 25 },
  chdir: { x64: 80, arm64: 49 },
  sethostname: { x64: 170, arm64: 161 },
  mount: { x64: 165, arm64: 40 },
  umount2: { x64: 166, arm64: 39 },
  pivot_root: { x64: 155, arm64: 41 },
  prctl: { x64: 157, arm64: 167 },
  openat: { x64: 257, arm64: 56 },
  mkdirat: { x64: 258, arm64: 34 },
  symlinkat: { x64: 266, arm64: 36 },
  mount_setattr: { x64: 442, arm64: 442 },
  pidfd_open: { x64: 434, arm64: 434 },
  setns: { x64: 308, arm64: 268 },
  dup3: { x64: 292, arm64: 24 },
  unlinkat: { x64: 263, arm64: 35 },
  setgroups: { x64: 116, arm64: 159 },
  fchmodat: { x64: 268, arm64: 53 },
} as const;

export type SyscallName = keyof typeof SYSCALLS;

export const AT_FDCWD = -100;
export const AT_RECURSIVE = 0x8000;

export const O_WRONLY = 0o1;
export const O_CREAT = 0o100;
export const O_CLOEXEC = 0o2000000;
export const O_NOFOLLOW = 0o400000;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_PATH = 0o10000000;

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;
export const MNT_DETACH = 0x2;
export const MOUNT_ATTR_RDONLY = 0x1;

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;
export const CLONE_VM = 0x00000100;

export const PR_SET_PDEATHSIG = 1;
export const F_SETFD = 2;
export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_CLOEXEC = 0o2000000;
export const SIOCSIFFLAGS = 0x8914;
export const IFF_UP = 0x1;
export const IFF_LOOPBACK = 0x8;
export const IFF_RUNNING = 0x40;

export const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8,
  SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15,
  SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19, SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGXCPU: 24,
  SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28, SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

export function currentArch(): Arch {
  if (process.arch === 'x64' || process.arch === 'arm64') return process.arch;
  throw new Error(`unsupported architecture ${process.arch} (x64 and arm64 only)`);
}

// netsetup: pinning a target (namespace ioctls from <linux/nsfs.h>), locking, hardening.
export const NS_GET_USERNS = 0xb701;
export const NS_GET_OWNER_UID = 0xb704;
export const AT_SECURE = 23;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const PR_SET_DUMPABLE = 4;
export const SOCK_RAW = 3;
export const SOL_NETLINK = 270;
export const NETLINK_EXT_ACK = 11;
export const SYS_pidfd_send_signal = 424; // same number on x64 and arm64
