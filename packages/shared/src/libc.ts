// The libc functions both programs call through koffi, bound lazily and once.
// Every wrapper returns the raw result; errno() reads the thread's errno right
// after a failing call (koffi preserves it).
import { koffi } from './native.ts';

type Fn = (...args: any[]) => any;

function bind() {
  const k = koffi();
  const lib = k.load(null);
  const f = (decl: string): Fn => lib.func(decl) as Fn;
  return {
    k,
    mmap: f('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'),
    mprotect: f('int mprotect(void *addr, size_t len, int prot)'),
    munmap: f('int munmap(void *addr, size_t len)'),
    clone: f('int clone(uintptr_t fn, uintptr_t stack, int flags, uintptr_t arg)'),
    pipe2: f('int pipe2(_Out_ int *fds, int flags)'),
    close: f('int close(int fd)'),
    kill: f('int kill(int pid, int sig)'),
    waitpid: f('int waitpid(int pid, _Out_ int *status, int options)'),
    syscall: f('long syscall(long nr, ...)'),
    getauxval: f('unsigned long getauxval(unsigned long type)'),
    _exit: f('void _exit(int status)'),
    socket: f('int socket(int domain, int type, int protocol)'),
    setsockopt: f('int setsockopt(int fd, int level, int name, const int *value, uint32_t len)'),
    send: f('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: f('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    setns: f('int setns(int fd, int nstype)'),
    flock: f('int flock(int fd, int operation)'),
    ioctl: f('int ioctl(int fd, unsigned long request, ...)'),
    prctl: f('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
    execve: f('int execve(const char *path, const char **argv, const char **envp)'),
    fcntl: f('int fcntl(int fd, int cmd, ...)'),
  };
}

let bound: ReturnType<typeof bind> | undefined;
export function libc(): ReturnType<typeof bind> {
  bound ??= bind();
  return bound;
}

export function errno(): number {
  return libc().k.errno();
}
