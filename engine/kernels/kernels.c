/*
 * kernels.c - run-time choice of the SIMD kernels.
 *
 * This file is compiled for the baseline CPU (no ISA flags), so nothing in it
 * may execute an AVX instruction. It asks the CPU what it can do (cpuid, plus
 * xgetbv to make sure the OS saves the wide registers), then fills a
 * kernel_table: first every entry from the scalar references in quant.c, then
 * each installer up to the chosen ISA overrides the entries it implements.
 * An installer only runs after the check said yes; on builds for another
 * architecture the installers are empty functions and kernels_fill says -1.
 *
 * On AArch64 the kernel says (getauxval(AT_HWCAP), AT_HWCAP2) whether the CPU
 * has the dot-product extension and the int8 matrix-multiply one: "neoni8mm"
 * with both, "neondot" with SDOT only, else "neon".
 *
 * kernels_set_cap("scalar"|"avx2"|"avx512"|"avx512vnni"|"neon"|"neondot"|"neoni8mm")
 * caps the level (for tests, benchmarks and bug hunts; prbot takes it from
 * PRBOT_ISA through engine_set_isa); it can never raise it above what the CPU
 * has. An ARM name caps nothing on x86; an x86 name leaves ARM the scalar code.
 */
#include "kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#elif defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20) /* the Linux UAPI value, for older headers */
#endif
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1UL << 13) /* likewise */
#endif
#endif

kernel_table kernels;

static const char *const isa_names[] = {"scalar", "avx2", "avx512", "avx512vnni", "neon", "neondot", "neoni8mm"};

#if defined(__x86_64__)
static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Is `isa` usable: the CPU has the instructions and the OS saves their registers? */
static int cpu_has_isa(kernel_isa isa)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx || !fma || !f16c) return 0;
    const uint64_t xcr0 = read_xcr0();
    if ((xcr0 & 0x6) != 0x6) return 0; /* XMM and YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return 0;
    __cpuid_count(7, 0, a, b, c, d);
    const int avx2 = (b >> 5) & 1;
    if (isa == ISA_AVX2) return avx2;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    const int avx512vnni = (c >> 11) & 1;
    const int os_avx512 = (xcr0 & 0xe6) == 0xe6; /* opmask, ZMM_Hi256, Hi16_ZMM too */
    const int has512 = avx2 && avx512f && avx512dq && avx512bw && avx512vl && os_avx512;
    if (isa == ISA_AVX512) return has512;
    if (isa == ISA_AVX512VNNI) return has512 && avx512vnni;
    return 0;
}
#elif defined(__aarch64__)
static int cpu_has_isa(kernel_isa isa)
{
    if (isa == ISA_NEON) return 1; /* NEON is architectural on aarch64 */
    const int dot = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
    if (isa == ISA_NEONDOT) return dot;
    return isa == ISA_NEONI8MM && dot && (getauxval(AT_HWCAP2) & HWCAP2_I8MM) != 0;
}
#else
static int cpu_has_isa(kernel_isa isa) { (void)isa; return 0; }
#endif

static void fill_scalar(kernel_table *t)
{
    memset(t, 0, sizeof *t);
    t->isa = isa_names[ISA_SCALAR];
    for (uint32_t type = 0; type < QT_COUNT; type++) {
        const quant_traits *traits = quant_traits_of(type);
        t->vec_dot[type] = traits ? traits->vec_dot_ref : NULL;
    }
    t->quantize_act[ACT_Q8_32] = quantize_row_q8_32_ref;
    t->quantize_act[ACT_Q8_K] = quantize_row_q8_K_ref;
    t->f32_to_f16_row = f32_to_f16_row_ref;
    t->f16_to_f32_row = f16_to_f32_row_ref;
    t->silu_mul_row = silu_mul_row_ref;
    t->gelu_mul_row = gelu_mul_row_ref;
    kernels_install_gemm_ref(t);
    t->attention_scores = attention_scores_ref;
    t->attention_softmax = attention_softmax_ref;
    t->attention_values = attention_values_ref;
    t->attention_block = attention_block_ref;
}

int kernels_fill(kernel_table *t, kernel_isa isa)
{
    if (isa < ISA_SCALAR || isa > ISA_NEONI8MM) return -1;
    if (isa != ISA_SCALAR && !cpu_has_isa(isa)) return -1;
    fill_scalar(t);
    switch (isa) {
    case ISA_SCALAR:
        break;
    case ISA_AVX2:
        kernels_install_avx2(t);
        kernels_install_attention_avx2(t);
        kernels_install_gemm_avx2(t);
        break;
    case ISA_AVX512:
    case ISA_AVX512VNNI:
        kernels_install_avx2(t); /* types without an AVX-512 version keep the AVX2 one */
        kernels_install_attention_avx2(t);
        kernels_install_attention_avx512(t);
        kernels_install_avx512(t, isa == ISA_AVX512VNNI);
        kernels_install_gemm_avx2(t);
        kernels_install_gemm_avx512(t, isa == ISA_AVX512VNNI);
        break;
    case ISA_NEON:
        kernels_install_neon(t, 0);
        kernels_install_attention_neon(t);
        break;
    case ISA_NEONDOT:
    case ISA_NEONI8MM:
        kernels_install_neon(t, 1);
        kernels_install_gemm_neon(t, isa == ISA_NEONI8MM);
        kernels_install_attention_neon(t);
        break;
    }
    if (isa != ISA_SCALAR) kernels_drop_scalar_gemm(t); /* NULL: callers loop over the SIMD vec_dot */
    t->isa = isa_names[isa];
    return 0;
}

/* The highest ISA kernels_init may choose; ISA_NEONI8MM (the last) caps nothing. */
static kernel_isa isa_cap = ISA_NEONI8MM;

static int is_arm(kernel_isa isa) { return isa >= ISA_NEON; }

int kernels_set_cap(const char *name)
{
    if (!name || !*name) {
        isa_cap = ISA_NEONI8MM;
        return 0;
    }
    for (int i = 0; i <= ISA_NEONI8MM; i++)
        if (strcmp(name, isa_names[i]) == 0) {
            isa_cap = (kernel_isa)i;
            return 0;
        }
    return -1;
}

static void kernels_init_once(void)
{
    static const kernel_isa best_first[] = {ISA_NEONI8MM, ISA_NEONDOT, ISA_NEON, ISA_AVX512VNNI, ISA_AVX512, ISA_AVX2};
    const kernel_isa cap = isa_cap;
    kernel_table chosen;
    fill_scalar(&chosen);
    for (size_t i = 0; i < sizeof best_first / sizeof best_first[0]; i++) {
        kernel_isa isa = best_first[i];
        /* an arm name caps nothing on x86; an x86 name leaves arm the scalar code */
        int allowed = is_arm(isa) ? (is_arm(cap) && isa <= cap) : (is_arm(cap) || isa <= cap);
        if (allowed && kernels_fill(&chosen, isa) == 0) break;
    }
    kernels = chosen;
}

void kernels_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, kernels_init_once);
}
