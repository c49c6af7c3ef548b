/* pool.h - the threads inside a rank (src/nn/pool.c): a persistent pool that
 * runs one job at a time in parts, the caller being part 0. gemm_f32 splits
 * its products over it; conv.c and batchnorm.c split their passes over
 * channels or rows with pool_for.
 *
 * Determinism: a part's range depends only on the size and the part count,
 * and every user splits work whose results do not depend on the split
 * (disjoint outputs, per-channel sums kept whole), so results are
 * bit-identical for any thread count.
 * Not for: nesting (a job started from inside a part runs serially), more
 * than one caller thread, work that needs a reduction across parts.
 */
#ifndef OCRKD_POOL_H
#define OCRKD_POOL_H

#include <stddef.h>

#define POOL_MAX_THREADS 256

/* Threads from now on (clamped to 1..POOL_MAX_THREADS; the pool only grows,
 * idle workers sleep); returns the count set. */
int pool_set_threads(int threads);
int pool_threads(void);

/* Runs fn(ctx, part, parts) for part 0..parts-1 (parts clamped to
 * 1..pool_threads()), part 0 on the caller; returns when all are done. */
typedef void (*PoolPartFn)(void *ctx, int part, int parts);
void pool_run(int parts, PoolPartFn fn, void *ctx);

/* fn(ctx, lo, hi) over [0, n) in pool_threads() contiguous ranges (range p:
 * [p n / parts, (p + 1) n / parts)), or in one call when n * cost_per_item
 * is below POOL_MIN_WORK (a hand-off costs more than it saves). */
#define POOL_MIN_WORK 16384
typedef void (*PoolRangeFn)(void *ctx, size_t lo, size_t hi);
void pool_for(size_t n, size_t cost_per_item, PoolRangeFn fn, void *ctx);

#endif
