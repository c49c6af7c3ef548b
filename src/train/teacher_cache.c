/* teacher_cache.c - the teacher's outputs kept in memory (distill.
 * teacher_cache): the first epoch computes them, later epochs read them,
 * so a distillation step costs a student step only. Each rank keeps the
 * samples of its own shard; data.augment turns the cache off (an augmented
 * image differs each epoch). Not for the loss on those outputs (distill.c)
 * or for the teacher's loading (setup.c). */
#include <string.h>

#include "ocrkd/dist.h"
#include "trainer_internal.h"

#define TEACHER_CACHE_AUTO_BYTES (2UL << 30) /* per rank */

void teacher_cache_init(Trainer *t) {
    const Config *c = t->cfg;
    t->cache.rows = NULL;
    t->cache.n_files = c->n_train;
    if (t->mode != MODE_DISTILL || c->teacher_cache == TEACHER_CACHE_OFF) return;
    if (c->augment) {
        if (c->teacher_cache == TEACHER_CACHE_ON)
            warn0("distill.teacher_cache: on is ignored because data.augment is on");
        return;
    }
    int P = dist_world(), r = dist_rank();
    long slots = 0;
    t->cache.file_offset = xcalloc((size_t)c->n_train, sizeof(long));
    for (int k = 0; k < c->n_train; k++) {
        DatasetMeta dm;
        Err err = {0};
        fail_if(dataset_read_meta(c->train[k], &dm, &err), &err);
        dm.n = dataset_limited(dm.n, c->train_limit);
        if (c->n_train == 1) {
            t->cache.shard_start = (long)((long long)r * dm.n / P);
            slots = (long)((long long)(r + 1) * dm.n / P) - t->cache.shard_start;
        } else if (k % P == r) {
            t->cache.file_offset[k] = slots;
            slots += dm.n;
        } else {
            t->cache.file_offset[k] = -1;
        }
        dataset_meta_free(&dm);
    }
    t->cache.parts[0] = 2 * t->teacher->arch.enc_hidden;
    t->cache.parts[1] = loss_needs_feat(&t->loss_conf) ? t->teacher->arch.feature_dim : 0;
    t->cache.parts[2] = loss_needs_logp(&t->loss_conf) ? t->teacher->arch.num_classes : 0;
    size_t row =
        (size_t)t->student->T * (t->cache.parts[0] + t->cache.parts[1] + t->cache.parts[2]);
    double bytes = (double)slots * row * sizeof(float);
    double most = 0;
    if (c->teacher_cache == TEACHER_CACHE_AUTO) most = (double)TEACHER_CACHE_AUTO_BYTES;
    /* every rank must agree on whether the cache is on */
    double fits[1] = {c->teacher_cache == TEACHER_CACHE_ON || bytes <= most ? 0.0 : 1.0};
    dist_allreduce_sum_f64(fits, 1);
    if (fits[0] > 0) {
        printf0("cache    teacher outputs not cached (%.0f MiB per rank > %.0f MiB)\n",
                bytes / 1048576, most / 1048576);
        return;
    }
    t->cache.slots = slots;
    t->cache.rows = xalloc_floats((size_t)slots * row);
    t->cache.cached = xcalloc((size_t)slots, 1);
    for (int p = 0; p < 3; p++)
        t->cache.batch[p] =
            xalloc_floats((size_t)c->batch_size * t->student->T * t->cache.parts[p]);
    printf0("cache    teacher encoder outputs cached in memory: %.0f MiB per rank\n",
            bytes / 1048576);
}

static long cache_slot(const Trainer *t, const Batch *b, int i) {
    long slot = t->cache.n_files == 1 ? b->index[i] - t->cache.shard_start
                                      : t->cache.file_offset[b->file[i]] + b->index[i];
    if (slot < 0 || slot >= t->cache.slots) fatal(1, "internal: teacher cache slot %ld", slot);
    return slot;
}

/* Moves sample i's (T,c) rows between the cache row and a (T,B,c) batch. */
static void cache_copy(float *batch, float *row, int T, int B, int i, int c, int to_batch) {
    for (int s = 0; s < T; s++) {
        float *bt = batch + ((size_t)s * B + i) * c, *rw = row + (size_t)s * c;
        memcpy(to_batch ? bt : rw, to_batch ? rw : bt, c * sizeof(float));
    }
}

/* The teacher's outputs for the batch: from the cache when every sample is
 * there, else a teacher forward (which fills the cache). */
TeacherView teacher_outputs(Trainer *t, const Batch *b) {
    int T = t->student->T, B = b->B;
    const int *cp = t->cache.parts;
    size_t row = (size_t)T * (cp[0] + cp[1] + cp[2]);
    if (t->cache.rows) {
        int all = 1;
        for (int i = 0; i < B && all; i++)
            all = t->cache.cached[cache_slot(t, b, i)];
        if (all) {
            for (int i = 0; i < B; i++) {
                float *src = t->cache.rows + (size_t)cache_slot(t, b, i) * row;
                for (int p = 0; p < 3; src += (size_t)T * cp[p], p++)
                    if (cp[p]) cache_copy(t->cache.batch[p], src, T, B, i, cp[p], 1);
            }
            return (TeacherView){t->cache.batch[0], cp[1] ? t->cache.batch[1] : NULL,
                                 cp[2] ? t->cache.batch[2] : NULL};
        }
    }
    int logits = loss_needs_logp(&t->loss_conf);
    Crnn *te = t->teacher;
    crnn_forward(te, b->images, B, BN_RUNNING_STATS, logits ? UPTO_LOGITS : UPTO_ENCODER);
    if (t->cache.rows) {
        float *out[3] = {te->enc, te->feat, te->logp};
        for (int i = 0; i < B; i++) {
            long slot = cache_slot(t, b, i);
            float *dst = t->cache.rows + (size_t)slot * row;
            for (int p = 0; p < 3; dst += (size_t)T * cp[p], p++)
                if (cp[p]) cache_copy(out[p], dst, T, B, i, cp[p], 0);
            t->cache.cached[slot] = 1;
        }
    }
    return (TeacherView){te->enc, loss_needs_feat(&t->loss_conf) ? te->feat : NULL,
                         logits ? te->logp : NULL};
}
