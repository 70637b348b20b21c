// The launcher's signal handler for the moments before it execs the supervisor
// (packages/shared/src/supervisor.ts): any thread that takes a forwarded signal
// sends it on to the main thread with tgkill. The main thread blocks it, so it
// stays pending there across the exec, and the supervisor takes it.
    .text
    .globl redirect
redirect:
    mov w9, w0              // the signal
    mov x8, #172            // getpid
    svc #0
    mov w1, w0              // the main thread's tid is the tgid
    mov w2, w9
    mov x8, #131            // tgkill
    svc #0
    ret
