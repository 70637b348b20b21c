# The launcher's signal handler for the moments before it execs the supervisor
# (packages/shared/src/supervisor.ts): any thread that takes a forwarded signal
# sends it on to the main thread with tgkill. The main thread blocks it, so it
# stays pending there across the exec, and the supervisor takes it.
    .text
    .globl redirect
redirect:
    endbr64
    mov %edi, %r8d          # the signal
    mov $39, %eax           # getpid
    syscall
    mov %eax, %edi          # tgid
    mov %eax, %esi          # the main thread's tid is the tgid
    mov %r8d, %edx
    mov $234, %eax          # tgkill
    syscall
    ret
