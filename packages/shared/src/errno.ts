// Linux errno names and their usual messages, for error lines written to people.
const ERRNOS: [number, string, string][] = [
  [1, 'EPERM', 'Operation not permitted'],
  [2, 'ENOENT', 'No such file or directory'],
  [3, 'ESRCH', 'No such process'],
  [4, 'EINTR', 'Interrupted system call'],
  [5, 'EIO', 'Input/output error'],
  [7, 'E2BIG', 'Argument list too long'],
  [8, 'ENOEXEC', 'Exec format error'],
  [9, 'EBADF', 'Bad file descriptor'],
  [11, 'EAGAIN', 'Resource temporarily unavailable'],
  [12, 'ENOMEM', 'Cannot allocate memory'],
  [13, 'EACCES', 'Permission denied'],
  [14, 'EFAULT', 'Bad address'],
  [16, 'EBUSY', 'Device or resource busy'],
  [17, 'EEXIST', 'File exists'],
  [18, 'EXDEV', 'Invalid cross-device link'],
  [19, 'ENODEV', 'No such device'],
  [20, 'ENOTDIR', 'Not a directory'],
  [21, 'EISDIR', 'Is a directory'],
  [22, 'EINVAL', 'Invalid argument'],
  [23, 'ENFILE', 'Too many open files in system'],
  [24, 'EMFILE', 'Too many open files'],
  [26, 'ETXTBSY', 'Text file busy'],
  [28, 'ENOSPC', 'No space left on device'],
  [30, 'EROFS', 'Read-only file system'],
  [31, 'EMLINK', 'Too many links'],
  [32, 'EPIPE', 'Broken pipe'],
  [36, 'ENAMETOOLONG', 'File name too long'],
  [38, 'ENOSYS', 'Function not implemented'],
  [39, 'ENOTEMPTY', 'Directory not empty'],
  [40, 'ELOOP', 'Too many levels of symbolic links'],
  [61, 'ENODATA', 'No data available'],
  [87, 'EUSERS', 'Too many users'],
  [95, 'EOPNOTSUPP', 'Operation not supported'],
  [97, 'EAFNOSUPPORT', 'Address family not supported by protocol'],
  [98, 'EADDRINUSE', 'Address already in use'],
  [99, 'EADDRNOTAVAIL', 'Cannot assign requested address'],
  [100, 'ENETDOWN', 'Network is down'],
  [101, 'ENETUNREACH', 'Network is unreachable'],
  [105, 'ENOBUFS', 'No buffer space available'],
  [110, 'ETIMEDOUT', 'Connection timed out'],
  [111, 'ECONNREFUSED', 'Connection refused'],
  [113, 'EHOSTUNREACH', 'No route to host'],
];

// Indexed on first use: building the map at start-up costs ~0.1 ms of every run.
let byNumber: Map<number, { name: string; text: string }> | undefined;
const lookup = (errno: number): { name: string; text: string } | undefined => {
  byNumber ??= new Map(ERRNOS.map(([n, name, text]) => [n, { name, text }]));
  return byNumber.get(errno);
};

/** "Permission denied (EACCES)"; errno 0 stands for a result the program did not expect. */
export function describeErrno(errno: number): string {
  if (errno === 0) return 'unexpected result';
  const e = lookup(errno);
  return e ? `${e.text} (${e.name})` : `errno ${errno}`;
}

export function errnoName(errno: number): string {
  return lookup(errno)?.name ?? `errno ${errno}`;
}

export const ENOENT = 2;
export const EIO = 5;
export const EAGAIN = 11;
export const EEXIST = 17;
export const ENODEV = 19;
export const ENOTDIR = 20;
