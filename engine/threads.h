/*
 * threads.h - one persistent worker pool.
 *
 * threads_run(pool, fn, ctx) calls fn(ctx, ith, nth) on every thread (the
 * caller is thread 0) and returns when all are done. Workers spin briefly,
 * then sleep on a condition variable, so decode steps with hundreds of tiny
 * parallel regions do not pay a futex round-trip each.
 */
#ifndef PRBOT_THREADS_H
#define PRBOT_THREADS_H

#include <stddef.h>

typedef struct thread_pool thread_pool;
typedef void (*thread_task_fn)(void *ctx, int ith, int nth);

/* CPUs this process may really use: sched_getaffinity, capped by the cgroup
 * v2 cpu.max or v1 cfs quota. Always >= 1. */
int threads_available(void);

/* The pieces of threads_available(), exposed for tests. Each limit parser
 * returns ceil(quota / period) for the cgroup file text it is given, or 0
 * when that text sets no limit ("max", -1) or cannot be parsed. */
int threads_cgroup_v2_limit(const char *cpu_max);
int threads_cgroup_v1_limit(const char *cfs_quota_us, const char *cfs_period_us);
/* Finds this process's cgroup path in /proc/self/cgroup text: the "0::" line
 * for v2 (want_v2 = 1), or the line whose controllers include "cpu" for v1.
 * Writes it to out and returns 0, or -1 when there is none or it does not fit. */
int threads_cgroup_path(const char *proc_self_cgroup, int want_v2, char *out, size_t cap);

thread_pool *threads_new(int n_threads);
void threads_free(thread_pool *p);
int threads_count(const thread_pool *p);
void threads_run(thread_pool *p, thread_task_fn fn, void *ctx);
/* Inside a task, called by thread ith: returns once every thread of the
 * pool has called it (the task's phases before it are done everywhere).
 * Every thread must call it the same number of times. A no-op on a
 * one-thread pool. */
void threads_barrier(thread_pool *p, int ith);
/* The same barrier in halves, for a thread with something useful to do while
 * the others arrive: threads_arrive() counts thread ith in and returns its
 * ticket; threads_all_arrived() says, without waiting, whether every thread
 * has arrived; threads_wait_arrivals() returns once they have. */
unsigned threads_arrive(thread_pool *p, int ith);
int threads_all_arrived(const thread_pool *p, unsigned ticket);
void threads_wait_arrivals(thread_pool *p, unsigned ticket);

#endif
