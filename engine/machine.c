/*
 * machine.c - what the engine knows about the machine it runs on: which
 * kernels it uses, a monotonic clock, and how fast memory streams.
 *
 * The SIMD level is process-wide (one dispatch table, engine/kernels/). It is
 * chosen on the first engine_open or engine_isa call: the best the CPU has,
 * capped by engine_set_isa. The engine never reads the environment; the
 * command layer turns PRBOT_ISA into an engine_set_isa call (bot/main.c).
 *
 * The bandwidth probe is what bounds decode: every decoded token reads every
 * weight once, so tokens/s can never beat bandwidth / weight bytes. It
 * streams the widest vector loads the CPU has over a buffer far larger than
 * the last-level cache, in 2 MiB pages as the packed weights are (the same
 * TLB reach), each thread of a pool the size of the engine's its own slice,
 * read as four interleaved streams: one narrow stream keeps too few lines in
 * flight and under-reports what decode itself streams. Passes are short, so
 * a benchmark can bracket each timed run with passes of its own (a shared
 * VM's bandwidth drifts from one minute to the next).
 *
 * Prefill is bound by arithmetic instead: each prompt token costs every
 * weight one int8 multiply-accumulate. The int8 pass runs, on the same
 * threads, the kernel table's int8_mac_probe: the multiply step of the
 * level's prefill kernels (maddubs + int16 add on AVX2, vpdpbusd on VNNI)
 * with no loads, unpacking or scales around it, so what it sustains is a
 * ceiling no kernel of that level can pass; a benchmark reads prefill as a
 * share of it the way it reads decode against bandwidth.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine.h"
#include "errors.h"
#include "kernels/kernels.h"
#include "threads.h"

double engine_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------- kernels */

int engine_set_isa(const char *isa, char *err, size_t errlen)
{
    if (kernels_set_cap(isa) == 0) return 0;
    err_set(err, errlen, "'%s' is not one of scalar, avx2, avx512, avx512vnni, neon, neondot, neoni8mm", isa);
    return -1;
}

const char *engine_isa(void)
{
    kernels_init();
    return kernels.isa;
}

/* ----------------------------------------------------------- bandwidth */

#define HUGE_PAGE ((size_t)2 << 20)
#define PROBE_MAX_THREADS 256

/* 64 bytes, so every load is one full vector (GCC/Clang vector extension: SIMD where there is any). */
typedef uint64_t u64x8 __attribute__((vector_size(64), aligned(64))); /* aligned alike in every clone below */

struct engine_membw {
    u64x8 *lines;
    size_t n_lines;
    thread_pool *pool;
    u64x8 sums[PROBE_MAX_THREADS]; /* one per thread, so the reads cannot be optimised away */
    long int8_rounds;              /* per thread in one int8 pass */
    int32_t int8_sums[PROBE_MAX_THREADS];
};

static void slice(size_t n, int ith, int nth, size_t *begin, size_t *end)
{
    *begin = n * (size_t)ith / (size_t)nth;
    *end = n * (size_t)(ith + 1) / (size_t)nth;
}

/* Writes this thread's slice (first touch also places the pages). */
static void touch_slice(void *ctx, int ith, int nth)
{
    engine_membw *b = ctx;
    size_t begin, end;
    slice(b->n_lines, ith, nth, &begin, &end);
    for (size_t i = begin; i < end; i++) b->lines[i] = (u64x8){i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7};
}

/* The widest vector loads the CPU has (GCC/Clang compile a copy per target
 * and pick one at load time): narrower loads keep fewer lines in flight. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WIDEST_LOADS __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDEST_LOADS
#endif

/* Streams through this thread's slice as four interleaved sub-streams (more
 * lines in flight for the prefetchers than one stream), each with its own sum. */
WIDEST_LOADS static void read_slice(void *ctx, int ith, int nth)
{
    engine_membw *b = ctx;
    size_t begin, end;
    slice(b->n_lines, ith, nth, &begin, &end);
    const size_t quarter = (end - begin) / 4;
    const u64x8 *p0 = b->lines + begin, *p1 = p0 + quarter, *p2 = p1 + quarter, *p3 = p2 + quarter;
    u64x8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (size_t i = 0; i < quarter; i++) {
        s0 += p0[i];
        s1 += p1[i];
        s2 += p2[i];
        s3 += p3[i];
    }
    for (size_t i = begin + 4 * quarter; i < end; i++) s0 += b->lines[i];
    b->sums[ith % PROBE_MAX_THREADS] = s0 + s1 + s2 + s3;
}

void engine_membw_free(engine_membw *b)
{
    if (!b) return;
    if (b->pool) threads_free(b->pool);
    free(b->lines);
    free(b);
}

int engine_membw_new(engine_membw **out, int n_threads, int mib, char *err, size_t errlen)
{
    *out = NULL;
    engine_membw *b = aligned_alloc(64, sizeof *b); /* its sums are whole vectors */
    if (b) memset(b, 0, sizeof *b);
    size_t bytes = (size_t)mib << 20;
    void *lines = NULL;
    if (b && mib > 0 && posix_memalign(&lines, HUGE_PAGE, bytes) == 0) {
        b->lines = lines;
        madvise(lines, bytes, MADV_HUGEPAGE);
    }
    if (b) b->pool = threads_new(n_threads > 0 ? n_threads : threads_available());
    if (!b || !b->lines || !b->pool) {
        err_set(err, errlen, "cannot allocate %d MiB and %d threads for the bandwidth test", mib, n_threads);
        engine_membw_free(b);
        return -1;
    }
    b->n_lines = bytes / sizeof(u64x8);
    threads_run(b->pool, touch_slice, b);
    threads_run(b->pool, read_slice, b); /* warm-up */
    *out = b;
    return 0;
}

double engine_membw_pass(engine_membw *b)
{
    double t0 = engine_now_s();
    threads_run(b->pool, read_slice, b);
    double dt = engine_now_s() - t0;
    return dt > 0 ? (double)(b->n_lines * sizeof(u64x8)) / dt / 1e9 : 0;
}

static void empty_task(void *ctx, int ith, int nth) { (void)ctx, (void)ith, (void)nth; }

static void int8_slice(void *ctx, int ith, int nth)
{
    (void)nth;
    engine_membw *b = ctx;
    kernels.int8_mac_probe(b->int8_rounds, &b->int8_sums[ith % PROBE_MAX_THREADS]);
}

double engine_membw_int8_pass(engine_membw *b, double seconds)
{
    kernels_init();
    if (!kernels.int8_mac_probe) return 0;
    /* rounds doubled until a pass takes a tenth of the time, then scaled to it */
    double dt = 0;
    for (b->int8_rounds = 1024; b->int8_rounds < (1L << 40); b->int8_rounds *= 2) {
        double t0 = engine_now_s();
        threads_run(b->pool, int8_slice, b);
        dt = engine_now_s() - t0;
        if (dt >= seconds / 10) break;
    }
    if (dt > 0 && dt < seconds) b->int8_rounds = (long)((double)b->int8_rounds * seconds / dt);
    double t0 = engine_now_s();
    threads_run(b->pool, int8_slice, b);
    dt = engine_now_s() - t0;
    double macs = (double)b->int8_rounds * INT8_PROBE_MACS * threads_count(b->pool);
    return dt > 0 ? macs / dt / 1e9 : 0;
}

double engine_membw_handoff_ns(engine_membw *b)
{
    enum { RUNS = 20000 };
    double t0 = engine_now_s();
    for (int i = 0; i < RUNS; i++) threads_run(b->pool, empty_task, NULL);
    return (engine_now_s() - t0) / RUNS * 1e9;
}
