/* grad_sync.c - the allreduce of the trainable gradients, overlapped with
 * backward: crnn_backward reports (Crnn.grads_ready) when every gradient
 * above an offset is final, block by block from the classifier down to the
 * stem; each time at least a bucket of them is ready it is checked for
 * non-finite values and its MPI_Iallreduce started, so the reduction of
 * the upper layers runs while the lower ones compute. What is left (the
 * stem and a partial bucket) is started after backward, then all are
 * waited for and divided by the world size. With buckets off
 * (OCRKD_BUCKET_KB=0, or one rank) the whole vector is that rest: one
 * reduction after backward.
 *
 * Every rank starts the same buckets in the same order (the same model and
 * bucket size), as MPI requires. A sum of P values per element does not
 * depend on how the vector is cut, so with 2 ranks the result is
 * bit-identical to one MPI_Allreduce; with more, Open MPI may pick another
 * algorithm for another message size (a different but deterministic order).
 * Not for: what trains (setup.c), the skip of a bad step (trainer.c).
 */
#include <math.h>
#include <stdlib.h>

#include "ocrkd/dist.h"
#include "ocrkd/optim.h"
#include "trainer_internal.h"

/* the trainer's test of a gradient, as before the buckets: a finite 2-norm */
static int all_finite(const float *g, size_t n) {
    return isfinite(grad_norm(g, n));
}

static void on_grads_ready(void *ctx, size_t lo) {
    Trainer *t = ctx;
    if (t->sync.sent_lo - lo < t->sync.bucket) return;
    float *g = t->student->grads + lo;
    size_t n = t->sync.sent_lo - lo;
    if (!all_finite(g, n)) t->sync.bad = 1;
    dist_isum_f32_start(g, n);
    t->sync.sent_lo = lo;
}

void grad_sync_setup(Trainer *t) {
    Crnn *s = t->student;
    long kb = GRAD_BUCKET_KB;
    const char *env = getenv("OCRKD_BUCKET_KB");
    if (env && *env) {
        char *end;
        kb = strtol(env, &end, 10);
        if (*end || kb < 0)
            fatal(EXIT_USAGE, "OCRKD_BUCKET_KB=%s: not a size in KiB (0 = off)", env);
    }
    /* at most about DIST_MAX_PENDING / 2 buckets per step */
    size_t floats = (size_t)kb * 1024 / sizeof(float),
           min = s->n_trainable / (DIST_MAX_PENDING / 2);
    t->sync.bucket = kb == 0 || dist_world() == 1 ? 0 : floats > min ? floats : min + 1;
    s->grads_ready = t->sync.bucket ? on_grads_ready : NULL;
    s->grads_ready_ctx = t;
}

void grad_sync_begin(Trainer *t) {
    t->sync.sent_lo = t->student->n_trainable;
    t->sync.bad = 0;
}

int grad_sync_local_bad(const Trainer *t) {
    return t->sync.bad || !all_finite(t->student->grads, t->sync.sent_lo);
}

void grad_sync_finish(Trainer *t, int apply) {
    Crnn *s = t->student;
    if (apply) dist_isum_f32_start(s->grads, t->sync.sent_lo); /* the rest: stem, partial bucket */
    dist_isum_wait();
    if (!apply || dist_world() == 1) return;
    const float inv = 1.0f / (float)dist_world();
    for (size_t i = 0; i < s->n_trainable; i++) s->grads[i] *= inv;
}
