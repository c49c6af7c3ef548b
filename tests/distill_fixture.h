/* distill_fixture.h - a tiny teacher/student pair and batches of NB images
 * for the tests of the distillation loss (tests/test_unlabeled.c,
 * tests/mpi/test_dist_grad.c), and the hand-computed gradient of a batch
 * that mixes labeled and unlabeled samples: the distance terms on the whole
 * batch plus the CTC of the labeled samples alone, taken from two separate
 * computations (doc/distill.md "Unlabeled data"). */
#ifndef OCRKD_TEST_DISTILL_FIXTURE_H
#define OCRKD_TEST_DISTILL_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "ocrkd/distill.h"

#define NB 3
#define WIDTH 20
#define LMAX 4

static inline ModelArch fixture_arch(int width) {
    ModelArch a = {{1, 1, 1, 1}, 0, width, 8, 2, 6, 6, {0, 0, 0, 0}};
    return a;
}

static inline Crnn *make_teacher(void) {
    ModelArch a = fixture_arch(6);
    Crnn *t = crnn_create(&a, NB, WIDTH, 0);
    crnn_init_params(t, 1);
    /* non-trivial running stats so inference-mode BN matters */
    for (int i = 0; i < t->ntensors; i++) {
        TensorInfo *ti = &t->tensors[i];
        float *p = crnn_tensor(t, ti);
        if (strstr(ti->name, "running_var"))
            for (size_t k = 0; k < ti->numel; k++)
                p[k] = 0.5f + 0.1f * (float)(k % 7);
        if (strstr(ti->name, "running_mean"))
            for (size_t k = 0; k < ti->numel; k++)
                p[k] = 0.05f * (float)(k % 5);
    }
    return t;
}

static inline Crnn *make_student(const Crnn *teacher) {
    ModelArch a = fixture_arch(4);
    Crnn *s = crnn_create(&a, NB, WIDTH, 1);
    crnn_init_params(s, 2);
    Err err = {0};
    if (crnn_copy_part(s, teacher, PART_ENCODER | PART_CLASSIFIER, &err)) fatal_err(&err);
    crnn_set_trainable(s, PART_EXTRACTOR);
    return s;
}

/* Shard r: NB images and labels, the same on every rank that asks; with
 * labeled != NULL, sample b is unlabeled when labeled[b] == 0 (label
 * length 0, as the loader gives it). */
typedef struct {
    float img[NB * IMAGE_H * WIDTH];
    int labels[NB * LMAX], lens[NB];
    long index[NB];
    int file[NB];
    unsigned char labeled[NB];
    Batch b;
} Shard;

static inline void make_shard_mixed(Shard *s, int r, const unsigned char *labeled) {
    Rng g;
    rng_seed(&g, 1000 + (uint64_t)r);
    for (int i = 0; i < NB * IMAGE_H * WIDTH; i++)
        s->img[i] = (float)rng_uniform(&g);
    int n = 0;
    memset(&s->b, 0, sizeof s->b);
    for (int b = 0; b < NB; b++) {
        s->labeled[b] = labeled ? labeled[b] : 1;
        s->lens[b] = 1 + (int)rng_below(&g, LMAX);
        if (!s->labeled[b]) s->lens[b] = 0;
        for (int k = 0; k < s->lens[b]; k++)
            s->labels[n++] = 1 + (int)rng_below(&g, 5);
        s->index[b] = r * NB + b;
        s->file[b] = 0;
        s->b.n_labeled += s->labeled[b];
    }
    s->b.B = NB;
    s->b.H = IMAGE_H;
    s->b.W = WIDTH;
    s->b.images = s->img;
    s->b.labels = s->labels;
    s->b.label_lens = s->lens;
    s->b.index = s->index;
    s->b.file = s->file;
    s->b.labeled = labeled ? s->labeled : NULL;
}

static inline void make_shard(Shard *s, int r) {
    make_shard_mixed(s, r, NULL);
}

/* The gradient of batch b by hand, into out (n_trainable): (1) the distance
 * terms alone (ctc_weight 0) on the whole batch, (2) one student forward on
 * the whole batch (batch-stat BN sees every sample), the log-posteriors of
 * the labeled samples copied into a batch of their own, plain ctc_loss on it
 * (the mean over those samples), its dlogits scattered back with zeros for
 * the unlabeled samples, one backward; out = (1) + (2). Returns the loss. */
static inline double hand_mixed_gradient(Crnn *s, const TeacherView *tv, const Batch *b,
                                         const LossConf *lc, float *out) {
    int B = b->B, T = s->T, K = s->arch.num_classes;
    size_t n = s->n_trainable;
    LossScratch w;
    loss_scratch_init(&w, s, LMAX);
    LossConf dist_only = *lc;
    dist_only.ctc_weight = 0;
    LossTerms d = student_gradients(s, tv, b, &dist_only, &w);
    memcpy(out, s->grads, n * sizeof(float));

    crnn_forward(s, b->images, B, 1, UPTO_LOGITS);
    int nl = 0, labs[NB * LMAX], lens[NB], at = 0, off = 0;
    float *sub = xalloc_floats((size_t)T * B * K), *dsub = xalloc_floats((size_t)T * B * K);
    float *dfull = xalloc_floats((size_t)T * B * K);
    int map[NB];
    for (int i = 0; i < B; i++) {
        int L = b->label_lens[i];
        if (!b->labeled || b->labeled[i]) {
            map[nl] = i;
            lens[nl++] = L;
            memcpy(labs + at, b->labels + off, (size_t)L * sizeof(int));
            at += L;
        }
        off += L;
    }
    for (int t = 0; t < T; t++)
        for (int j = 0; j < nl; j++)
            memcpy(sub + ((size_t)t * nl + j) * K, s->logp + ((size_t)t * B + map[j]) * K,
                   (size_t)K * sizeof(float));
    double ctc = 0;
    if (nl > 0) {
        double *ws = xmalloc(ctc_workspace_doubles(T, nl, LMAX) * sizeof(double));
        ctc = ctc_loss(sub, T, nl, K, labs, lens, NULL, dsub, lc->ctc_weight, ws);
        free(ws);
        for (int t = 0; t < T; t++)
            for (int j = 0; j < nl; j++)
                memcpy(dfull + ((size_t)t * B + map[j]) * K, dsub + ((size_t)t * nl + j) * K,
                       (size_t)K * sizeof(float));
    }
    crnn_zero_grad(s);
    crnn_backward(s, dfull, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        out[i] += s->grads[i];
    free(sub);
    free(dsub);
    free(dfull);
    loss_scratch_free(&w);
    return d.distance + lc->ctc_weight * ctc;
}

#endif
