// Context switch for x86_64, System V ABI.
//
// Saved state, pushed on the outgoing stack (low to high address):
//   [sp+0]  MXCSR (4 bytes)  [sp+4] x87 control word (2 bytes)  [sp+6..15] padding
//   [sp+16] r15  r14  r13  r12  rbx  rbp   [sp+64] return address
// Exactly the registers the ABI makes callee-saved: rbx, rbp, r12-r15, rsp, and the control
// bits of MXCSR and the x87 FPU. Everything else is caller-saved, so the C caller has spilled it.
#if defined(__x86_64__)

    .text
    .globl  sprout_stack_switch
    .type   sprout_stack_switch, @function
    .p2align 4
// void sprout_stack_switch(void **save_sp /* rdi */, void *load_sp /* rsi */)
sprout_stack_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $16, %rsp
    .cfi_adjust_cfa_offset 16
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    // The incoming stack has the same layout, so the unwind rules above stay valid.
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $16, %rsp
    .cfi_adjust_cfa_offset -16
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   sprout_stack_switch, .-sprout_stack_switch

// The first code a new greenlet runs: `ret` from sprout_stack_switch lands here with
// r12 = arg, r13 = entry, rbp = 0 and rsp 16-byte aligned, so the call below enters `entry`
// exactly as a normal call would (rsp % 16 == 8 at its first instruction). The undefined
// return address tells DWARF unwinders (and the zero rbp frame-pointer walkers) to stop here.
    .globl  sprout_stack_trampoline
    .hidden sprout_stack_trampoline
    .type   sprout_stack_trampoline, @function
    .p2align 4
sprout_stack_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2                             // entry must never return
    .cfi_endproc
    .size   sprout_stack_trampoline, .-sprout_stack_trampoline

// void *sprout_stack_init(void *top /* rdi */, void (*entry)(void *) /* rsi */, void *arg /* rdx */)
// Builds below `top` the frame that sprout_stack_switch pops. With A = align16(top) - 16:
//   [A, A+16)  zeros; rsp after `ret` is A, so the trampoline starts 16-byte aligned
//   A-8        return address = sprout_stack_trampoline
//   A-16..-56  rbp = 0, rbx = 0, r12 = arg, r13 = entry, r14 = 0, r15 = 0
//   A-72       MXCSR and x87 control word of the creator (the returned sp)
    .globl  sprout_stack_init
    .type   sprout_stack_init, @function
    .p2align 4
sprout_stack_init:
    .cfi_startproc
    movq    %rdi, %rax
    andq    $-16, %rax              // align the top
    subq    $16, %rax               // 16 bytes of zeros above the return slot: rsp after ret
    movq    $0, (%rax)
    movq    $0, 8(%rax)
    leaq    sprout_stack_trampoline(%rip), %rcx
    movq    %rcx, -8(%rax)          // return address -> trampoline; rsp after ret = %rax (aligned)
    movq    $0, -16(%rax)           // rbp = 0: frame-pointer walkers stop at the root
    movq    $0, -24(%rax)           // rbx
    movq    %rdx, -32(%rax)         // r12 = arg
    movq    %rsi, -40(%rax)         // r13 = entry
    movq    $0, -48(%rax)           // r14
    movq    $0, -56(%rax)           // r15
    subq    $72, %rax               // 16 bytes of FP control state at the new sp
    movq    $0, (%rax)
    movq    $0, 8(%rax)
    stmxcsr (%rax)                  // the creator's rounding mode and exception masks,
    andl    $~0x3f, (%rax)          // without its sticky exception flags (as on aarch64)
    fnstcw  4(%rax)
    ret
    .cfi_endproc
    .size   sprout_stack_init, .-sprout_stack_init

#endif

    .section .note.GNU-stack,"",@progbits
