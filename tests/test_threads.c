/*
 * test_threads.c - the worker pool and the cgroup CPU-quota parsers.
 *
 * The pool tests count, per thread index, how often the task ran, and check
 * after every threads_run() that each index ran exactly once more: a run that
 * returned before a worker finished, skipped a worker or ran one twice shows
 * up as a wrong count. Some runs are separated by sleeps long enough for the
 * workers to leave their spin loop, so the condition-variable wake-up path
 * is exercised as well as the spinning one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "../engine/threads.h"
#include "test.h"

#define MAX_TEST_THREADS 8

typedef struct {
    atomic_int calls[MAX_TEST_THREADS];
    atomic_int bad_nth;
    int expect_nth;
} count_ctx;

static void count_task(void *arg, int ith, int nth)
{
    count_ctx *c = arg;
    if (nth != c->expect_nth || ith < 0 || ith >= nth || ith >= MAX_TEST_THREADS) {
        atomic_fetch_add(&c->bad_nth, 1);
        return;
    }
    atomic_fetch_add(&c->calls[ith], 1);
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Runs the counting task `runs` times on an n-thread pool, sleeping every `sleep_every` runs. */
static void check_each_index_once(int n, int runs, int sleep_every)
{
    thread_pool *p = threads_new(n);
    REQUIRE(p, "threads_new(%d) failed", n);
    EXPECT(threads_count(p) == n, "threads_count = %d, want %d", threads_count(p), n);
    count_ctx c = {.expect_nth = n};
    int first_bad_run = -1;
    for (int run = 0; run < runs; run++) {
        if (sleep_every && run % sleep_every == 0) sleep_us(300);
        threads_run(p, count_task, &c);
        for (int i = 0; i < n && first_bad_run < 0; i++)
            if (atomic_load(&c.calls[i]) != run + 1) first_bad_run = run;
    }
    EXPECT(first_bad_run < 0, "n=%d: a thread index ran a wrong number of times by run %d", n, first_bad_run);
    EXPECT(atomic_load(&c.bad_nth) == 0, "task saw a wrong (ith, nth) %d times", atomic_load(&c.bad_nth));
    threads_free(p);
}

static void pool_two_threads_each_index_once_10000_runs(void) { check_each_index_once(2, 10000, 0); }
static void pool_wakes_sleeping_workers(void) { check_each_index_once(2, 300, 3); }
static void pool_three_threads_oversubscribed(void) { check_each_index_once(3, 2000, 100); }

typedef struct {
    const int *values;
    int n_values;
    long long partial[MAX_TEST_THREADS];
} sum_ctx;

static void sum_task(void *arg, int ith, int nth)
{
    sum_ctx *s = arg;
    int chunk = (s->n_values + nth - 1) / nth;
    int start = ith * chunk, end = start + chunk < s->n_values ? start + chunk : s->n_values;
    long long acc = 0;
    for (int i = start; i < end; i++) acc += s->values[i];
    s->partial[ith] = acc;
}

static void pool_work_split_sums_correctly(void)
{
    enum { N = 100003 };
    static int values[N];
    long long want = 0;
    for (int i = 0; i < N; i++) {
        values[i] = (i * 7919) % 1000 - 500;
        want += values[i];
    }
    for (int n = 1; n <= 4; n++) {
        thread_pool *p = threads_new(n);
        REQUIRE(p, "threads_new(%d) failed", n);
        for (int rep = 0; rep < 50; rep++) {
            sum_ctx s = {values, N, {0}};
            for (int i = 0; i < MAX_TEST_THREADS; i++) s.partial[i] = 1LL << 40; /* poison */
            threads_run(p, sum_task, &s);
            long long got = 0;
            for (int i = 0; i < n; i++) got += s.partial[i];
            if (got != want) {
                EXPECT(0, "n=%d rep=%d: sum %lld, want %lld", n, rep, got, want);
                break;
            }
        }
        threads_free(p);
    }
}

/* Phases separated by threads_barrier: in phase k every thread writes k into its slot, then,
 * after the barrier, checks that every other slot holds k too. A barrier that let a thread
 * through early shows up as a slot still holding k - 1 (or already k + 1: a thread that ran
 * ahead into the next phase before the others had read this one, caught by the second barrier). */
typedef struct {
    thread_pool *pool;
    _Alignas(64) atomic_int slot[MAX_TEST_THREADS];
    atomic_int mismatches;
    int phases;
} barrier_ctx;

static void barrier_task(void *arg, int ith, int nth)
{
    barrier_ctx *b = arg;
    for (int k = 1; k <= b->phases; k++) {
        atomic_store(&b->slot[ith], k);
        threads_barrier(b->pool, ith);
        for (int i = 0; i < nth; i++)
            if (atomic_load(&b->slot[i]) != k) atomic_fetch_add(&b->mismatches, 1);
        threads_barrier(b->pool, ith);
    }
}

/* The barrier in halves: thread 0 arrives, sees that the last thread has not (it holds back
 * until told), tells it to go, and only then may threads_all_arrived say yes. Whoever
 * arrived waits in threads_wait_arrivals until all have. */
typedef struct {
    thread_pool *pool;
    atomic_int go, early_yes, late_no, rounds;
} arrive_ctx;

static void arrive_task(void *arg, int ith, int nth)
{
    arrive_ctx *a = arg;
    for (int r = 1; r <= a->rounds; r++) {
        if (ith == nth - 1)
            while (atomic_load(&a->go) != r) continue;
        unsigned ticket = threads_arrive(a->pool, ith);
        if (ith == 0) {
            if (threads_all_arrived(a->pool, ticket)) atomic_fetch_add(&a->early_yes, 1);
            atomic_store(&a->go, r);
        }
        threads_wait_arrivals(a->pool, ticket);
        if (!threads_all_arrived(a->pool, ticket)) atomic_fetch_add(&a->late_no, 1);
    }
}

static void barrier_in_halves(void)
{
    for (int n = 2; n <= 3; n++) {
        thread_pool *p = threads_new(n);
        REQUIRE(p, "threads_new(%d) failed", n);
        arrive_ctx a = {.pool = p, .rounds = 2000};
        threads_run(p, arrive_task, &a);
        EXPECT(atomic_load(&a.early_yes) == 0, "n=%d: all arrived before the last thread did, %d times", n,
               atomic_load(&a.early_yes));
        EXPECT(atomic_load(&a.late_no) == 0, "n=%d: not all arrived after waiting, %d times", n,
               atomic_load(&a.late_no));
        threads_free(p);
    }
}

static void barrier_separates_phases(void)
{
    for (int n = 1; n <= 3; n++) {
        thread_pool *p = threads_new(n);
        REQUIRE(p, "threads_new(%d) failed", n);
        for (int run = 0; run < 20; run++) {
            barrier_ctx b = {.pool = p, .phases = 500};
            threads_run(p, barrier_task, &b);
            EXPECT(atomic_load(&b.mismatches) == 0, "n=%d run %d: %d reads saw another phase", n, run,
                   atomic_load(&b.mismatches));
            for (int i = 0; i < n; i++)
                EXPECT(atomic_load(&b.slot[i]) == b.phases, "n=%d: thread %d stopped at phase %d", n, i,
                       atomic_load(&b.slot[i]));
            if (run % 5 == 4) sleep_us(300); /* workers asleep when the next run starts */
        }
        threads_free(p);
    }
}

typedef struct {
    pthread_t caller;
    int on_caller, calls, last_ith, last_nth;
} single_ctx;

static void single_task(void *arg, int ith, int nth)
{
    single_ctx *s = arg;
    s->calls++;
    s->on_caller += pthread_equal(pthread_self(), s->caller) != 0;
    s->last_ith = ith;
    s->last_nth = nth;
}

static void pool_of_one_runs_on_the_caller(void)
{
    thread_pool *p = threads_new(1);
    REQUIRE(p, "threads_new(1) failed");
    EXPECT(threads_count(p) == 1, "threads_count = %d", threads_count(p));
    single_ctx s = {.caller = pthread_self()};
    for (int i = 0; i < 5; i++) threads_run(p, single_task, &s);
    EXPECT(s.calls == 5, "calls = %d, want 5", s.calls);
    EXPECT(s.on_caller == 5, "ran on another thread %d times", 5 - s.on_caller);
    EXPECT(s.last_ith == 0 && s.last_nth == 1, "got (ith %d, nth %d)", s.last_ith, s.last_nth);
    threads_free(p);
}

typedef struct {
    atomic_int cpu[MAX_TEST_THREADS];
} cpu_ctx;

static void cpu_task(void *arg, int ith, int nth)
{
    (void)nth;
    atomic_store(&((cpu_ctx *)arg)->cpu[ith], sched_getcpu());
}

static void expect_distinct_cpus(thread_pool *p, int n, const char *which)
{
    for (int run = 0; run < 100; run++) {
        cpu_ctx c;
        threads_run(p, cpu_task, &c);
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                EXPECT(atomic_load(&c.cpu[i]) != atomic_load(&c.cpu[j]), "%s pool, run %d: threads %d and %d both on CPU %d",
                       which, run, i, j, atomic_load(&c.cpu[i]));
    }
}

/* As many threads as CPUs: each runs on its own CPU, also in a second pool made while the
 * first has the caller pinned (prbot bench does that), and the caller gets its mask back. */
static void pool_pins_one_thread_per_cpu(void)
{
    cpu_set_t before, after;
    REQUIRE(sched_getaffinity(0, sizeof before, &before) == 0, "sched_getaffinity failed");
    int n = CPU_COUNT(&before) < MAX_TEST_THREADS ? CPU_COUNT(&before) : MAX_TEST_THREADS;
    if (n < 2) SKIP("needs 2 CPUs");
    thread_pool *p = threads_new(n);
    REQUIRE(p, "threads_new(%d) failed", n);
    expect_distinct_cpus(p, n, "first");
    EXPECT(threads_available() == n || n == MAX_TEST_THREADS, "threads_available() = %d inside a pinned pool, want %d",
           threads_available(), n);
    thread_pool *inner = threads_new(n);
    REQUIRE(inner, "threads_new(%d) failed", n);
    expect_distinct_cpus(inner, n, "second");
    threads_free(inner);
    expect_distinct_cpus(p, n, "first (again)");
    threads_free(p);
    REQUIRE(sched_getaffinity(0, sizeof after, &after) == 0, "sched_getaffinity failed");
    EXPECT(CPU_EQUAL(&before, &after), "the caller's affinity was not restored (%d CPUs, was %d)", CPU_COUNT(&after),
           CPU_COUNT(&before));
}

static void pool_free_without_any_run(void)
{
    thread_pool *p = threads_new(3);
    REQUIRE(p, "threads_new(3) failed");
    threads_free(p);
    threads_free(NULL);
}

static void available_is_within_affinity(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0, "sched_getaffinity failed");
    int n = threads_available();
    EXPECT(n >= 1, "threads_available = %d", n);
    EXPECT(n <= CPU_COUNT(&set), "threads_available = %d > affinity %d", n, CPU_COUNT(&set));
    thread_pool *p = threads_new(0);
    REQUIRE(p, "threads_new(0) failed");
    EXPECT(threads_count(p) == n, "threads_new(0) made %d threads, threads_available says %d", threads_count(p), n);
    threads_free(p);
}

static void cgroup_v2_cpu_max(void)
{
    EXPECT(threads_cgroup_v2_limit("max 100000\n") == 0, "max must mean no limit");
    EXPECT(threads_cgroup_v2_limit("max") == 0, "max without period");
    EXPECT(threads_cgroup_v2_limit("200000 100000\n") == 2, "200000/100000 = %d", threads_cgroup_v2_limit("200000 100000\n"));
    EXPECT(threads_cgroup_v2_limit("150000 100000\n") == 2, "150000/100000 = %d", threads_cgroup_v2_limit("150000 100000\n"));
    EXPECT(threads_cgroup_v2_limit("50000 100000\n") == 1, "50000/100000 = %d", threads_cgroup_v2_limit("50000 100000\n"));
    EXPECT(threads_cgroup_v2_limit("400000 50000\n") == 8, "400000/50000 = %d", threads_cgroup_v2_limit("400000 50000\n"));
    EXPECT(threads_cgroup_v2_limit("300001 100000") == 4, "300001/100000 rounds up");
    EXPECT(threads_cgroup_v2_limit("") == 0, "empty text");
    EXPECT(threads_cgroup_v2_limit("garbage") == 0, "garbage text");
    EXPECT(threads_cgroup_v2_limit(NULL) == 0, "NULL text");
}

static void cgroup_v1_cfs_quota(void)
{
    EXPECT(threads_cgroup_v1_limit("-1\n", "100000\n") == 0, "-1 must mean no limit");
    EXPECT(threads_cgroup_v1_limit("150000\n", "100000\n") == 2, "150000/100000 = %d",
           threads_cgroup_v1_limit("150000\n", "100000\n"));
    EXPECT(threads_cgroup_v1_limit("50000\n", "100000\n") == 1, "50000/100000");
    EXPECT(threads_cgroup_v1_limit("400000\n", "100000\n") == 4, "400000/100000");
    EXPECT(threads_cgroup_v1_limit("100000\n", "0\n") == 0, "zero period");
    EXPECT(threads_cgroup_v1_limit("", "100000") == 0, "empty quota");
}

static void cgroup_path_from_proc_self_cgroup(void)
{
    char path[256];
    const char *v2_only = "0::/user.slice/user-1000.slice/session-2.scope\n";
    EXPECT(threads_cgroup_path(v2_only, 1, path, sizeof path) == 0 &&
               strcmp(path, "/user.slice/user-1000.slice/session-2.scope") == 0,
           "v2 path");
    EXPECT(threads_cgroup_path(v2_only, 0, path, sizeof path) == -1, "no v1 cpu line in a v2-only file");

    const char *hybrid = "12:cpuset:/\n"
                         "11:cpuacct:/wrong\n"
                         "4:cpu,cpuacct:/docker/abc123\n"
                         "1:name=systemd:/init.scope\n"
                         "0::/init.scope\n";
    EXPECT(threads_cgroup_path(hybrid, 0, path, sizeof path) == 0 && strcmp(path, "/docker/abc123") == 0,
           "v1 cpu path, got '%s'", path);
    EXPECT(threads_cgroup_path(hybrid, 1, path, sizeof path) == 0 && strcmp(path, "/init.scope") == 0,
           "v2 path in a hybrid file, got '%s'", path);
    EXPECT(threads_cgroup_path("3:cpuacct:/x\n", 0, path, sizeof path) == -1, "cpuacct is not cpu");
    EXPECT(threads_cgroup_path(hybrid, 0, path, 5) == -1, "too small a buffer must fail");
    EXPECT(threads_cgroup_path("", 1, path, sizeof path) == -1, "empty file");
}

int main(void)
{
    TEST_RUN(pool_two_threads_each_index_once_10000_runs);
    TEST_RUN(pool_wakes_sleeping_workers);
    TEST_RUN(pool_three_threads_oversubscribed);
    TEST_RUN(pool_work_split_sums_correctly);
    TEST_RUN(pool_of_one_runs_on_the_caller);
    TEST_RUN(barrier_separates_phases);
    TEST_RUN(barrier_in_halves);
    TEST_RUN(pool_pins_one_thread_per_cpu);
    TEST_RUN(pool_free_without_any_run);
    TEST_RUN(available_is_within_affinity);
    TEST_RUN(cgroup_v2_cpu_max);
    TEST_RUN(cgroup_v1_cfs_quota);
    TEST_RUN(cgroup_path_from_proc_self_cgroup);
    return test_exit_code();
}
