// The sandbox stub (arm64): the same program as x86_64.S, see there for the
// layout of the argument block and of the steps. clone() passes the block in x0.
        .text
        .globl stub
stub:
        mov     x19, x0
        ldr     x20, [x19]
        ldr     x21, [x19, #8]
        mov     w22, #0
next_step:
        cbz     x21, out_of_steps
        ldr     w23, [x20, #56]
        ldp     x0, x1, [x20, #8]
        ldp     x2, x3, [x20, #24]
        ldp     x4, x5, [x20, #40]
        ldr     x24, [x19, #24]
        tbz     w23, #3, 1f
        mov     x0, x24
1:      tbz     w23, #4, 2f
        mov     x1, x24
2:      tbz     w23, #5, 3f
        mov     x2, x24
3:      ldr     x8, [x20]
        svc     #0
        tbz     w23, #1, 4f
        str     x0, [x19, #24]
4:      cmn     x0, #4095
        b.hs    failed
        tbz     w23, #2, advance
        ldrsw   x9, [x20, #60]
        cmp     x0, x9
        b.eq    advance
        mov     x0, #0
failed:
        neg     w9, w0
        str     w22, [x19, #32]
        str     w9, [x19, #36]
        mov     x8, #64
        ldr     w0, [x19, #16]
        add     x1, x19, #32
        mov     x2, #8
        svc     #0
        tbz     w23, #0, out_of_steps
advance:
        add     x20, x20, #64
        add     w22, w22, #1
        sub     x21, x21, #1
        b       next_step
out_of_steps:
        mov     x8, #94
        mov     x0, #125
        svc     #0
        brk     #0
