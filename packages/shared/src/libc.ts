// The libc functions both programs call through koffi. Each one is bound on its
// first use (a declaration costs 15-60 µs in a fresh process, and a netsetup
// connect uses about 11 of the 42);
// every wrapper returns the raw result; errno() reads the thread's errno right
// after a failing call (koffi preserves it).
import { koffi, type KoffiApi } from './native.ts';

type Fn = (...args: any[]) => any;

const DECLARATIONS = {
  mmap: 'void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)',
  mprotect: 'int mprotect(void *addr, size_t len, int prot)',
  munmap: 'int munmap(void *addr, size_t len)',
  clone: 'int clone(uintptr_t fn, uintptr_t stack, int flags, uintptr_t arg)',
  pipe2: 'int pipe2(_Out_ int *fds, int flags)',
  close: 'int close(int fd)',
  kill: 'int kill(int pid, int sig)',
  waitpid: 'int waitpid(int pid, _Out_ int *status, int options)',
  syscall: 'long syscall(long nr, ...)',
  getauxval: 'unsigned long getauxval(unsigned long type)',
  _exit: 'void _exit(int status)',
  socket: 'int socket(int domain, int type, int protocol)',
  setsockopt: 'int setsockopt(int fd, int level, int name, const int *value, uint32_t len)',
  getsockopt: 'int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)',
  bind: 'int bind(int fd, const void *addr, uint32_t len)',
  listen: 'int listen(int fd, int backlog)',
  accept4: 'int accept4(int fd, void *addr, void *len, int flags)',
  connect: 'int connect(int fd, const void *addr, uint32_t len)',
  shutdown: 'int shutdown(int fd, int how)',
  send: 'long send(int fd, const void *buf, size_t len, int flags)',
  recv: 'long recv(int fd, _Out_ void *buf, size_t len, int flags)',
  setns: 'int setns(int fd, int nstype)',
  flock: 'int flock(int fd, int operation)',
  ioctl: 'int ioctl(int fd, unsigned long request, ...)',
  prctl: 'int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)',
  execve: 'int execve(const char *path, const char **argv, const char **envp)',
  fexecve: 'int fexecve(int fd, const char **argv, const char **envp)',
  pthread_sigmask: 'int pthread_sigmask(int how, const void *set, void *old)',
  fcntl: 'int fcntl(int fd, int cmd, ...)',
  getrandom: 'long getrandom(_Out_ void *buf, size_t len, unsigned int flags)',
  memfd_create: 'int memfd_create(const char *name, unsigned int flags)',
  sigaction: 'int sigaction(int sig, const void *act, void *oldact)',
  setitimer: 'int setitimer(int which, const void *value, void *old)',
  setrlimit: 'int setrlimit(int resource, const void *rlim)',
  write: 'long write(int fd, const void *buf, size_t len)',
  poll: 'int poll(void *fds, unsigned long nfds, int timeout)',
  renameat2: 'int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)',
  // posix_spawn and its file actions (an opaque object, passed as a Buffer).
  posix_spawn: 'int posix_spawn(_Out_ int *pid, const char *path, void *actions, void *attr, const char **argv, const char **envp)',
  posix_spawn_file_actions_destroy: 'int posix_spawn_file_actions_destroy(void *actions)',
  posix_spawn_file_actions_adddup2: 'int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)',
  posix_spawn_file_actions_addopen: 'int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int flags, unsigned int mode)',
  posix_spawn_file_actions_addchdir_np: 'int posix_spawn_file_actions_addchdir_np(void *actions, const char *path)',
} as const;

export type Libc = { readonly [K in keyof typeof DECLARATIONS]: Fn } & { readonly k: KoffiApi };

let bound: Libc | undefined;

export function libc(): Libc {
  if (bound) return bound;
  const k = koffi();
  const lib = k.load(null);
  const table: Record<string, unknown> = { k };
  for (const [name, decl] of Object.entries(DECLARATIONS)) {
    Object.defineProperty(table, name, {
      configurable: true,
      enumerable: true,
      get() {
        const f = lib.func(decl) as Fn;
        Object.defineProperty(table, name, { value: f, enumerable: true });
        return f;
      },
    });
  }
  bound = table as Libc;
  return bound;
}

/** Whether libc() has loaded the FFI module already (it is not loaded just to ask). */
export function libcLoaded(): boolean {
  return bound !== undefined;
}

export function errno(): number {
  return libc().k.errno();
}
