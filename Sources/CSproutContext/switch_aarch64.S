// Context switch for AArch64, AAPCS64 (Linux, ELF).
//
// Saved state, stored in one 176-byte frame on the outgoing stack (low to high address):
//   [sp+0]   x19  x20     [sp+16]  x21  x22     [sp+32]  x23  x24
//   [sp+48]  x25  x26     [sp+64]  x27  x28     [sp+80]  x29 (fp)  x30 (lr)
//   [sp+96]  d8   d9      [sp+112] d10  d11     [sp+128] d12  d13     [sp+144] d14  d15
//   [sp+160] FPCR (8 bytes)  [sp+168] padding
// Exactly the state the ABI makes callee-saved: x19-x29, the return address in x30, sp, the
// low 64 bits of v8-v15, and the FP control register (rounding mode, flush-to-zero, ...).
// FPSR (the sticky exception flags) is caller-saved and is not switched. x18 is the platform
// register and is never touched. sp stays 16-byte aligned throughout (176 = 11 * 16).
#if defined(__aarch64__)

// Branch Target Identification: functions that may be called indirectly start with a
// `bti c` landing pad. It is written as its hint encoding so that any assembler accepts it,
// and it is a no-op on cores (and in processes) without BTI.
#define SPROUT_BTI_C hint #34

    .text
    .globl  sprout_stack_switch
    .type   sprout_stack_switch, %function
    .p2align 4
// void sprout_stack_switch(void **save_sp /* x0 */, void *load_sp /* x1 */)
sprout_stack_switch:
    .cfi_startproc
    SPROUT_BTI_C
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    .cfi_offset x19, -176
    .cfi_offset x20, -168
    .cfi_offset x21, -160
    .cfi_offset x22, -152
    .cfi_offset x23, -144
    .cfi_offset x24, -136
    .cfi_offset x25, -128
    .cfi_offset x26, -120
    .cfi_offset x27, -112
    .cfi_offset x28, -104
    .cfi_offset x29, -96
    .cfi_offset x30, -88
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x10, sp
    str     x10, [x0]               // *save_sp = sp
    mov     sp, x1                  // continue on the other stack; its frame has this layout
    ldr     x10, [sp, #160]
    cmp     x9, x10                 // writing FPCR can be slow on some cores: skip it when
    b.eq    1f                      // the incoming value is the one already in effect
    msr     fpcr, x10
1:
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #176
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    ret
    .cfi_endproc
    .size   sprout_stack_switch, .-sprout_stack_switch

// The first code a new greenlet runs: the `ret` at the end of sprout_stack_switch lands here
// (a return, not an indirect branch, so no BTI landing pad is needed) with x19 = arg,
// x20 = entry, x29 = 0 and sp 16-byte aligned, so the call below enters `entry` exactly as a
// normal call would. The frame record `entry` pushes holds fp = 0, which ends frame-pointer
// walks; the undefined return address tells DWARF unwinders to stop here.
    .globl  sprout_stack_trampoline
    .hidden sprout_stack_trampoline
    .type   sprout_stack_trampoline, %function
    .p2align 4
sprout_stack_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x19
    mov     x29, #0
    blr     x20
    brk     #0                      // entry must never return
    .cfi_endproc
    .size   sprout_stack_trampoline, .-sprout_stack_trampoline

// void *sprout_stack_init(void *top /* x0 */, void (*entry)(void *) /* x1 */, void *arg /* x2 */)
// Builds below `top` the frame that sprout_stack_switch restores. With T = align16(top), the
// returned sp is T - 176, and sp after the restoring `add` is T (16-byte aligned):
//   x19 = arg, x20 = entry, x21-x28 = 0, x29 = 0, x30 = sprout_stack_trampoline,
//   d8-d15 = 0, FPCR = the creator's FPCR.
    .globl  sprout_stack_init
    .type   sprout_stack_init, %function
    .p2align 4
sprout_stack_init:
    .cfi_startproc
    SPROUT_BTI_C
    and     x9, x0, #-16            // align the top
    sub     x0, x9, #176            // the new sp
    stp     x2,  x1,  [x0, #0]      // x19 = arg, x20 = entry
    stp     xzr, xzr, [x0, #16]     // x21, x22
    stp     xzr, xzr, [x0, #32]     // x23, x24
    stp     xzr, xzr, [x0, #48]     // x25, x26
    stp     xzr, xzr, [x0, #64]     // x27, x28
    adr     x10, sprout_stack_trampoline
    stp     xzr, x10, [x0, #80]     // x29 = 0 (root of the frame chain), x30 = trampoline
    stp     xzr, xzr, [x0, #96]     // d8,  d9
    stp     xzr, xzr, [x0, #112]    // d10, d11
    stp     xzr, xzr, [x0, #128]    // d12, d13
    stp     xzr, xzr, [x0, #144]    // d14, d15
    mrs     x11, fpcr               // the creator's rounding mode, flush-to-zero, ...
    stp     x11, xzr, [x0, #160]    // FPCR, padding
    ret
    .cfi_endproc
    .size   sprout_stack_init, .-sprout_stack_init

// When the compiler builds with -mbranch-protection, mark this object compatible so that the
// linker keeps the BTI / PAC property of the whole program (every indirect-call target above
// starts with `bti c`; no return address is signed here, and none needs to be).
#if defined(__ARM_FEATURE_BTI_DEFAULT) || defined(__ARM_FEATURE_PAC_DEFAULT)
#if defined(__ARM_FEATURE_BTI_DEFAULT)
#define SPROUT_FEATURE_BTI 1
#else
#define SPROUT_FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT)
#define SPROUT_FEATURE_PAC 2
#else
#define SPROUT_FEATURE_PAC 0
#endif
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .long   4                       // name size ("GNU\0")
    .long   16                      // descriptor size
    .long   5                       // NT_GNU_PROPERTY_TYPE_0
    .asciz  "GNU"
    .long   0xc0000000              // GNU_PROPERTY_AARCH64_FEATURE_1_AND
    .long   4                       // property data size
    .long   (SPROUT_FEATURE_BTI | SPROUT_FEATURE_PAC)
    .long   0                       // pad to 8 bytes
    .popsection
#endif

#endif

    .section .note.GNU-stack,"",@progbits
