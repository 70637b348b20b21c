// The supervisor: what the launcher and netsetup's holder turn into (execve of
// this program from a sealed memfd, same pid) once the sandbox's command runs,
// so that no Node process (~10 MiB private each) waits with every sandbox.
// Freestanding: no libc, raw syscalls, a few KB of code, one page of stack in use.
//
//   supervisor launcher PID FALLBACK KILLED INFO-FD HOLD-IN HOLD-OUT REGISTRY
//     Waits for PID (the sandbox's pid 1, our child) with SIGINT, SIGTERM, SIGHUP,
//     SIGQUIT and SIGCHLD blocked, taking them with rt_sigtimedwait: the first four
//     are forwarded (FALLBACK 1: a pid 1 that would drop one is killed, as
//     packages/launcher/src/signals.ts does; KILLED: the signal the launcher
//     already killed it for, or 0). When PID has exited: unlink REGISTRY (if not
//     empty), close HOLD-IN (the holder's stdin: it releases the lease; when
//     HOLD-IN is HOLD-OUT, a socket to a user's netsetup server, shut down its
//     writing side instead) and read HOLD-OUT up to the holder's `releasing`
//     line (or EOF), write the `exited`
//     line to INFO-FD (same bytes as info.ts), exit with the code or 128+N. An fd
//     of -1 is absent.
//
//   supervisor holder BIN-FD LEASE JSON CONFIG
//     netsetup --hold, fully root, once its sandbox has run for a while (cli.ts
//     HAND_OVER_MS): reads stdin to EOF (the
//     launcher has exited, or been killed), then execveat(BIN-FD) netsetup
//     release-held LEASE --config CONFIG [--json] with a fixed environment.
//
// Exit 125 (launcher) or 6 (holder) with one line on stderr if it cannot do that.

typedef unsigned long u64;
typedef unsigned int u32;

#if defined(__x86_64__)
enum {
  NR_read = 0, NR_write = 1, NR_close = 3, NR_rt_sigaction = 13, NR_rt_sigprocmask = 14,
  NR_wait4 = 61, NR_kill = 62, NR_setsid = 112, NR_rt_sigtimedwait = 128, NR_prctl = 157,
  NR_exit_group = 231, NR_openat = 257, NR_unlinkat = 263, NR_ppoll = 271, NR_execveat = 322,
  NR_shutdown = 48,
};
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  long ret;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
}
__asm__(".text\n.globl _start\n_start:\n xor %rbp, %rbp\n mov %rsp, %rdi\n and $-16, %rsp\n call start\n hlt\n");
#elif defined(__aarch64__)
enum {
  NR_read = 63, NR_write = 64, NR_close = 57, NR_rt_sigaction = 134, NR_rt_sigprocmask = 135,
  NR_wait4 = 260, NR_kill = 129, NR_setsid = 157, NR_rt_sigtimedwait = 137, NR_prctl = 167,
  NR_exit_group = 94, NR_openat = 56, NR_unlinkat = 35, NR_ppoll = 73, NR_execveat = 281,
  NR_shutdown = 210,
};
static long sys6(long n, long a, long b, long c, long d, long e, long f) {
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
}
__asm__(".text\n.globl _start\n_start:\n mov x29, #0\n mov x30, #0\n mov x0, sp\n bl start\n");
#else
#error "x86_64 and aarch64 only"
#endif

#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define sys5(n, a, b, c, d, e) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

enum {
  EINTR = 4, EAGAIN = 11, SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGKILL = 9, SIGTERM = 15, SIGCHLD = 17,
  SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22, SIG_BLOCK = 0, SIG_SETMASK = 2, WNOHANG = 1,
  AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000, O_RDONLY = 0, O_CLOEXEC = 02000000, PR_SET_DUMPABLE = 4, PR_SET_NAME = 15,
  POLLIN = 1, EXIT_LAUNCHER = 125, EXIT_SYSTEM = 6, SHUT_WR = 1,
};

static __attribute__((noreturn)) void leave(int code) {
  for (;;) sys3(NR_exit_group, code, 0, 0);
}

static u64 bit(int sig) { return 1UL << (sig - 1); }

static long length(const char *s) {
  long n = 0;
  while (s[n]) n++;
  return n;
}

/** Writes all of buf; gives up on an error (a reader that went away). */
static void write_all(int fd, const char *buf, long n) {
  while (n > 0) {
    long w = sys3(NR_write, fd, buf, n);
    if (w == -EINTR) continue;
    if (w <= 0) return;
    buf += w;
    n -= w;
  }
}

static __attribute__((noreturn)) void fail(const char *what, long err, int code) {
  char line[256];
  long n = 0;
  for (const char *p = what; *p && n < 200; p++) line[n++] = *p;
  const char *tail = " (errno ";
  for (const char *p = tail; *p; p++) line[n++] = *p;
  char digits[24];
  int d = 0;
  u64 v = (u64)-err;
  do digits[d++] = (char)('0' + v % 10); while ((v /= 10) && d < 20);
  while (d) line[n++] = digits[--d];
  line[n++] = ')';
  line[n++] = '\n';
  write_all(2, line, n);
  leave(code);
}

/** A decimal argument (optionally negative); -2 when it is not one. */
static long number(const char *s) {
  long sign = 1, v = 0;
  if (*s == '-') {
    sign = -1;
    s++;
  }
  if (!*s) return -2;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 100000000L) return -2;
    v = v * 10 + (*s - '0');
  }
  return sign * v;
}

static char *put_decimal(char *p, long v) {
  char digits[24];
  int d = 0;
  if (v < 0) {
    *p++ = '-';
    v = -v;
  }
  do digits[d++] = (char)('0' + v % 10); while ((v /= 10) && d < 20);
  while (d) *p++ = digits[--d];
  return p;
}

static char *put(char *p, const char *s) {
  while (*s) *p++ = *s++;
  return p;
}

/** The value of a hex mask line "NAME:\tHEX" in /proc/PID/status text, 0 if absent. */
static u64 status_mask(const char *text, long n, const char *name) {
  long len = length(name);
  for (long i = 0; i < n; i++) {
    if (i > 0 && text[i - 1] != '\n') continue;
    long k = 0;
    while (k < len && i + k < n && text[i + k] == name[k]) k++;
    if (k < len || i + k >= n || text[i + k] != ':') continue;
    u64 v = 0;
    for (long j = i + k + 1; j < n && text[j] != '\n'; j++) {
      char c = text[j];
      if (c >= '0' && c <= '9') v = v << 4 | (u64)(c - '0');
      else if (c >= 'a' && c <= 'f') v = v << 4 | (u64)(c - 'a' + 10);
    }
    return v;
  }
  return 0;
}

/** Whether pid catches, ignores or blocks sig (signals.ts handlesSignal); -1 if
 *  its status cannot be read (it is gone). */
static int handles_signal(long pid, int sig) {
  char path[40];
  char *p = put(path, "/proc/");
  p = put_decimal(p, pid);
  p = put(p, "/status");
  *p = 0;
  long fd = sys4(NR_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return -1;
  static char text[16384];
  long n = 0;
  for (;;) {
    long r = sys3(NR_read, fd, text + n, (long)sizeof text - n);
    if (r == -EINTR) continue;
    if (r <= 0) break;
    n += r;
    if (n == (long)sizeof text) break;
  }
  sys3(NR_close, fd, 0, 0);
  if (n <= 0) return -1;
  u64 masks = status_mask(text, n, "SigCgt") | status_mask(text, n, "SigIgn") | status_mask(text, n, "SigBlk");
  return (masks & bit(sig)) != 0;
}

/** read() that waits out EINTR and, on a non-blocking fd, EAGAIN. */
static long read_waiting(int fd, char *buf, long n) {
  for (;;) {
    long r = sys3(NR_read, fd, buf, n);
    if (r == -EINTR) continue;
    if (r != -EAGAIN) return r;
    struct { int fd; short events, revents; } pfd = {fd, POLLIN, 0};
    sys5(NR_ppoll, &pfd, 1, 0, 0, 8);
  }
}

static __attribute__((noreturn)) void launcher(char **argv) {
  long pid = number(argv[0]), fallback = number(argv[1]), killed = number(argv[2]);
  long info = number(argv[3]), hold_in = number(argv[4]), hold_out = number(argv[5]);
  const char *registry = argv[6];
  if (pid <= 0 || fallback < 0 || killed < 0 || info < -1 || hold_in < -1 || hold_out < -1) fail("supervisor: bad arguments", -22, EXIT_LAUNCHER);
  // ps and pgrep go on showing the program people started (the exec named it after the fd).
  sys5(NR_prctl, PR_SET_NAME, "launcher", 0, 0, 0);

  u64 waited = bit(SIGINT) | bit(SIGTERM) | bit(SIGHUP) | bit(SIGQUIT) | bit(SIGCHLD);
  sys4(NR_rt_sigprocmask, SIG_SETMASK, &waited, 0, 8);
  int status = 0;
  for (;;) {
    // Reaped first, then waited for: SIGCHLD stays blocked, so an exit between
    // the two is a pending signal, not a lost one.
    long r = sys4(NR_wait4, pid, &status, WNOHANG, 0);
    if (r == pid) break;
    if (r < 0 && r != -EINTR) fail("launcher: wait for the sandbox", r, EXIT_LAUNCHER);
    long sig = sys4(NR_rt_sigtimedwait, &waited, 0, 0, 8);
    if (sig <= 0 || sig == SIGCHLD) continue;
    sys3(NR_kill, pid, sig, 0);
    if (fallback && handles_signal(pid, (int)sig) == 0) {
      if (!killed) killed = sig;
      sys3(NR_kill, pid, SIGKILL, 0);
    }
  }

  if (registry[0]) sys3(NR_unlinkat, AT_FDCWD, registry, 0);
  if (hold_in >= 0 && hold_in == hold_out) sys3(NR_shutdown, hold_in, SHUT_WR, 0);
  else if (hold_in >= 0) sys3(NR_close, hold_in, 0, 0);
  if (hold_out >= 0) {
    // Its `releasing` line: the lease is marked, every later call sees it gone.
    char buf[512];
    for (;;) {
      long n = read_waiting((int)hold_out, buf, sizeof buf);
      if (n <= 0) break;
      int nl = 0;
      for (long i = 0; i < n; i++) nl |= buf[i] == '\n';
      if (nl) break;
    }
    sys3(NR_close, hold_out, 0, 0);
  }

  int sig = status & 0x7f;
  long code = (status >> 8) & 0xff;
  if (killed) sig = (int)killed;
  if (info >= 0) {
    char line[64];
    char *p = put(line, sig ? "{\"event\":\"exited\",\"signal\":" : "{\"event\":\"exited\",\"code\":");
    p = put_decimal(p, sig ? sig : code);
    p = put(p, "}\n");
    write_all((int)info, line, p - line);
  }
  leave(sig ? 128 + sig : (int)code);
}

static __attribute__((noreturn)) void holder(char **argv) {
  long bin = number(argv[0]), json = number(argv[2]);
  char *lease = argv[1], *config = argv[3];
  if (bin < 0 || json < 0) fail("netsetup: supervisor: bad arguments", -22, EXIT_SYSTEM);
  sys5(NR_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
  sys5(NR_prctl, PR_SET_NAME, "netsetup", 0, 0, 0);
  // Out of the caller's session: no signal from their terminal (Ctrl-C, a hang-up)
  // reaches the release, and the caller cannot signal a root process otherwise.
  sys3(NR_setsid, 0, 0, 0);
  static const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU};
  struct { u64 handler, flags, restorer, mask; } ign = {1 /* SIG_IGN */, 0, 0, 0};
  for (unsigned i = 0; i < sizeof ignored / sizeof ignored[0]; i++) sys4(NR_rt_sigaction, ignored[i], &ign, 0, 8);
  u64 none = 0;
  sys4(NR_rt_sigprocmask, SIG_SETMASK, &none, 0, 8);

  char buf[256];
  while (read_waiting(0, buf, sizeof buf) > 0) {
  }

  char *args[] = {"netsetup", "release-held", lease, "--config", config, json ? "--json" : 0, 0};
  char *env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", 0};
  long r = sys5(NR_execveat, bin, "", args, env, AT_EMPTY_PATH);
  fail("netsetup: release the held lease: cannot execute netsetup again; the next netsetup call releases it", r, EXIT_SYSTEM);
}

__attribute__((noreturn, used)) void start(long *sp) {
  long argc = sp[0];
  char **argv = (char **)(sp + 1);
  if (argc == 9 && argv[1][0] == 'l') launcher(argv + 2);
  if (argc == 6 && argv[1][0] == 'h') holder(argv + 2);
  fail("supervisor: bad arguments", -22, EXIT_LAUNCHER);
}
