/*
 * threads.c - the persistent worker pool and the CPU count it is sized by.
 *
 * Prefill runs one short parallel region per step and decode one region per
 * token whose threads meet at barriers (engine/model.c), so what matters is
 * the latency of handing work over and of a barrier, not throughput. The
 * pool keeps n-1 workers alive; the caller is thread 0. A run publishes
 * (fn, ctx) and bumps an atomic generation counter; workers that are spinning
 * on that counter start within a few hundred nanoseconds. A worker that has
 * seen no new generation for THREADS_SPIN_NS goes to sleep on a condition
 * variable, so an idle pool costs no CPU; the caller only takes the mutex to
 * broadcast when some worker is actually asleep. Completion is an atomic
 * counter of finished tasks that the caller spins on, never reset, so a run
 * writes no line a worker is about to write. Each cache line that crosses
 * between the threads counts, several times more when the two CPUs sit on
 * different core complexes than when they share one (`prbot bench` reports
 * the hand-off time of the machine it runs on).
 *
 * Lost wake-ups are impossible: a worker increments n_sleeping and re-reads
 * the generation under the mutex before waiting, while the caller bumps the
 * generation and then reads n_sleeping; both are sequentially consistent, so
 * at least one of them sees the other's write.
 *
 * threads_barrier() lets one task run in phases without handing back to the
 * caller. Each thread counts the barriers it has reached on a line of its
 * own and then waits until every other thread's count has caught up
 * (yielding after a while, as the caller does when it waits for workers).
 * Arriving is a store that does not wait for anything, so a barrier costs one
 * cache-line transfer after the last thread arrives; a shared arrival counter
 * costs two (the last arrival must take the line, the waiters re-read it).
 * Each thread reads every other thread's line: fine for the few threads of a
 * CI runner, O(n) reads per barrier on very wide pools. The barrier also
 * comes in halves (threads_arrive, then threads_wait_arrivals), so that a
 * thread can do something useful between them while the others arrive.
 *
 * When the pool has no more threads than the CPUs we may run on, each
 * thread is pinned to its own CPU (the caller to the first). Unpinned, the
 * scheduler sometimes starts a worker on the caller's CPU and leaves it
 * there: the two then take turns through sched_yield and every parallel
 * region costs a context switch, which makes an occasional run of a small
 * model many times slower. The caller's own affinity is restored by
 * threads_free.
 *
 * threads_available() counts the CPUs in our affinity mask and caps that by
 * the cgroup CPU quota (v2 cpu.max, or v1 cpu.cfs_quota_us / cfs_period_us),
 * because a container limited to 2 CPUs on a 64-core host must not start 64
 * threads. The quota parsers take file contents so the tests can feed them.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT, pthread_setaffinity_np */
#include "threads.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define THREADS_SPIN_NS 50000L      /* how long an idle worker spins before sleeping */
#define THREADS_WAIT_SPIN_NS 100000L /* the caller spins this long for workers, then yields */
#define THREADS_MAX 512
#define CACHE_LINE 64

/* Barriers one thread has reached, on a line no other thread writes. */
typedef struct {
    _Alignas(CACHE_LINE) atomic_uint reached;
} barrier_count;

struct thread_pool {
    int n_threads;
    int pinned;            /* threads pinned one per CPU; the caller's own mask saved in caller_cpus */
    cpu_set_t caller_cpus;
    pthread_t *workers;    /* n_threads - 1 of them */
    pthread_mutex_t mutex; /* only for sleeping and waking */
    pthread_cond_t wake;
    /* One line for what a run hands over: the worker's one miss on the
     * generation brings the task along (fn and ctx on a line of their own
     * would cost a second miss per run). */
    _Alignas(CACHE_LINE) atomic_uint generation;
    thread_task_fn fn;     /* written by the caller before each generation bump */
    void *ctx;
    atomic_int stop;
    atomic_int n_sleeping;
    /* Finished tasks over all generations: after generation g it reaches
     * g * (n_threads - 1), so the caller never has to reset it. */
    _Alignas(CACHE_LINE) atomic_uint n_done;
    barrier_count *barriers; /* one per thread */
};

typedef struct {
    thread_pool *pool;
    int ith;
} worker_arg;

/* ---- CPU count --------------------------------------------------------- */

static int ceil_div_limit(long long quota, long long period)
{
    if (quota <= 0 || period <= 0) return 0;
    long long n = (quota + period - 1) / period;
    return n > THREADS_MAX ? THREADS_MAX : (int)n;
}

int threads_cgroup_v2_limit(const char *cpu_max)
{
    if (!cpu_max) return 0;
    while (*cpu_max == ' ' || *cpu_max == '\t') cpu_max++;
    if (strncmp(cpu_max, "max", 3) == 0) return 0;
    char *end;
    errno = 0;
    long long quota = strtoll(cpu_max, &end, 10);
    if (end == cpu_max || errno) return 0;
    long long period = 100000; /* the kernel's default when only a quota is written */
    const char *rest = end;
    while (*rest == ' ' || *rest == '\t') rest++;
    if (*rest >= '0' && *rest <= '9') {
        period = strtoll(rest, &end, 10);
        if (errno) return 0;
    }
    return ceil_div_limit(quota, period);
}

int threads_cgroup_v1_limit(const char *cfs_quota_us, const char *cfs_period_us)
{
    if (!cfs_quota_us || !cfs_period_us) return 0;
    char *end1, *end2;
    errno = 0;
    long long quota = strtoll(cfs_quota_us, &end1, 10);
    long long period = strtoll(cfs_period_us, &end2, 10);
    if (end1 == cfs_quota_us || end2 == cfs_period_us || errno) return 0;
    return ceil_div_limit(quota, period);
}

/* True when the comma-separated list [list, list_end) contains `name`. */
static int list_has(const char *list, const char *list_end, const char *name)
{
    size_t name_len = strlen(name);
    while (list < list_end) {
        const char *comma = memchr(list, ',', (size_t)(list_end - list));
        const char *item_end = comma ? comma : list_end;
        if ((size_t)(item_end - list) == name_len && memcmp(list, name, name_len) == 0) return 1;
        list = item_end + 1;
    }
    return 0;
}

int threads_cgroup_path(const char *proc_self_cgroup, int want_v2, char *out, size_t cap)
{
    const char *line = proc_self_cgroup;
    while (line && *line) {
        const char *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        const char *c1 = memchr(line, ':', (size_t)(eol - line));
        const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(eol - c1 - 1)) : NULL;
        if (c2) {
            int is_v2 = (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1);
            int match = want_v2 ? is_v2 : (!is_v2 && list_has(c1 + 1, c2, "cpu"));
            size_t len = (size_t)(eol - c2 - 1);
            if (match) {
                if (len + 1 > cap) return -1;
                memcpy(out, c2 + 1, len);
                out[len] = 0;
                return 0;
            }
        }
        line = *eol ? eol + 1 : eol;
    }
    return -1;
}

/* Reads a small text file into buf; returns 0 or -1. */
static int read_small_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n ? 0 : -1;
}

/* Drops the last component of a cgroup path in place; returns 0 when there was one. */
static int path_parent(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash || (slash == path && path[1] == 0)) return -1;
    if (slash == path) slash[1] = 0;
    else *slash = 0;
    return 0;
}

/* Smallest limit set by the cgroup at `path` (under `mount`) or any ancestor; 0 = none. */
static int cgroup_limit_walk(const char *mount, const char *cgroup_path, int v2)
{
    char path[1024], file[1200], a[128], b[128];
    snprintf(path, sizeof path, "%s", cgroup_path);
    int best = 0;
    for (;;) {
        const char *sep = strcmp(path, "/") == 0 ? "" : path;
        int limit = 0;
        if (v2) {
            snprintf(file, sizeof file, "%s%s/cpu.max", mount, sep);
            if (read_small_file(file, a, sizeof a) == 0) limit = threads_cgroup_v2_limit(a);
        } else {
            snprintf(file, sizeof file, "%s%s/cpu.cfs_quota_us", mount, sep);
            int ok = read_small_file(file, a, sizeof a) == 0;
            snprintf(file, sizeof file, "%s%s/cpu.cfs_period_us", mount, sep);
            if (ok && read_small_file(file, b, sizeof b) == 0) limit = threads_cgroup_v1_limit(a, b);
        }
        if (limit > 0 && (best == 0 || limit < best)) best = limit;
        if (path_parent(path) != 0) break;
    }
    return best;
}

/* The cgroup CPU quota of this process in whole CPUs, or 0 when there is none. */
static int cgroup_cpu_limit(void)
{
    char self[4096], path[1024];
    if (read_small_file("/proc/self/cgroup", self, sizeof self) != 0) return 0;
    int best = 0;
    if (threads_cgroup_path(self, 1, path, sizeof path) == 0) {
        static const char *const mounts[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
        for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
            int limit = cgroup_limit_walk(mounts[i], path, 1);
            if (limit > 0 && (best == 0 || limit < best)) best = limit;
        }
    }
    if (threads_cgroup_path(self, 0, path, sizeof path) == 0) {
        static const char *const mounts[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
                                             "/sys/fs/cgroup/cpuacct,cpu"};
        for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
            int limit = cgroup_limit_walk(mounts[i], path, 0);
            if (limit > 0 && (best == 0 || limit < best)) best = limit;
        }
    }
    return best;
}

/* The affinity mask this process started with, read once: pools pin the
 * calling thread, and a pool made while another one has it pinned must still
 * see every CPU the process may use. Written once, then only read. */
static cpu_set_t process_cpus;
static int process_cpus_known;

static void process_cpus_read(void)
{
    CPU_ZERO(&process_cpus);
    process_cpus_known = sched_getaffinity(0, sizeof process_cpus, &process_cpus) == 0;
}

static const cpu_set_t *process_cpu_set(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, process_cpus_read);
    return process_cpus_known ? &process_cpus : NULL;
}

int threads_available(void)
{
    int n = 0;
    const cpu_set_t *set = process_cpu_set();
    if (set) n = CPU_COUNT(set);
    if (n <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (int)online : 1;
    }
    int limit = cgroup_cpu_limit();
    if (limit > 0 && limit < n) n = limit;
    if (n > THREADS_MAX) n = THREADS_MAX;
    return n < 1 ? 1 : n;
}

/* ---- the pool ---------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spins, then sleeps, until the generation differs from `seen`; returns the new one. */
static unsigned wait_for_generation(thread_pool *p, unsigned seen)
{
    long long deadline = 0;
    for (unsigned i = 1;; i++) {
        unsigned g = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((i & 63) == 0) {
            long long t = now_ns();
            if (deadline == 0) deadline = t + THREADS_SPIN_NS;
            else if (t > deadline) break;
        }
    }
    pthread_mutex_lock(&p->mutex);
    atomic_fetch_add(&p->n_sleeping, 1);
    unsigned g;
    while ((g = atomic_load(&p->generation)) == seen) pthread_cond_wait(&p->wake, &p->mutex);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mutex);
    return g;
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    thread_pool *p = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        seen = wait_for_generation(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
        p->fn(p->ctx, ith, p->n_threads);
        atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
    }
    return NULL;
}

/* Starts a new generation and wakes sleeping workers; returns its number. */
static unsigned publish_generation(thread_pool *p)
{
    unsigned g = atomic_fetch_add(&p->generation, 1) + 1;
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mutex);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mutex);
    }
    return g;
}

static void stop_workers(thread_pool *p, int n_started)
{
    atomic_store(&p->stop, 1);
    publish_generation(p);
    for (int i = 0; i < n_started; i++) pthread_join(p->workers[i], NULL);
}

/* The first n CPUs of the process's affinity mask into cpus[]; 0 when it has fewer. */
static int first_cpus(int n, int *cpus)
{
    const cpu_set_t *set = process_cpu_set();
    if (!set) return 0;
    int found = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && found < n; cpu++)
        if (CPU_ISSET(cpu, set)) cpus[found++] = cpu;
    return found == n;
}

static void pin_to(pthread_t thread, int cpu)
{
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pthread_setaffinity_np(thread, sizeof one, &one); /* best effort: unpinned still works */
}

/* Pins the caller and the started workers one per CPU, when there are enough CPUs. */
static void pin_threads(thread_pool *p)
{
    int *cpus = malloc((size_t)p->n_threads * sizeof *cpus);
    if (cpus && first_cpus(p->n_threads, cpus) &&
        pthread_getaffinity_np(pthread_self(), sizeof p->caller_cpus, &p->caller_cpus) == 0) {
        pin_to(pthread_self(), cpus[0]);
        for (int i = 0; i < p->n_threads - 1; i++) pin_to(p->workers[i], cpus[i + 1]);
        p->pinned = 1;
    }
    free(cpus);
}

thread_pool *threads_new(int n_threads)
{
    if (n_threads <= 0) n_threads = threads_available();
    if (n_threads > THREADS_MAX) n_threads = THREADS_MAX;
    thread_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->n_done, 0);
    if (n_threads == 1) return p;
    p->workers = calloc((size_t)(n_threads - 1), sizeof *p->workers);
    p->barriers = aligned_alloc(CACHE_LINE, (size_t)n_threads * sizeof *p->barriers);
    if (!p->workers || !p->barriers || pthread_mutex_init(&p->mutex, NULL) != 0) {
        free(p->workers);
        free(p->barriers);
        free(p);
        return NULL;
    }
    for (int i = 0; i < n_threads; i++) atomic_init(&p->barriers[i].reached, 0);
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->mutex);
        free(p->workers);
        free(p->barriers);
        free(p);
        return NULL;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa) *wa = (worker_arg){p, i + 1};
        if (!wa || pthread_create(&p->workers[i], NULL, worker_main, wa) != 0) {
            free(wa);
            stop_workers(p, i);
            pthread_cond_destroy(&p->wake);
            pthread_mutex_destroy(&p->mutex);
            free(p->workers);
            free(p->barriers);
            free(p);
            return NULL;
        }
    }
    pin_threads(p);
    return p;
}

void threads_free(thread_pool *p)
{
    if (!p) return;
    if (p->n_threads > 1) {
        if (!atomic_load(&p->stop)) stop_workers(p, p->n_threads - 1);
        if (p->pinned) pthread_setaffinity_np(pthread_self(), sizeof p->caller_cpus, &p->caller_cpus);
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->mutex);
    }
    free(p->workers);
    free(p->barriers);
    free(p);
}

int threads_count(const thread_pool *p) { return p ? p->n_threads : 1; }

/* Waiting for another thread: spin for THREADS_WAIT_SPIN_NS, then yield at
 * every step, so that on a CPU shared with other processes a descheduled
 * thread can get it back. */
typedef struct {
    unsigned steps;
    long long yield_after; /* 0: not started; -1: yielding */
} spin_wait;

static void spin_wait_step(spin_wait *w)
{
    if (w->yield_after < 0) {
        sched_yield();
        return;
    }
    cpu_relax();
    if ((++w->steps & 63) == 0) {
        long long t = now_ns();
        if (w->yield_after == 0) w->yield_after = t + THREADS_WAIT_SPIN_NS;
        else if (t > w->yield_after) w->yield_after = -1;
    }
}

unsigned threads_arrive(thread_pool *p, int ith)
{
    if (!p || p->n_threads == 1) return 0;
    unsigned reached = atomic_load_explicit(&p->barriers[ith].reached, memory_order_relaxed) + 1;
    atomic_store_explicit(&p->barriers[ith].reached, reached, memory_order_release);
    return reached;
}

/* Thread j has reached barrier `ticket` (counts wrap: compare by difference). */
static int has_reached(const thread_pool *p, int j, unsigned ticket)
{
    return (int)(atomic_load_explicit(&p->barriers[j].reached, memory_order_acquire) - ticket) >= 0;
}

int threads_all_arrived(const thread_pool *p, unsigned ticket)
{
    if (!p || p->n_threads == 1) return 1;
    for (int j = 0; j < p->n_threads; j++)
        if (!has_reached(p, j, ticket)) return 0;
    return 1;
}

void threads_wait_arrivals(thread_pool *p, unsigned ticket)
{
    if (!p || p->n_threads == 1) return;
    for (int j = 0; j < p->n_threads; j++) {
        spin_wait w = {0, 0};
        while (!has_reached(p, j, ticket)) spin_wait_step(&w);
    }
}

void threads_barrier(thread_pool *p, int ith) { threads_wait_arrivals(p, threads_arrive(p, ith)); }

void threads_run(thread_pool *p, thread_task_fn fn, void *ctx)
{
    if (!p || p->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    unsigned all_done = publish_generation(p) * (unsigned)(p->n_threads - 1); /* wraps as n_done does */
    fn(ctx, 0, p->n_threads);
    spin_wait w = {0, 0};
    while (atomic_load_explicit(&p->n_done, memory_order_acquire) != all_done) spin_wait_step(&w);
}
