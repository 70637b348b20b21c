# The sandbox stub (x86_64): runs in the CLONE_VM child made by glibc clone(),
# which calls it with the argument block in rdi. It executes a list of raw
# syscalls prepared by the launcher and never returns: the list ends in execve
# or exit_group.
#
# argument block:  +0 steps  +8 count  +16 error fd (i32)  +24 saved result
#                  +32 failure record {u32 step index, i32 errno}
# step (64 bytes): +0 syscall number  +8..+48 six arguments
#                  +56 flags (u32)    +60 expected result (i32)
# flags: 1 soft (report, go on)  2 save the result  4 check the expected result
#        8/16/32 replace argument 0/1/2 with the saved result
# A failed step writes its record to the error fd (close-on-exec, so EOF there
# after the last step means the exec happened); a failed hard step then exits 125.
        .intel_syntax noprefix
        .text
        .globl stub
stub:
        mov     r12, rdi
        mov     r13, [r12]
        mov     r14, [r12 + 8]
        xor     r15d, r15d
next_step:
        test    r14, r14
        jz      out_of_steps
        mov     ebx, [r13 + 56]
        mov     rdi, [r13 + 8]
        mov     rsi, [r13 + 16]
        mov     rdx, [r13 + 24]
        mov     r10, [r13 + 32]
        mov     r8, [r13 + 40]
        mov     r9, [r13 + 48]
        test    bl, 8
        jz      1f
        mov     rdi, [r12 + 24]
1:      test    bl, 16
        jz      2f
        mov     rsi, [r12 + 24]
2:      test    bl, 32
        jz      3f
        mov     rdx, [r12 + 24]
3:      mov     rax, [r13]
        syscall
        test    bl, 2
        jz      4f
        mov     [r12 + 24], rax
4:      cmp     rax, -4095
        jae     failed
        test    bl, 4
        jz      advance
        movsxd  rcx, dword ptr [r13 + 60]
        cmp     rax, rcx
        je      advance
        xor     eax, eax
failed:
        neg     eax
        mov     [r12 + 32], r15d
        mov     [r12 + 36], eax
        mov     eax, 1
        mov     edi, [r12 + 16]
        lea     rsi, [r12 + 32]
        mov     edx, 8
        syscall
        test    bl, 1
        jz      out_of_steps
advance:
        add     r13, 64
        inc     r15d
        dec     r14
        jmp     next_step
out_of_steps:
        mov     eax, 231
        mov     edi, 125
        syscall
        hlt
