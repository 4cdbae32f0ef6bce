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

typedef struct thread_pool thread_pool;
typedef void (*thread_task_fn)(void *ctx, int ith, int nth);

/* CPUs this process may really use: sched_getaffinity, capped by the cgroup
 * v2 cpu.max or v1 cfs quota. Always >= 1. */
int threads_available(void);

thread_pool *threads_new(int n_threads);
void threads_free(thread_pool *p);
int threads_count(const thread_pool *p);
void threads_run(thread_pool *p, thread_task_fn fn, void *ctx);

#endif
