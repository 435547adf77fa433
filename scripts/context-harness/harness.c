// Stand-alone harness for the per-architecture context-switch assembly
// (Sources/CSproutContext/switch_<arch>.S). Plain C, no Swift: it is linked with the one .S
// file of its architecture and calls sprout_stack_switch / sprout_stack_init directly.
//
// Each check prints PASS/FAIL (or SKIP, not counted); the last line is "N passed, M failed"
// and the exit code is 0 only if nothing failed. The number of ping-pong round trips can be
// changed with HARNESS_ROUNDS (default 1000000). HARNESS_SKIP_ASYNC_UNWIND=<reason> skips the
// check that unwinds from a profiling signal taken inside sprout_stack_switch.
#define _GNU_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <unwind.h>

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "harness.c supports x86_64 and aarch64 only"
#endif

// The contract under test (copied from CSproutContext.h so that nothing else is needed).
void sprout_stack_switch(void **save_sp, void *load_sp);
void *sprout_stack_init(void *top, void (*entry)(void *arg), void *arg);
// Hidden, but visible within this link: the address new contexts return into.
extern char sprout_stack_trampoline[];

// MARK: - Reporting

static int n_passed, n_failed;

static void __attribute__((format(printf, 2, 3))) check(int ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "PASS: " : "FAIL: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    if (ok) n_passed++; else n_failed++;
    fflush(stdout);
}

static void __attribute__((format(printf, 1, 2))) skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

// MARK: - Stacks

#define STACK_SIZE (256u * 1024u)

// A stack of STACK_SIZE usable bytes with an inaccessible guard page below it; returns its top.
static char *stack_new(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(base, page, PROT_NONE) != 0) {
        perror("mprotect");
        exit(2);
    }
    return base + page + STACK_SIZE;
}

static void stack_free(char *top) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap(top - STACK_SIZE - page, STACK_SIZE + page);
}

// The saved stack pointers of the main context and of the context under test.
static void *main_sp;
static void *ctx_sp;

// MARK: - Assembly helpers
//
// probe_entry: an entry function that records, at its very first instruction, sp, the frame
// pointer, the return address, its argument, d8-d15 (aarch64) and the FP control state, then
// tail-calls probe_entry_c with the argument untouched.
//
// regs_test(save_sp, load_sp, pattern, out): loads `pattern` into every callee-saved register
// (GPRs including the frame pointer, and d8-d15 on aarch64), calls sprout_stack_switch(save_sp,
// load_sp), and when that returns stores those registers and the change of sp across the call
// into `out`. It preserves the registers of its own caller like any function.

struct probe_record {
    uint64_t sp, fp, ra, arg;   // 0, 8, 16, 24
    uint64_t d[8];              // 32 .. 95 (aarch64: d8-d15)
    uint64_t fpctl;             // 96: FPCR, or MXCSR | x87 control word << 32
};
struct probe_record probe_rec;
void probe_entry(void *arg);
void probe_entry_c(void *arg);
void regs_test(void **save_sp, void *load_sp, const uint64_t *pattern, uint64_t *out);

#if defined(__x86_64__)
#define N_GPR 6                 // rbx, rbp, r12, r13, r14, r15
#define N_FPR 0
static const char *const gpr_names[N_GPR] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
static const char *const fpr_names[1] = {""};
__asm__(
    "    .text\n"
    "    .globl probe_entry\n"
    "    .type probe_entry, @function\n"
    "probe_entry:\n"
    "    leaq probe_rec(%rip), %rax\n"
    "    movq %rsp, 0(%rax)\n"
    "    movq %rbp, 8(%rax)\n"
    "    movq (%rsp), %rcx\n"
    "    movq %rcx, 16(%rax)\n"
    "    movq %rdi, 24(%rax)\n"
    "    stmxcsr 96(%rax)\n"
    "    fnstcw 100(%rax)\n"
    "    jmp probe_entry_c\n"
    "    .size probe_entry, .-probe_entry\n"
    "\n"
    "    .globl regs_test\n"
    "    .type regs_test, @function\n"
    "regs_test:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $24, %rsp\n"              // rsp % 16 == 0 for the call below
    "    movq %rcx, 0(%rsp)\n"          // out
    "    movq %rsp, 8(%rsp)\n"          // sp before the switch
    "    movq 0(%rdx), %rbx\n"
    "    movq 8(%rdx), %rbp\n"
    "    movq 16(%rdx), %r12\n"
    "    movq 24(%rdx), %r13\n"
    "    movq 32(%rdx), %r14\n"
    "    movq 40(%rdx), %r15\n"
    "    call sprout_stack_switch\n"
    "    movq 0(%rsp), %rax\n"
    "    movq %rbx, 0(%rax)\n"
    "    movq %rbp, 8(%rax)\n"
    "    movq %r12, 16(%rax)\n"
    "    movq %r13, 24(%rax)\n"
    "    movq %r14, 32(%rax)\n"
    "    movq %r15, 40(%rax)\n"
    "    movq %rsp, %rcx\n"
    "    subq 8(%rsp), %rcx\n"
    "    movq %rcx, 48(%rax)\n"         // sp delta, must be 0
    "    addq $24, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    "    .size regs_test, .-regs_test\n");

// FP control state: MXCSR control bits (status flags 0-5 ignored) and the x87 control word.
typedef struct { uint32_t mxcsr; uint16_t cw; } fpctl_t;
static fpctl_t fpctl_get(void) {
    fpctl_t s;
    __asm__ volatile("stmxcsr %0" : "=m"(s.mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(s.cw));
    s.mxcsr &= ~0x3fu;
    return s;
}
static void fpctl_set(fpctl_t s) {
    uint32_t m = s.mxcsr;
    __asm__ volatile("ldmxcsr %0" : : "m"(m));
    __asm__ volatile("fldcw %0" : : "m"(s.cw));
}
static int fpctl_eq(fpctl_t a, fpctl_t b) { return a.mxcsr == b.mxcsr && a.cw == b.cw; }
static void fpctl_str(fpctl_t s, char *buf, size_t n) {
    snprintf(buf, n, "MXCSR=%#06x CW=%#06x", s.mxcsr, s.cw);
}
static fpctl_t fpctl_from_probe(uint64_t v) {
    fpctl_t s = {(uint32_t)v & ~0x3fu, (uint16_t)(v >> 32)};
    return s;
}
// A: round toward zero + flush-to-zero (SSE); x87 round down, double precision.
static fpctl_t fpctl_variant_a(fpctl_t o) {
    fpctl_t s = {(o.mxcsr & ~0xe000u) | 0x6000u | 0x8000u, (uint16_t)((o.cw & ~0x0f00u) | 0x0400u | 0x0200u)};
    return s;
}
// B: round up (SSE and x87), x87 single precision.
static fpctl_t fpctl_variant_b(fpctl_t o) {
    fpctl_t s = {(o.mxcsr & ~0xe000u) | 0x4000u, (uint16_t)((o.cw & ~0x0f00u) | 0x0800u)};
    return s;
}

#elif defined(__aarch64__)
#define N_GPR 11                // x19-x28, x29
#define N_FPR 8                 // d8-d15
static const char *const gpr_names[N_GPR] = {"x19", "x20", "x21", "x22", "x23", "x24",
                                             "x25", "x26", "x27", "x28", "x29"};
static const char *const fpr_names[N_FPR] = {"d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15"};
__asm__(
    "    .text\n"
    "    .globl probe_entry\n"
    "    .type probe_entry, %function\n"
    "    .p2align 2\n"
    "probe_entry:\n"
    "    hint #34\n"                    // bti c
    "    adrp x9, probe_rec\n"
    "    add x9, x9, :lo12:probe_rec\n"
    "    mov x10, sp\n"
    "    str x10, [x9, #0]\n"
    "    str x29, [x9, #8]\n"
    "    str x30, [x9, #16]\n"
    "    str x0, [x9, #24]\n"
    "    stp d8, d9, [x9, #32]\n"
    "    stp d10, d11, [x9, #48]\n"
    "    stp d12, d13, [x9, #64]\n"
    "    stp d14, d15, [x9, #80]\n"
    "    mrs x10, fpcr\n"
    "    str x10, [x9, #96]\n"
    "    b probe_entry_c\n"
    "    .size probe_entry, .-probe_entry\n"
    "\n"
    // Frame (176 bytes): [0] x29 x30 [16..95] x19-x28 [96..159] d8-d15 [160] out, sp before.
    "    .globl regs_test\n"
    "    .type regs_test, %function\n"
    "    .p2align 2\n"
    "regs_test:\n"
    "    hint #34\n"                    // bti c
    "    stp x29, x30, [sp, #-176]!\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    mov x9, sp\n"
    "    stp x3, x9, [sp, #160]\n"      // out, sp before the switch
    "    ldp x19, x20, [x2, #0]\n"
    "    ldp x21, x22, [x2, #16]\n"
    "    ldp x23, x24, [x2, #32]\n"
    "    ldp x25, x26, [x2, #48]\n"
    "    ldp x27, x28, [x2, #64]\n"
    "    ldr x29, [x2, #80]\n"
    "    ldp d8, d9, [x2, #88]\n"
    "    ldp d10, d11, [x2, #104]\n"
    "    ldp d12, d13, [x2, #120]\n"
    "    ldp d14, d15, [x2, #136]\n"
    "    bl sprout_stack_switch\n"
    "    ldp x9, x10, [sp, #160]\n"
    "    stp x19, x20, [x9, #0]\n"
    "    stp x21, x22, [x9, #16]\n"
    "    stp x23, x24, [x9, #32]\n"
    "    stp x25, x26, [x9, #48]\n"
    "    stp x27, x28, [x9, #64]\n"
    "    str x29, [x9, #80]\n"
    "    stp d8, d9, [x9, #88]\n"
    "    stp d10, d11, [x9, #104]\n"
    "    stp d12, d13, [x9, #120]\n"
    "    stp d14, d15, [x9, #136]\n"
    "    mov x11, sp\n"
    "    sub x11, x11, x10\n"
    "    str x11, [x9, #152]\n"         // sp delta, must be 0
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp x29, x30, [sp], #176\n"
    "    ret\n"
    "    .size regs_test, .-regs_test\n");

// FP control state: the whole FPCR.
typedef struct { uint64_t fpcr; } fpctl_t;
static fpctl_t fpctl_get(void) {
    fpctl_t s;
    __asm__ volatile("mrs %0, fpcr" : "=r"(s.fpcr));
    return s;
}
static void fpctl_set(fpctl_t s) { __asm__ volatile("msr fpcr, %0" : : "r"(s.fpcr)); }
static int fpctl_eq(fpctl_t a, fpctl_t b) { return a.fpcr == b.fpcr; }
static void fpctl_str(fpctl_t s, char *buf, size_t n) {
    snprintf(buf, n, "FPCR=%#010llx", (unsigned long long)s.fpcr);
}
static fpctl_t fpctl_from_probe(uint64_t v) {
    fpctl_t s = {v};
    return s;
}
#define FPCR_RMODE (3ull << 22)
// A: round toward zero (RMode = 0b11), flush-to-zero (FZ, bit 24).
static fpctl_t fpctl_variant_a(fpctl_t o) {
    fpctl_t s = {(o.fpcr & ~FPCR_RMODE) | (3ull << 22) | (1ull << 24)};
    return s;
}
// B: round toward +infinity (RMode = 0b01), default NaN (DN, bit 25).
static fpctl_t fpctl_variant_b(fpctl_t o) {
    fpctl_t s = {(o.fpcr & ~FPCR_RMODE & ~(1ull << 24)) | (1ull << 22) | (1ull << 25)};
    return s;
}
#endif

#define N_REGS (N_GPR + N_FPR)

// 1/3 computed at run time in the current rounding mode.
static double third(void) {
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

// MARK: - Check 1: a new context's first frame

// libgcc's _Unwind_Backtrace reports the frame whose return address is undefined and then
// one more, outermost pseudo-frame with IP 0; other unwinders may omit the latter.
struct unwind_state {
    int frames;
    uintptr_t ip[16];
};

static _Unwind_Reason_Code unwind_cb(struct _Unwind_Context *uc, void *p) {
    struct unwind_state *st = p;
    if (st->frames < 16) st->ip[st->frames] = (uintptr_t)_Unwind_GetIP(uc);
    if (++st->frames > 64) return _URC_END_OF_STACK; // a runaway walk; reported as too deep
    return _URC_NO_REASON;
}

static uint64_t probe_saved_fp, probe_saved_ra, probe_frame;
static struct unwind_state probe_unwind;
static int probe_unwind_rc;

// Reached by a tail call from probe_entry, so its caller is the trampoline.
__attribute__((noinline, optimize("no-omit-frame-pointer"))) void probe_entry_c(void *arg) {
    (void)arg;
    void **fp = __builtin_frame_address(0);
    probe_frame = (uint64_t)(uintptr_t)fp;
    probe_saved_fp = (uint64_t)(uintptr_t)fp[0];   // the caller's frame pointer (x86_64 and aarch64)
    probe_saved_ra = (uint64_t)(uintptr_t)fp[1];   // the return address into the caller
    memset(&probe_unwind, 0, sizeof probe_unwind);
    probe_unwind_rc = _Unwind_Backtrace(unwind_cb, &probe_unwind);
    sprout_stack_switch(&ctx_sp, main_sp);
    abort(); // never resumed
}

static int in_trampoline(uint64_t addr) {
    uintptr_t t = (uintptr_t)sprout_stack_trampoline;
    return addr > t && addr <= t + 32;
}

static void check_new_context(void) {
    static const int misalign[] = {0, 1, 7, 8, 9, 15};
    const int n = (int)(sizeof misalign / sizeof misalign[0]);
    int ok_align = 1, ok_fp = 1, ok_saved_fp = 1, ok_ra = 1, ok_arg = 1, ok_fpr = 1, ok_range = 1;
    int ok_unwind = 1, ok_frame_align = 1;
    char detail[256] = "", unwind_detail[256] = "";
    for (int i = 0; i < n; i++) {
        char *top = stack_new();
        char *t = top - misalign[i];
        memset(&probe_rec, 0xee, sizeof probe_rec);
        probe_saved_fp = probe_saved_ra = 0xdeadbeef;
        void *arg = (void *)(uintptr_t)(0x5eed0000u + (unsigned)i);
        ctx_sp = sprout_stack_init(t, probe_entry, arg);
        sprout_stack_switch(&main_sp, ctx_sp);
        uint64_t sp = probe_rec.sp;
#if defined(__x86_64__)
        int aligned = (sp + 8) % 16 == 0;   // a call pushed 8 bytes onto a 16-aligned stack
#else
        int aligned = sp % 16 == 0;
#endif
        if (!aligned) {
            ok_align = 0;
            snprintf(detail, sizeof detail, "top-%d: sp=%#llx", misalign[i], (unsigned long long)sp);
        }
        if (!(sp <= (uint64_t)(uintptr_t)t && sp > (uint64_t)(uintptr_t)t - 256)) ok_range = 0;
        if (probe_rec.fp != 0) ok_fp = 0;
        if (probe_saved_fp != 0) ok_saved_fp = 0;
        if (probe_frame % 16 != 0) ok_frame_align = 0;
        if (!in_trampoline(probe_rec.ra) || probe_saved_ra != probe_rec.ra) ok_ra = 0;
        if (probe_rec.arg != (uint64_t)(uintptr_t)arg) ok_arg = 0;
        for (int r = 0; r < N_FPR; r++)
            if (probe_rec.d[r] != 0) ok_fpr = 0;
        // The walk ends at the trampoline: its frame is the last one with a non-zero IP.
        int last = -1;
        for (int f = 0; f < probe_unwind.frames && f < 16; f++)
            if (probe_unwind.ip[f] != 0) last = f;
        if (probe_unwind_rc != _URC_END_OF_STACK || probe_unwind.frames > 8 || last < 0 ||
            !in_trampoline(probe_unwind.ip[last])) {
            ok_unwind = 0;
            size_t len = (size_t)snprintf(unwind_detail, sizeof unwind_detail, "; ips:");
            for (int f = 0; f < probe_unwind.frames && f < 16 && len < sizeof unwind_detail; f++)
                len += (size_t)snprintf(unwind_detail + len, sizeof unwind_detail - len, " %#lx",
                                        (unsigned long)probe_unwind.ip[f]);
        }
        stack_free(top);
    }
#if defined(__x86_64__)
    check(ok_align, "new context: (rsp + 8) %% 16 == 0 at entry's first instruction, for top misaligned by 0..15 %s", detail);
#else
    check(ok_align, "new context: sp %% 16 == 0 at entry's first instruction, for top misaligned by 0..15 %s", detail);
#endif
    check(ok_range, "new context: entry's first sp lies at or just below the (aligned) top");
    check(ok_frame_align, "new context: __builtin_frame_address(0) in the entry function is 16-byte aligned");
    check(ok_fp, "new context: frame pointer is 0 at entry's first instruction");
    check(ok_saved_fp, "new context: the frame pointer saved in entry's frame (end of the fp chain) is 0");
    check(ok_ra, "new context: entry returns into sprout_stack_trampoline (ra=%#llx, trampoline=%p)",
          (unsigned long long)probe_rec.ra, (void *)sprout_stack_trampoline);
    check(ok_arg, "new context: entry receives its argument");
    if (N_FPR > 0)
        check(ok_fpr, "new context: d8-d15 are 0 at entry");
    check(ok_unwind, "new context: DWARF unwinding stops cleanly at the trampoline (rc=%d, frames=%d%s)",
          probe_unwind_rc, probe_unwind.frames, unwind_detail);
}

// MARK: - Checks 2 and 3: callee-saved registers

static uint64_t pat_a[N_REGS], pat_b[N_REGS];
static uint64_t out_a[N_REGS + 1], out_b[N_REGS + 1];

static void regs_entry(void *arg) {
    (void)arg;
    regs_test(&ctx_sp, main_sp, pat_b, out_b);
    sprout_stack_switch(&ctx_sp, main_sp);
    abort();
}

static void report_regs(const char *who, const uint64_t *pat, const uint64_t *out) {
    char bad[512] = "";
    size_t len = 0;
    int ok = 1;
    for (int r = 0; r < N_GPR; r++) {
        if (out[r] != pat[r]) {
            ok = 0;
            len += (size_t)snprintf(bad + len, sizeof bad - len, " %s=%#llx(want %#llx)", gpr_names[r],
                                    (unsigned long long)out[r], (unsigned long long)pat[r]);
            if (len >= sizeof bad) len = sizeof bad - 1;
        }
    }
    int sp_ok = out[N_REGS] == 0;
    check(ok && sp_ok, "callee-saved GPRs (%d incl. frame pointer) and sp survive a switch, context %s%s%s", N_GPR,
          who, bad, sp_ok ? "" : " sp moved");
    if (N_FPR == 0) {
        skip("callee-saved FP registers, context %s: none in this ABI", who);
        return;
    }
    ok = 1;
    bad[0] = 0;
    len = 0;
    for (int r = N_GPR; r < N_REGS; r++) {
        if (out[r] != pat[r]) {
            ok = 0;
            len += (size_t)snprintf(bad + len, sizeof bad - len, " %s=%#llx(want %#llx)", fpr_names[r - N_GPR],
                                    (unsigned long long)out[r], (unsigned long long)pat[r]);
            if (len >= sizeof bad) len = sizeof bad - 1;
        }
    }
    check(ok, "callee-saved FP registers d8-d15 survive a switch, context %s%s", who, bad);
}

static void check_registers(void) {
    for (int r = 0; r < N_REGS; r++) {
        pat_a[r] = 0xa11ce00000000000ull ^ ((uint64_t)(r + 1) * 0x0101010101ull);
        pat_b[r] = 0xb0b0000000000000ull ^ ((uint64_t)(r + 1) * 0x1000200030ull) ^ ~0ull;
    }
    memset(out_a, 0, sizeof out_a);
    memset(out_b, 0, sizeof out_b);
    char *top = stack_new();
    ctx_sp = sprout_stack_init(top, regs_entry, NULL);
    // A loads pat_a and switches to the new context B, which loads pat_b and switches back.
    regs_test(&main_sp, ctx_sp, pat_a, out_a);
    report_regs("A (resumed after B clobbered them)", pat_a, out_a);
    // Resume B inside its regs_test: it must see pat_b again although A ran in between.
    sprout_stack_switch(&main_sp, ctx_sp);
    report_regs("B (resumed after A ran)", pat_b, out_b);
    stack_free(top);
}

// MARK: - Check 4: FP control state

static fpctl_t fp_b_initial, fp_b_resumed, fp_state_b;
static double fp_third_b;

static void fp_entry(void *arg) {
    (void)arg;
    fp_b_initial = fpctl_get();           // inherited from the creator
    fpctl_set(fp_state_b);
    sprout_stack_switch(&ctx_sp, main_sp);
    fp_b_resumed = fpctl_get();
    fp_third_b = third();
    sprout_stack_switch(&ctx_sp, main_sp);
    abort();
}

static void check_fp_control(void) {
    char s1[64], s2[64];
    fpctl_t orig = fpctl_get();
    fpctl_t a = fpctl_variant_a(orig);
    fpctl_t b = fpctl_variant_b(orig);
    // Normalise to what the hardware keeps (read back after writing).
    fpctl_set(a);
    a = fpctl_get();
    fpctl_set(b);
    b = fpctl_get();
    fpctl_set(orig);
    fp_state_b = b;
    int distinct = !fpctl_eq(a, b) && !fpctl_eq(a, orig) && !fpctl_eq(b, orig);
    fpctl_str(a, s1, sizeof s1);
    fpctl_str(b, s2, sizeof s2);
    check(distinct, "FP control: the test states are distinct and settable (A: %s, B: %s)", s1, s2);

    char *top = stack_new();
    // Create B while in state A; go back to the original state before B first runs: B must
    // start with the state of its creator at creation time.
    fpctl_set(a);
    ctx_sp = sprout_stack_init(top, fp_entry, NULL);
    fpctl_set(orig);
    sprout_stack_switch(&main_sp, ctx_sp);
    fpctl_t main_seen1 = fpctl_get();
    fpctl_str(fp_b_initial, s1, sizeof s1);
    check(fpctl_eq(fp_b_initial, a), "FP control: a new context inherits its creator's state (%s)", s1);
    fpctl_str(main_seen1, s2, sizeof s2);
    check(fpctl_eq(main_seen1, orig), "FP control: the switching context gets its own state back after the other changed it (%s)", s2);

    fpctl_set(a);
    sprout_stack_switch(&main_sp, ctx_sp);
    fpctl_t main_seen2 = fpctl_get();
    double third_a = third();
    fpctl_set(orig);
    fpctl_str(fp_b_resumed, s1, sizeof s1);
    check(fpctl_eq(fp_b_resumed, b), "FP control: context B sees its own state when resumed (%s)", s1);
    fpctl_str(main_seen2, s2, sizeof s2);
    check(fpctl_eq(main_seen2, a), "FP control: context A sees its own non-default state when resumed (%s)", s2);
    // The states are not just stored but in effect: 1/3 rounded toward zero < rounded up.
    check(third_a < fp_third_b, "FP control: rounding modes are in effect per context (A: %.17g, B: %.17g)",
          third_a, fp_third_b);
    stack_free(top);

    // The probe of check 1 ran with the default state; redo it with a non-default one to read
    // the state at the new context's very first instruction.
    top = stack_new();
    fpctl_set(b);
    ctx_sp = sprout_stack_init(top, probe_entry, NULL);
    fpctl_set(orig);
    sprout_stack_switch(&main_sp, ctx_sp);
    fpctl_t at_entry = fpctl_from_probe(probe_rec.fpctl);
    fpctl_str(at_entry, s1, sizeof s1);
    check(fpctl_eq(at_entry, b), "FP control: inherited state is in effect at entry's first instruction (%s)", s1);
    check(fpctl_eq(fpctl_get(), orig), "FP control: the creator's original state is intact afterwards");
    stack_free(top);
}

// MARK: - Check 5: many round trips

static uint64_t pong_count;

static void pong_entry(void *arg) {
    uint64_t *count = arg;
    for (;;) {
        (*count)++;
        sprout_stack_switch(&ctx_sp, main_sp);
    }
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void check_ping_pong(void) {
    uint64_t rounds = 1000000;
    const char *env = getenv("HARNESS_ROUNDS");
    if (env && *env) rounds = strtoull(env, NULL, 10);
    char *top = stack_new();
    pong_count = 0;
    ctx_sp = sprout_stack_init(top, pong_entry, &pong_count);
    // Locals of this frame live in callee-saved registers across the calls (at -O2).
    uint64_t sum = 0, mix = 0x9e3779b97f4a7c15ull;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < rounds; i++) {
        sprout_stack_switch(&main_sp, ctx_sp);
        sum += i;
        mix = mix * 6364136223846793005ull + i;
    }
    uint64_t t1 = now_ns();
    uint64_t mix_want = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0; i < rounds; i++) mix_want = mix_want * 6364136223846793005ull + i;
    check(pong_count == rounds, "ping-pong: %llu round trips, the other context counted %llu",
          (unsigned long long)rounds, (unsigned long long)pong_count);
    check(sum == rounds * (rounds - 1) / 2 && mix == mix_want,
          "ping-pong: the loop's own locals are intact after %llu round trips", (unsigned long long)rounds);
    if (rounds > 0)
        printf("INFO: %.1f ns per switch (%llu switches in %.3f s)\n",
               (double)(t1 - t0) / (double)(2 * rounds), (unsigned long long)(2 * rounds),
               (double)(t1 - t0) / 1e9);
    stack_free(top);
}

// MARK: - Extra: unwinding from a signal taken inside sprout_stack_switch
//
// Profilers and crash reporters unwind from whatever instruction a signal interrupted, so the
// CFI of sprout_stack_switch must be right at every instruction, on both sides of the stack
// change. A profiling timer interrupts a ping-pong loop; whenever it lands inside the switch
// (between sprout_stack_switch and sprout_stack_trampoline, which follows it in the file), the
// handler unwinds and checks that the frame above the switch is one of its two callers.

static void *uw_main_sp, *uw_ctx_sp;
static volatile long uw_hits, uw_good, uw_bad;
static volatile uintptr_t uw_bad_pc, uw_bad_caller;

__attribute__((noinline)) static void uw_pong(void *arg) {
    (void)arg;
    for (;;) sprout_stack_switch(&uw_ctx_sp, uw_main_sp);
}

__attribute__((noinline)) static void uw_ping(long n) {
    for (long i = 0; i < n; i++) sprout_stack_switch(&uw_main_sp, uw_ctx_sp);
}

static int uw_in(uintptr_t ip, void (*fn)(void)) {
    uintptr_t f = (uintptr_t)fn;
    return ip > f && ip < f + 512;
}

static void uw_handler(int sig, siginfo_t *si, void *ucv) {
    (void)sig;
    (void)si;
    ucontext_t *uc = ucv;
#if defined(__x86_64__)
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#else
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
#endif
    if (pc < (uintptr_t)sprout_stack_switch || pc >= (uintptr_t)sprout_stack_trampoline) return;
    uw_hits++;
    struct unwind_state st;
    memset(&st, 0, sizeof st);
    _Unwind_Backtrace(unwind_cb, &st);
    // The frames: the handler, the signal frame, sprout_stack_switch at `pc`, then its caller.
    for (int i = 0; i + 1 < st.frames && i + 1 < 16; i++) {
        if (st.ip[i] != pc) continue;
        uintptr_t caller = st.ip[i + 1];
        if (uw_in(caller, (void (*)(void))uw_ping) || uw_in(caller, (void (*)(void))uw_pong) ||
            in_trampoline(caller)) {
            uw_good++;
        } else {
            uw_bad++;
            uw_bad_pc = pc;
            uw_bad_caller = caller;
        }
        return;
    }
    uw_bad++;
    uw_bad_pc = pc;
    uw_bad_caller = 0;
}

static void check_async_unwind(void) {
    const char *why = getenv("HARNESS_SKIP_ASYNC_UNWIND");
    if (why && *why) {
        skip("unwinding from a signal inside sprout_stack_switch: %s", why);
        return;
    }
    struct unwind_state warm;
    memset(&warm, 0, sizeof warm);
    _Unwind_Backtrace(unwind_cb, &warm); // let the unwinder set itself up outside the handler
    char *top = stack_new();
    uw_ctx_sp = sprout_stack_init(top, uw_pong, NULL);
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = uw_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, &old);
    struct itimerval on = {{0, 100}, {0, 100}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &on, NULL);
    uint64_t t0 = now_ns();
    while (uw_hits < 200 && now_ns() - t0 < 3000000000ull) uw_ping(100000);
    setitimer(ITIMER_PROF, &off, NULL);
    sigaction(SIGPROF, &old, NULL);
    stack_free(top);
    if (uw_hits == 0) {
        skip("unwinding from a signal inside sprout_stack_switch: no signal landed there in 3 s");
        return;
    }
    check(uw_bad == 0, "unwinding from a signal inside sprout_stack_switch finds its caller (%ld samples, %ld wrong)",
          (long)uw_hits, (long)uw_bad);
    if (uw_bad)
        printf("      last wrong sample: pc=switch+%#lx, caller=%#lx\n",
               (unsigned long)(uw_bad_pc - (uintptr_t)sprout_stack_switch), (unsigned long)uw_bad_caller);
}

// MARK: - Extra: a ring of contexts with deep stacks

#define RING 8
#define RING_LAPS 2000
static void *ring_sp[RING + 1]; // [RING] is the main context
static int ring_ok[RING];

// Recurses a few levels, switching to the next context in the ring at every level and
// checking on return that its stack frame's contents are intact.
static __attribute__((noinline)) uint64_t ring_step(int me, int depth, uint64_t seed) {
    volatile uint64_t local[16];
    for (int i = 0; i < 16; i++) local[i] = seed * 31 + (uint64_t)i + (uint64_t)me * 1000;
    uint64_t below = 0;
    if (depth > 0) {
        below = ring_step(me, depth - 1, seed + 1);
    } else {
        int next = me + 1 == RING ? RING : me + 1;
        sprout_stack_switch(&ring_sp[me], ring_sp[next]);
    }
    uint64_t acc = below;
    for (int i = 0; i < 16; i++) {
        if (local[i] != seed * 31 + (uint64_t)i + (uint64_t)me * 1000) ring_ok[me] = 0;
        acc += local[i];
    }
    return acc;
}

static void ring_entry(void *arg) {
    int me = (int)(uintptr_t)arg;
    for (int lap = 0; lap < RING_LAPS; lap++) (void)ring_step(me, 1 + (me + lap) % 5, (uint64_t)lap);
    ring_ok[me] = ring_ok[me] == 1 ? 2 : 0; // finished
    int next = me + 1 == RING ? RING : me + 1;
    for (;;) sprout_stack_switch(&ring_sp[me], ring_sp[next]);
}

static void check_ring(void) {
    char *tops[RING];
    for (int i = 0; i < RING; i++) {
        tops[i] = stack_new();
        ring_ok[i] = 1;
        ring_sp[i] = sprout_stack_init(tops[i], ring_entry, (void *)(uintptr_t)i);
    }
    int laps = 0;
    // Each switch from main to context 0 runs once around the ring and back to main.
    while (laps < RING_LAPS + 1) {
        sprout_stack_switch(&ring_sp[RING], ring_sp[0]);
        laps++;
    }
    int ok = 1;
    for (int i = 0; i < RING; i++) ok &= ring_ok[i] == 2;
    check(ok, "ring of %d contexts, %d laps with stack frames alive across switches: every frame intact", RING,
          RING_LAPS);
    for (int i = 0; i < RING; i++) stack_free(tops[i]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
#if defined(__x86_64__)
    const char *arch = "x86_64";
#else
    const char *arch = "aarch64";
#endif
#if defined(__OPTIMIZE__)
    const char *opt = "optimized";
#else
    const char *opt = "unoptimized";
#endif
    printf("context harness: %s, %s build, compiler %s\n", arch, opt, __VERSION__);
    check_new_context();
    check_registers();
    check_fp_control();
    check_ping_pong();
    check_ring();
    check_async_unwind();
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed == 0 ? 0 : 1;
}
