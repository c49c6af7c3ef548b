/* pool.c - the threads inside a rank (pool.h): a persistent pool of
 * workers that run one job at a time, each its own part, the caller part 0.
 * Workers spin a short while on the job counter (the gaps between a step's
 * jobs are short), then sleep on a condition variable.
 * Not for: choosing the thread count (dist.c does, from run.threads /
 * OCRKD_THREADS) or splitting a particular kind of work (the callers do).
 */
#include "ocrkd/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "ocrkd/common.h"
#include "ocrkd/denormals.h"

/* Spinning waits poll with plain loads and a short counted delay, not with
 * PAUSE: under a hypervisor with pause-loop exiting (KVM's PLE; this
 * project's machines are Firecracker VMs), a vCPU that runs PAUSE back to
 * back is taken for a lock waiter, exits to the host and may give up its
 * physical core, and the other thread then waits for it. PAUSE measured
 * 45 ns here, and one rank x 2 threads ran at 1.0-1.7x of one thread from
 * run to run. SPIN_ROUNDS x spin_relax is about a millisecond. */
#define SPIN_ROUNDS 50000

static inline void spin_relax(void) {
    for (volatile int i = 0; i < 8; i++) {
    }
}

static int g_threads = 1;
static pthread_t *g_workers;
static int g_nworkers;
static struct {
    PoolPartFn fn;
    void *ctx;
    int parts;
    unsigned fpmode; /* the caller's denormal mode (denormals.h): parts run in it */
} g_job;
static atomic_uint g_gen;
static atomic_int g_pending;
static atomic_int g_sleepers;
static atomic_int g_busy; /* a job is running: a nested one runs serially */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

static void *worker(void *arg) {
    const int part = (int)(intptr_t)arg;
    unsigned seen = 0, fpmode = denormals_mode_get();
    for (;;) {
        unsigned g = atomic_load_explicit(&g_gen, memory_order_acquire);
        for (int r = 0; r < SPIN_ROUNDS && g == seen; r++) {
            spin_relax();
            g = atomic_load_explicit(&g_gen, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&g_mu);
            atomic_fetch_add(&g_sleepers, 1);
            while ((g = atomic_load(&g_gen)) == seen)
                pthread_cond_wait(&g_cv, &g_mu);
            atomic_fetch_sub(&g_sleepers, 1);
            pthread_mutex_unlock(&g_mu);
        }
        seen = g;
        if (g_job.fpmode != fpmode) denormals_mode_set(fpmode = g_job.fpmode);
        if (part < g_job.parts) g_job.fn(g_job.ctx, part, g_job.parts);
        atomic_fetch_sub_explicit(&g_pending, 1, memory_order_release);
    }
    return NULL;
}

int pool_set_threads(int threads) {
    if (threads < 1) threads = 1;
    if (threads > POOL_MAX_THREADS) threads = POOL_MAX_THREADS;
    if (threads - 1 > g_nworkers) { /* workers are never stopped: the pool only grows */
        pthread_t *w = realloc(g_workers, (size_t)(threads - 1) * sizeof *w);
        if (!w) fatal(1, "thread pool: out of memory for %d threads", threads);
        g_workers = w;
        for (int i = g_nworkers; i < threads - 1; i++) {
            if (pthread_create(&g_workers[i], NULL, worker, (void *)(intptr_t)(i + 1)))
                fatal(1, "thread pool: cannot start thread %d of %d", i + 2, threads);
            pthread_detach(g_workers[i]);
            g_nworkers = i + 1;
        }
    }
    g_threads = threads;
    return threads;
}

int pool_threads(void) {
    return g_threads;
}

void pool_run(int parts, PoolPartFn fn, void *ctx) {
    if (parts > g_threads) parts = g_threads;
    if (parts <= 1 || atomic_exchange(&g_busy, 1)) {
        for (int p = 0; p < (parts < 1 ? 1 : parts); p++)
            fn(ctx, p, parts < 1 ? 1 : parts);
        return;
    }
    g_job.fn = fn;
    g_job.ctx = ctx;
    g_job.parts = parts;
    g_job.fpmode = denormals_mode_get();
    atomic_store(&g_pending, g_nworkers);
    pthread_mutex_lock(&g_mu);
    atomic_fetch_add_explicit(&g_gen, 1, memory_order_release);
    if (atomic_load(&g_sleepers)) pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    fn(ctx, 0, parts);
    for (long r = 0; atomic_load_explicit(&g_pending, memory_order_acquire) > 0; r++)
        if (r < SPIN_ROUNDS)
            spin_relax();
        else
            sched_yield();
    atomic_store(&g_busy, 0);
}

typedef struct {
    size_t n;
    PoolRangeFn fn;
    void *ctx;
} RangeJob;

static void range_part(void *arg, int part, int parts) {
    const RangeJob *j = arg;
    const size_t lo = j->n * (size_t)part / (size_t)parts,
                 hi = j->n * (size_t)(part + 1) / (size_t)parts;
    if (hi > lo) j->fn(j->ctx, lo, hi);
}

void pool_for(size_t n, size_t cost_per_item, PoolRangeFn fn, void *ctx) {
    if (n == 0) return;
    int parts = g_threads;
    if ((size_t)parts > n) parts = (int)n;
    if (parts <= 1 || n * cost_per_item < POOL_MIN_WORK) {
        fn(ctx, 0, n);
        return;
    }
    RangeJob j = {n, fn, ctx};
    pool_run(parts, range_part, &j);
}
