/* test_model.c - the CRNN model (src/model): the named tensor table against
 * counts from torchvision / data-tools/crnn_torch.py, trainable prefixes,
 * time steps, a finite-difference check of crnn_backward on every kind of
 * parameter, frozen parts, inference vs train models, copy by name, and the
 * architecture from a config. PyTorch parity of whole-model outputs lives in
 * another test (tests/ref). Tiny models, a few seconds. */
#include <math.h>
#include <string.h>

#include "../src/model/model_internal.h" /* extractor_set_chunk */
#include "ocrkd/config.h" /* arch_from_config */
#include "ocrkd/model.h"
#include "test.h"

#ifndef BETA_LO
#define BETA_LO 1.5f
#define BETA_HI 2.5f
#endif
#ifndef TINY_BOTTLENECK_W
#define TINY_BOTTLENECK_W 2
#endif
static ModelArch tiny_arch(int bottleneck) {
    ModelArch a = {{1, 2, 1, 1}, bottleneck, bottleneck ? TINY_BOTTLENECK_W : 4, 6, 2, 5, 7, {0, 0, 0, 0}};
    return a;
}

static void fill_random(float *p, size_t n, Rng *r, float lo, float hi) {
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rng_uniform(r);
}

/* Random running statistics, so inference BN is not the identity. */
static void randomize_running_stats(Crnn *m, Rng *r) {
    for (int i = 0; i < m->ntensors; i++) {
        TensorInfo *t = &m->tensors[i];
        if (!t->is_buffer) continue;
        int var = strstr(t->name, "running_var") != NULL;
        fill_random(crnn_tensor(m, t), t->numel, r, var ? 0.5f : -0.2f, var ? 1.5f : 0.2f);
    }
}

static int shape_is(const Crnn *m, const char *name, int ndim, int d0, int d1, int d2, int d3) {
    const TensorInfo *t = crnn_find(m, name);
    int want[4] = {d0, d1, d2, d3};
    if (!t || t->ndim != ndim) return 0;
    for (int d = 0; d < ndim; d++)
        if (t->shape[d] != want[d]) return 0;
    return 1;
}

static size_t sum_part(const Crnn *m, int part, int buffers) {
    size_t n = 0;
    for (int i = 0; i < m->ntensors; i++)
        if ((m->tensors[i].part & part) && m->tensors[i].is_buffer == buffers)
            n += m->tensors[i].numel;
    return n;
}

static void test_table(void) {
    /* ResNet-18 w64: torchvision resnet18 (11,689,512) - fc (513,000) - its
     * 7x7 conv1 (9,408) + our 3x3 conv1 (576) + layer1's downsample (conv
     * 64x64 + BN 2x64 = 4,224: layer1 strides here) + neck 512 -> 256. */
    ModelArch a = {{2, 2, 2, 2}, 0, 64, 256, 2, 256, 37, {0, 0, 0, 0}};
    Crnn *m = crnn_create(&a, 1, 16, 0);
    size_t ext = 11689512 - 513000 - 9408 + 576 + 4224 + 512 * 256 + 256;
    CHECK(m->count[PART_EXTRACTOR] == ext, "resnet18 extractor %zu != %zu",
          m->count[PART_EXTRACTOR], ext);
    CHECK(m->count[PART_CLASSIFIER] == 37 * 512 + 37, "classifier %zu", m->count[PART_CLASSIFIER]);
    /* nn.LSTM(256, 256, 2, bidirectional): 2 dirs x (4H(I + H) + 8H) per layer */
    size_t enc = 2 * (1024 * (256 + 256) + 2048) + 2 * (1024 * (512 + 256) + 2048);
    CHECK(m->count[PART_ENCODER] == enc, "encoder %zu != %zu", m->count[PART_ENCODER], enc);
    CHECK(shape_is(m, "extractor.conv1.weight", 4, 64, 1, 3, 3), "conv1 shape");
    CHECK(shape_is(m, "extractor.layer1.0.downsample.0.weight", 4, 64, 64, 1, 1), "layer1 ds");
    CHECK(shape_is(m, "extractor.layer4.1.bn2.running_var", 1, 512, 0, 0, 0), "bn buffer");
    CHECK(shape_is(m, "extractor.neck.weight", 2, 256, 512, 0, 0), "neck");
    CHECK(shape_is(m, "encoder.weight_ih_l1_reverse", 2, 1024, 512, 0, 0), "lstm l1 reverse");
    CHECK(shape_is(m, "encoder.bias_hh_l0", 1, 1024, 0, 0, 0), "lstm bias");
    CHECK(shape_is(m, "classifier.weight", 2, 37, 512, 0, 0), "classifier");
    CHECK(!crnn_find(m, "extractor.layer1.1.downsample.0.weight"), "no ds in block 1");
    CHECK(!crnn_find(m, "extractor.bn1.num_batches_tracked"), "no num_batches_tracked");
    crnn_free(m);

    /* ResNet-50 w64: torchvision resnet50 (25,557,032) - fc (2,049,000) -
     * conv1 (9,408) + ours (576) + neck 2048 -> 256 (layer1 already has a
     * downsample there, a stride costs no parameters). */
    ModelArch b = {{3, 4, 6, 3}, 1, 64, 256, 1, 8, 5, {0, 0, 0, 0}};
    m = crnn_create(&b, 1, 8, 0);
    ext = 25557032 - 2049000 - 9408 + 576 + 2048 * 256 + 256;
    CHECK(m->count[PART_EXTRACTOR] == ext, "resnet50 extractor %zu != %zu",
          m->count[PART_EXTRACTOR], ext);
    crnn_free(m);

    /* Tiny bottleneck: numbers from crnn_torch.CRNN([1,1,1,1], 'bottleneck',
     * 2, 8, 1, 5, 7) - its state_dict has 97 tensors besides num_batches_tracked. */
    ModelArch c = {{1, 1, 1, 1}, 1, 2, 8, 1, 5, 7, {0, 0, 0, 0}};
    m = crnn_create(&c, 2, 18, 1);
    CHECK(m->count[PART_EXTRACTOR] == 8942, "tiny extractor %zu", m->count[PART_EXTRACTOR]);
    CHECK(m->count[PART_ENCODER] == 600, "tiny encoder %zu", m->count[PART_ENCODER]);
    CHECK(m->n_buffers == 604, "tiny buffers %zu", m->n_buffers);
    CHECK(m->ntensors == 97, "tiny tensors %d", m->ntensors);
    /* layout: contiguous, parts in order extractor, classifier, encoder, buffers */
    int contiguous = 1, ordered = 1, prev_rank = 0;
    for (int i = 0; i < m->ntensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        size_t end = i + 1 < m->ntensors ? m->tensors[i + 1].offset : m->nparams;
        if (t->offset + t->numel != end) contiguous = 0;
        int rank = t->is_buffer ? 3 : t->part == PART_EXTRACTOR ? 0 : t->part == PART_CLASSIFIER ? 1 : 2;
        if (rank < prev_rank) ordered = 0;
        prev_rank = rank;
    }
    CHECK(contiguous && m->tensors[0].offset == 0, "tensors not contiguous");
    CHECK(ordered, "tensor order is not extractor, classifier, encoder, buffers");
    CHECK(m->nparams == sum_part(m, PART_ALL, 0) + sum_part(m, PART_ALL, 1), "nparams");
    CHECK(m->count[PART_CLASSIFIER] == sum_part(m, PART_CLASSIFIER, 0), "count[classifier]");
    crnn_free(m);
}

static void test_trainable_and_steps(void) {
    ModelArch a = tiny_arch(0);
    Crnn *m = crnn_create(&a, 2, 18, 1);
    size_t e = m->count[PART_EXTRACTOR], c = m->count[PART_CLASSIFIER];
    CHECK(m->trainable == PART_ALL && m->n_trainable == e + c + m->count[PART_ENCODER],
          "default trainable");
    CHECK(crnn_set_trainable(m, PART_EXTRACTOR) == 0 && m->n_trainable == e, "extractor prefix");
    CHECK(crnn_set_trainable(m, PART_EXTRACTOR | PART_CLASSIFIER) == 0 && m->n_trainable == e + c,
          "extractor+classifier prefix");
    CHECK(crnn_set_trainable(m, PART_CLASSIFIER) == -1, "classifier alone is not a prefix");
    CHECK(crnn_set_trainable(m, PART_EXTRACTOR | PART_ENCODER) == -1, "not a prefix");
    CHECK(m->n_trainable == e + c, "failed set_trainable changed the prefix");
    const TensorInfo *cw = crnn_find(m, "classifier.weight");
    CHECK(cw->offset >= e && cw->offset + cw->numel <= e + c, "classifier inside its slice");
    crnn_free(m);
    /* T as crnn_torch.time_steps: two stride-2 3x3 pad-1 convs along the width */
    const int widths[] = {1, 4, 17, 18, 19, 21, 128}, want[] = {1, 1, 5, 5, 5, 6, 32};
    for (size_t i = 0; i < ARRAY_LEN(widths); i++)
        CHECK(crnn_time_steps(widths[i]) == want[i], "T(%d) = %d, want %d", widths[i],
              crnn_time_steps(widths[i]), want[i]);
}

/* ---- finite differences ---- */

typedef struct {
    int B, n_img, n_lp, n_enc, n_feat;
    float *img, *r1, *r2, *r3, *d_logits;
} Probe;

static Probe probe_new(const Crnn *m, int B, Rng *r) {
    Probe p = {B,    B * IMAGE_H * m->width, m->T * B * m->arch.num_classes,
               m->T * B * 2 * m->arch.enc_hidden, m->T * B * m->arch.feature_dim,
               NULL, NULL, NULL, NULL, NULL};
    p.img = xalloc_floats((size_t)p.n_img);
    p.r1 = xalloc_floats((size_t)p.n_lp);
    p.r2 = xalloc_floats((size_t)p.n_enc);
    p.r3 = xalloc_floats((size_t)p.n_feat);
    p.d_logits = xalloc_floats((size_t)p.n_lp);
    fill_random(p.img, (size_t)p.n_img, r, 0, 1);
    fill_random(p.r1, (size_t)p.n_lp, r, -1, 1);
    fill_random(p.r2, (size_t)p.n_enc, r, -1, 1);
    fill_random(p.r3, (size_t)p.n_feat, r, -1, 1);
    return p;
}

static void probe_free(Probe *p) {
    free(p->img);
    free(p->r1);
    free(p->r2);
    free(p->r3);
    free(p->d_logits);
}

/* loss = sum(logp * R1) + sum(enc * R2) + sum(feat * R3), train-mode BatchNorm */
static double probe_loss(Crnn *m, const Probe *p) {
    crnn_forward(m, p->img, p->B, 1, UPTO_LOGITS);
    double s = 0;
    for (int i = 0; i < p->n_lp; i++) s += (double)m->logp[i] * p->r1[i];
    for (int i = 0; i < p->n_enc; i++) s += (double)m->enc[i] * p->r2[i];
    for (int i = 0; i < p->n_feat; i++) s += (double)m->feat[i] * p->r3[i];
    return s;
}

/* Loss, then gradients into m->grads: d/dlogits of sum(logp*R1) is
 * R1 - softmax * sum_k R1 per row. */
static double probe_backward(Crnn *m, const Probe *p) {
    double loss = probe_loss(m, p);
    int K = m->arch.num_classes, N = p->n_lp / K;
    for (int n = 0; n < N; n++) {
        double sr = 0;
        for (int k = 0; k < K; k++) sr += p->r1[n * K + k];
        for (int k = 0; k < K; k++)
            p->d_logits[n * K + k] = (float)(p->r1[n * K + k] - exp(m->logp[n * K + k]) * sr);
    }
    crnn_zero_grad(m);
    crnn_backward(m, p->d_logits, p->r2, p->r3);
    return loss;
}

enum { K_CONV, K_BN, K_DS, K_NECK, K_LSTM, K_CLS, K_COUNT };
static const char *k_kind_names[K_COUNT] = {"conv", "batchnorm", "downsample",
                                            "neck", "lstm", "classifier"};

static int kind_of(const TensorInfo *t) {
    if (strstr(t->name, "downsample")) return K_DS;
    if (strstr(t->name, "neck")) return K_NECK;
    if (t->part == PART_ENCODER) return K_LSTM;
    if (t->part == PART_CLASSIFIER) return K_CLS;
    return t->ndim == 4 ? K_CONV : K_BN;
}

#define MAX_SAMPLES 400

/* Central difference of the probe loss in parameter *x. */
static double central_diff(Crnn *m, const Probe *p, float *x, float eps) {
    float x0 = *x;
    *x = x0 + eps;
    double lp = probe_loss(m, p);
    *x = x0 - eps;
    double lm = probe_loss(m, p);
    *x = x0;
    return (lp - lm) / (2.0 * (double)eps);
}

/* Central differences on `per` random elements of every trainable tensor,
 * compared with crnn_backward, grouped by kind of layer. ReLU kinks make
 * finite differences meaningless at some points: where three step sizes
 * disagree the point is skipped (counted), so a wrong gradient, which all
 * step sizes see alike, still fails. The steps are 1e-3, 2e-3 and 4e-3:
 * the float forward's rounding noise in a difference quotient grows as
 * 1/step and is near the 1e-3 tolerance below 1e-3 (with 5e-4 as the third
 * step, 45 to 71 of 240 bottleneck points were skipped, depending only on
 * the GEMM kernels' summation order; with 4e-3, 31 to 34). */
static void fd_check(const char *label, Crnn *m, const Probe *p, Rng *r, int per) {
    static float an[K_COUNT][MAX_SAMPLES], fd[K_COUNT][MAX_SAMPLES];
    int n[K_COUNT] = {0}, kinks = 0, total = 0;
    probe_backward(m, p);
    for (int i = 0; i < m->ntensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        if (t->is_buffer) continue;
        int k = kind_of(t);
        for (int s = 0; s < per && n[k] < MAX_SAMPLES; s++, total++) {
            size_t j = rng_below(r, t->numel);
            float *x = crnn_tensor(m, t) + j;
            double d1 = central_diff(m, p, x, 1e-3f), d2 = central_diff(m, p, x, 2e-3f);
            double d3 = central_diff(m, p, x, 4e-3f);
            if (fabs(d1 - d2) > 1e-3 + 2e-2 * fabs(d1) || fabs(d1 - d3) > 1e-3 + 2e-2 * fabs(d1)) {
                kinks++;
                continue;
            }
            fd[k][n[k]] = (float)d1;
            an[k][n[k]++] = m->grads[t->offset + j];
        }
    }
    printf("  %s: %d of %d points skipped at ReLU kinks\n", label, kinks, total);
    CHECK(kinks * 4 <= total, "%s: too many non-smooth points (%d of %d)", label, kinks, total);
    for (int k = 0; k < K_COUNT; k++) {
        char what[96];
        snprintf(what, sizeof what, "%s: d/d%s (%d samples)", label, k_kind_names[k], n[k]);
        CHECK(n[k] > 0, "%s: no samples", what);
        CHECK_CLOSE(what, an[k], fd[k], (size_t)n[k], 2e-3, 3e-2);
    }
}

/* BatchNorm affine parameters moved off their init (1, 0): beta > 0 keeps
 * most ReLU inputs away from the kink, where finite differences are
 * meaningless, while some still fall below zero. */
static void shift_batchnorm(Crnn *m, Rng *r) {
    for (int i = 0; i < m->ntensors; i++) {
        TensorInfo *t = &m->tensors[i];
        if (t->is_buffer || t->part != PART_EXTRACTOR || t->ndim != 1 || strstr(t->name, "neck"))
            continue;
        int gamma = strstr(t->name, ".weight") != NULL;
        fill_random(crnn_tensor(m, t), t->numel, r, gamma ? 0.5f : BETA_LO, gamma ? 1.5f : BETA_HI);
    }
}

static void test_gradients(int bottleneck) {
    ModelArch a = tiny_arch(bottleneck);
    Rng r;
    rng_seed(&r, 42 + bottleneck);
    Crnn *m = crnn_create(&a, 2, 18, 1);
    crnn_init_params(m, 7);
    shift_batchnorm(m, &r);
    Probe p = probe_new(m, 2, &r);
    fd_check(bottleneck ? "bottleneck w2" : "basic w4", m, &p, &r, 3);
    probe_free(&p);
    crnn_free(m);
}

/* Frozen encoder (+ classifier): no gradients outside the prefix, and the
 * extractor's (classifier's) gradients equal the all-trainable ones. */
static void test_frozen(void) {
    ModelArch a = tiny_arch(0);
    Rng r;
    rng_seed(&r, 5);
    Crnn *m = crnn_create(&a, 2, 18, 1);
    crnn_init_params(m, 11);
    Probe p = probe_new(m, 2, &r);
    size_t e = m->count[PART_EXTRACTOR], c = m->count[PART_CLASSIFIER];
    size_t all = e + c + m->count[PART_ENCODER];
    float *full = xalloc_floats(all);
    probe_backward(m, &p);
    memcpy(full, m->grads, all * sizeof(float));
    const int sets[2] = {PART_EXTRACTOR, PART_EXTRACTOR | PART_CLASSIFIER};
    for (int s = 0; s < 2; s++) {
        crnn_set_trainable(m, sets[s]);
        for (size_t i = 0; i < all; i++) m->grads[i] = 7.0f; /* sentinel */
        probe_backward(m, &p);
        size_t n = m->n_trainable, untouched = 0;
        for (size_t i = n; i < all; i++) untouched += m->grads[i] == 7.0f;
        CHECK(untouched == all - n, "set %d: %zu of %zu frozen gradients written", sets[s],
              all - n - untouched, all - n);
        CHECK_CLOSE(s ? "extractor+classifier grads == full mode" : "extractor grads == full mode",
                    m->grads, full, n, 1e-6, 1e-5);
    }
    free(full);
    probe_free(&p);
    crnn_free(m);
}

/* A batch smaller than max_batch: the same gradients as a model built for
 * exactly that batch (shapes are per call, buffers are not); and convs run
 * one sample at a time (as large batches are) give the same as whole. */
static void test_partial_batch(void) {
    ModelArch a = tiny_arch(0);
    Rng r;
    rng_seed(&r, 21);
    Crnn *big = crnn_create(&a, 3, 18, 1), *exact = crnn_create(&a, 2, 18, 1);
    crnn_init_params(big, 5);
    memcpy(exact->params, big->params, big->nparams * sizeof(float));
    Probe p = probe_new(exact, 2, &r);
    probe_backward(big, &p);
    probe_backward(exact, &p);
    CHECK_CLOSE("batch 2 of max 3 == batch 2 of max 2: grads", big->grads, exact->grads,
                big->n_trainable, 1e-6, 1e-5);
    extractor_set_chunk(big, 1);
    probe_backward(big, &p);
    CHECK_CLOSE("convs by 1-sample chunks == whole batch: grads", big->grads, exact->grads,
                big->n_trainable, 1e-5, 1e-4);
    CHECK_CLOSE("convs by 1-sample chunks == whole batch: logp", big->logp, exact->logp,
                (size_t)p.n_lp, 1e-5, 1e-4);
    probe_free(&p);
    crnn_free(big);
    crnn_free(exact);
}

/* Running-stat forward: deterministic, the same in train and inference
 * models, and per sample (batch 1 == first sample of batch 2). */
static void test_inference(int bottleneck) {
    ModelArch a = tiny_arch(bottleneck);
    Rng r;
    rng_seed(&r, 9);
    Crnn *t = crnn_create(&a, 2, 18, 1), *e = crnn_create(&a, 2, 18, 0);
    crnn_init_params(t, 3);
    randomize_running_stats(t, &r);
    memcpy(e->params, t->params, t->nparams * sizeof(float));
    Probe p = probe_new(t, 2, &r);
    size_t n = (size_t)p.n_lp;
    crnn_forward(e, p.img, 2, 0, UPTO_LOGITS);
    float *first = xalloc_floats(n);
    memcpy(first, e->logp, n * sizeof(float));
    crnn_forward(e, p.img, 2, 0, UPTO_LOGITS);
    CHECK(!memcmp(first, e->logp, n * sizeof(float)), "inference forward not deterministic");
    crnn_forward(t, p.img, 2, 0, UPTO_LOGITS);
    CHECK_CLOSE(bottleneck ? "bottleneck: train model == inference model"
                           : "basic: train model == inference model",
                t->logp, first, n, 1e-6, 1e-5);
    CHECK(!memcmp(t->params, e->params, t->nparams * sizeof(float)),
          "running-stat forward changed parameters");
    /* sample 0 alone: rows (t, b=0) of the batch-2 output */
    crnn_forward(e, p.img, 1, 0, UPTO_LOGITS);
    int K = a.num_classes, worst_ok = 1;
    for (int s = 0; s < e->T; s++)
        for (int k = 0; k < K; k++)
            if (fabsf(e->logp[s * K + k] - first[(size_t)s * 2 * K + k]) > 1e-5f) worst_ok = 0;
    CHECK(worst_ok, "batch of 1 differs from sample 0 of a batch of 2");
    free(first);
    probe_free(&p);
    crnn_free(t);
    crnn_free(e);
}

/* Largest |a - b| / max(|b|, mean |b|) over n: relative, except that
 * elements much smaller than the tensor's typical size (sums that cancel,
 * where float rounding of the terms dominates) are measured against it. */
static double worst_rel(const float *a, const float *b, size_t n) {
    double mean_abs = 0, w = 0;
    for (size_t i = 0; i < n; i++)
        mean_abs += fabs((double)b[i]) / (double)n;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), mean_abs + 1e-30));
    return w;
}

/* t (train model, bn_train 0) vs e (inference model, BN folded into the
 * convs): extractor-derived features and log-probs within 1e-5 relative */
static void check_folded(const char *label, Crnn *t, Crnn *e, const Probe *p) {
    crnn_forward(t, p->img, p->B, 0, UPTO_LOGITS);
    crnn_forward(e, p->img, p->B, 0, UPTO_LOGITS);
    size_t nf = (size_t)e->T * p->B * e->arch.feature_dim;
    double wf = worst_rel(e->feat, t->feat, nf), wl = worst_rel(e->logp, t->logp, (size_t)p->n_lp);
    CHECK(wf <= 1e-5 && wl <= 1e-5,
          "%s: folded vs unfolded worst relative diff feat %.3g logp %.3g", label, wf, wl);
    printf("  %s: worst relative diff feat %.2g, logp %.2g\n", label, wf, wl);
}

/* BatchNorm folded into the inference model's convs equals the train
 * model's running-stat forward, also after a BN statistic (and a conv
 * weight) changes and crnn_params_changed drops the fold; a stale fold
 * would be off by far more than the tolerance (checked). */
static void test_folded(int bottleneck) {
    ModelArch a = tiny_arch(bottleneck);
    Rng r;
    rng_seed(&r, 31 + bottleneck);
    Crnn *t = crnn_create(&a, 3, 18, 1), *e = crnn_create(&a, 3, 18, 0);
    crnn_init_params(t, 13);
    shift_batchnorm(t, &r);
    randomize_running_stats(t, &r);
    memcpy(e->params, t->params, t->nparams * sizeof(float));
    crnn_params_changed(e);
    Probe p = probe_new(t, 3, &r);
    check_folded(bottleneck ? "bottleneck: folded" : "basic: folded", t, e, &p);
    size_t nf = (size_t)e->T * p.B * a.feature_dim;
    float *before = xalloc_floats(nf);
    memcpy(before, e->feat, nf * sizeof(float));
    const char *changed[] = {
        "extractor.layer1.0.bn1.running_var", "extractor.layer2.0.bn1.running_mean",
        "extractor.layer3.0.downsample.1.running_var", "extractor.conv1.weight"};
    for (size_t i = 0; i < ARRAY_LEN(changed); i++) {
        TensorInfo *tt = crnn_find(t, changed[i]), *te = crnn_find(e, changed[i]);
        CHECK(tt && te, "no tensor %s", changed[i]);
        if (!tt || !te) continue;
        for (size_t k = 0; k < tt->numel; k++)
            crnn_tensor(t, tt)[k] *= 0.5f;
        memcpy(crnn_tensor(e, te), crnn_tensor(t, tt), tt->numel * sizeof(float));
    }
    crnn_params_changed(e);
    check_folded(bottleneck ? "bottleneck: refolded after a change"
                            : "basic: refolded after a change",
                 t, e, &p);
    double moved = worst_rel(e->feat, before, nf);
    CHECK(moved > 1e-3, "the change moved the features by only %.3g (a stale fold would pass)",
          moved);
    extractor_set_chunk(e, 1);
    check_folded(bottleneck ? "bottleneck: folded, 1-sample chunks"
                            : "basic: folded, 1-sample chunks",
                 t, e, &p);
    crnn_forward(e, p.img, 1, 0, UPTO_LOGITS); /* batch 1: the GEMM writes the output directly */
    int K = a.num_classes;
    float *one = xalloc_floats((size_t)e->T * K), *row0 = xalloc_floats((size_t)e->T * K);
    for (int s2 = 0; s2 < e->T; s2++) {
        memcpy(one + s2 * K, e->logp + s2 * K, (size_t)K * sizeof(float));
        memcpy(row0 + s2 * K, t->logp + (size_t)s2 * 3 * K, (size_t)K * sizeof(float));
    }
    CHECK(worst_rel(one, row0, (size_t)e->T * K) <= 1e-5, "folded batch 1 != sample 0 of batch 3");
    free(one);
    free(row0);
    free(before);
    probe_free(&p);
    crnn_free(t);
    crnn_free(e);
}

static void test_copy(void) {
    ModelArch a = tiny_arch(0), b = tiny_arch(0), c = tiny_arch(0);
    b.width = 8;      /* different extractor, same encoder and classifier */
    c.enc_hidden = 4; /* different encoder */
    Crnn *src = crnn_create(&a, 1, 16, 0), *dst = crnn_create(&b, 1, 16, 0);
    Crnn *bad = crnn_create(&c, 1, 16, 0);
    crnn_init_params(src, 1);
    crnn_init_params(dst, 2);
    Err err = {0, ""};
    CHECK(crnn_copy_part(dst, src, PART_ENCODER | PART_CLASSIFIER, &err) == 0, "copy: %s",
          err.msg);
    const TensorInfo *ts = crnn_find(src, "encoder.weight_hh_l1_reverse");
    const TensorInfo *td = crnn_find(dst, "encoder.weight_hh_l1_reverse");
    CHECK_CLOSE("copied encoder tensor", crnn_tensor(dst, td), crnn_tensor(src, ts), ts->numel, 0,
                0);
    int rc = crnn_copy_part(dst, src, PART_EXTRACTOR, &err);
    CHECK(rc == EXIT_USAGE && strstr(err.msg, "extractor.conv1.weight"),
          "extractor mismatch: rc %d, '%s'", rc, err.msg);
    float before = crnn_tensor(bad, crnn_find(bad, "classifier.bias"))[0];
    rc = crnn_copy_part(bad, src, PART_ENCODER, &err);
    CHECK(rc == EXIT_USAGE && strstr(err.msg, "encoder.weight_ih_l0"),
          "encoder mismatch: rc %d, '%s'", rc, err.msg);
    CHECK(crnn_tensor(bad, crnn_find(bad, "classifier.bias"))[0] == before,
          "failed copy modified the destination");
    printf("  (error message: %s)\n", err.msg);
    ModelArch d = tiny_arch(0);
    d.enc_layers = 3; /* a layer the source does not have */
    Crnn *deep = crnn_create(&d, 1, 16, 0);
    rc = crnn_copy_part(deep, src, PART_ENCODER, &err);
    CHECK(rc == EXIT_USAGE && strstr(err.msg, "encoder.weight_ih_l2 ") && strstr(err.msg, "missing"),
          "extra layer: rc %d, '%s'", rc, err.msg);
    crnn_free(deep);
    crnn_free(src);
    crnn_free(dst);
    crnn_free(bad);
}

static float tensor_at(const Crnn *m, const char *name, size_t i) {
    return crnn_tensor(m, crnn_find(m, name))[i];
}

/* crnn_select_extractor: evenly spaced channels and the first blocks of each
 * stage, the neck scaled; the encoder untouched; every mismatch refused
 * before anything is written. */
static void test_select(void) {
    ModelArch big = tiny_arch(0), small = tiny_arch(0);
    big.width = 8;
    small.width = 3; /* 3 of 8: channels 0, 2, 5 */
    small.blocks[1] = 1;
    Crnn *src = crnn_create(&big, 1, 16, 0), *dst = crnn_create(&small, 1, 16, 0);
    Rng r;
    rng_seed(&r, 3);
    fill_random(src->params, src->nparams, &r, -1.0f, 1.0f);
    crnn_init_params(dst, 2);
    float enc = tensor_at(dst, "encoder.weight_ih_l0", 5);
    Err err = {0, ""};
    CHECK(crnn_select_extractor(dst, src, &err) == 0, "select: %s", err.msg);
    static const int pick[3] = {0, 2, 5};
    int ok = 1;
    for (int o = 0; o < 3; o++) /* stem (w,1,3,3) */
        for (int k = 0; k < 9; k++)
            ok &= tensor_at(dst, "extractor.conv1.weight", (size_t)o * 9 + k) ==
                  tensor_at(src, "extractor.conv1.weight", (size_t)pick[o] * 9 + k);
    CHECK(ok, "stem: output channels 0, 2, 5 of 8");
    /* layer2.0.conv2 (2w, 2w, 3, 3): 6 of 16, index i -> i * 16 / 6 */
    const char *c2 = "extractor.layer2.0.conv2.weight";
    ok = 1;
    for (int o = 0; o < 6; o++)
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 9; k++)
                ok &= tensor_at(dst, c2, ((size_t)o * 6 + i) * 9 + k) ==
                      tensor_at(src, c2, ((size_t)(o * 16 / 6) * 16 + (size_t)(i * 16 / 6)) * 9 + k);
    CHECK(ok, "layer2.0.conv2: both channel dimensions selected");
    CHECK(tensor_at(dst, "extractor.layer4.0.bn1.running_var", 7) ==
              tensor_at(src, "extractor.layer4.0.bn1.running_var", 7 * 64 / 24),
          "BN running statistics selected");
    /* neck (feature_dim, 8w): 24 of 64 input channels, scaled by 64 / 24 */
    int F = small.feature_dim;
    ok = 1;
    for (int f = 0; f < F; f++)
        for (int c = 0; c < 24; c++) {
            float want = (64.0f / 24.0f) * tensor_at(src, "extractor.neck.weight",
                                                     (size_t)f * 64 + (size_t)(c * 64 / 24));
            ok &= tensor_at(dst, "extractor.neck.weight", (size_t)f * 24 + c) == want;
        }
    CHECK(ok, "neck weight selected and scaled by 64/24");
    CHECK(tensor_at(dst, "extractor.neck.bias", 1) == tensor_at(src, "extractor.neck.bias", 1),
          "neck bias as the teacher's");
    CHECK(tensor_at(dst, "encoder.weight_ih_l0", 5) == enc, "encoder untouched");

    /* the same architecture: an exact copy of the extractor */
    Crnn *same = crnn_create(&big, 1, 16, 0);
    crnn_init_params(same, 4);
    CHECK(crnn_select_extractor(same, src, &err) == 0, "select same: %s", err.msg);
    ok = 1;
    for (int i = 0; i < src->ntensors; i++) {
        const TensorInfo *t = &src->tensors[i];
        if (t->part == PART_EXTRACTOR)
            ok &= !memcmp(crnn_tensor(src, t), crnn_tensor(same, crnn_find(same, t->name)),
                          t->numel * sizeof(float));
    }
    CHECK(ok, "same architecture: extractor copied exactly");

    /* refused: deeper, wider, other block kind; the destination untouched */
    ModelArch deep = small, wide = big, bott = tiny_arch(1);
    deep.blocks[1] = 3;
    wide.width = 9;
    const ModelArch *bad[3] = {&deep, &wide, &bott};
    const char *want[3] = {"extractor.layer2.2.", "narrower", "extractor.layer1.0.conv1.weight"};
    for (int i = 0; i < 3; i++) {
        Crnn *m = crnn_create(bad[i], 1, 16, 0);
        crnn_init_params(m, 5);
        float before = tensor_at(m, "extractor.conv1.weight", 0);
        int rc = crnn_select_extractor(m, src, &err);
        CHECK(rc == EXIT_USAGE && strstr(err.msg, want[i]), "refused %d: rc %d, '%s'", i, rc,
              err.msg);
        CHECK(tensor_at(m, "extractor.conv1.weight", 0) == before,
              "refused %d: destination unchanged", i);
        crnn_free(m);
    }
    printf("  (error message: %s)\n", err.msg);
    crnn_free(same);
    crnn_free(src);
    crnn_free(dst);
}

static void test_arch(void) {
    Config c;
    memset(&c, 0, sizeof c);
    c.depth = 101;
    c.width = 64;
    c.feature_dim = 256;
    c.enc_layers = 2;
    c.enc_hidden = 256;
    ModelArch a;
    Err err = {0, ""};
    CHECK(arch_from_config(&c, 37, &a, &err) == 0, "depth 101: %s", err.msg);
    CHECK(a.bottleneck == 1 && a.blocks[2] == 23 && a.num_classes == 37, "depth 101 arch");
    char buf[256];
    arch_describe(&a, buf, sizeof buf);
    CHECK(strstr(buf, "ResNet-101") != NULL, "describe: %s", buf);
    printf("  (%s)\n", buf);
    c.depth = 34;
    CHECK(arch_from_config(&c, 37, &a, &err) == 0 && !a.bottleneck && a.blocks[2] == 6, "depth 34");
    c.depth = 0;
    int blocks[4] = {1, 2, 1, 1};
    memcpy(c.blocks, blocks, sizeof blocks);
    c.bottleneck = 1;
    CHECK(arch_from_config(&c, 37, &a, &err) == 0 && a.bottleneck && a.blocks[1] == 2, "blocks");
    arch_describe(&a, buf, sizeof buf);
    CHECK(strstr(buf, "bottleneck [1,2,1,1]") != NULL, "describe custom: %s", buf);
    c.depth = 19;
    CHECK(arch_from_config(&c, 37, &a, &err) == EXIT_USAGE && strstr(err.msg, "depth"),
          "bad depth accepted");
}

/* model.extractor.widths: planes per stage instead of w, 2w, 4w, 8w -
 * shapes, describe, gradients by finite differences, and selection from a
 * standard net (stages as wide as the source's are copied whole). */
static void test_widths(void) {
    ModelArch a = tiny_arch(0);
    int widths[4] = {4, 6, 5, 3};
    memcpy(a.widths, widths, sizeof widths);
    Crnn *m = crnn_create(&a, 2, 18, 1);
    CHECK(shape_is(m, "extractor.conv1.weight", 4, 4, 1, 3, 3) &&
              shape_is(m, "extractor.layer1.0.conv2.weight", 4, 4, 4, 3, 3) &&
              shape_is(m, "extractor.layer2.0.conv1.weight", 4, 6, 4, 3, 3) &&
              shape_is(m, "extractor.layer3.0.conv1.weight", 4, 5, 6, 3, 3) &&
              shape_is(m, "extractor.layer4.0.downsample.0.weight", 4, 3, 5, 1, 1) &&
              shape_is(m, "extractor.neck.weight", 2, a.feature_dim, 3, 0, 0),
          "widths [4,6,5,3]: stage shapes");
    char buf[256];
    arch_describe(&a, buf, sizeof buf);
    CHECK(strstr(buf, "widths [4,6,5,3]") != NULL, "describe widths: %s", buf);
    Rng r;
    rng_seed(&r, 77);
    crnn_init_params(m, 7);
    shift_batchnorm(m, &r);
    Probe p = probe_new(m, 2, &r);
    fd_check("basic widths [4,6,5,3]", m, &p, &r, 3);
    probe_free(&p);
    crnn_free(m);

    ModelArch big = tiny_arch(0), small = tiny_arch(0);
    big.width = 4; /* 4, 8, 16, 32 */
    int sw[4] = {4, 8, 6, 5};
    memcpy(small.widths, sw, sizeof sw);
    Crnn *src = crnn_create(&big, 1, 16, 0), *dst = crnn_create(&small, 1, 16, 0);
    fill_random(src->params, src->nparams, &r, -1.0f, 1.0f);
    crnn_init_params(dst, 2);
    Err err = {0, ""};
    CHECK(crnn_select_extractor(dst, src, &err) == 0, "select into widths: %s", err.msg);
    int same = 1;
    for (int i = 0; i < dst->ntensors; i++) {
        const TensorInfo *t = &dst->tensors[i];
        if (strstr(t->name, "extractor.layer1") || strstr(t->name, "extractor.layer2") ||
            strstr(t->name, "extractor.conv1") || strstr(t->name, "extractor.bn1"))
            same &= !memcmp(crnn_tensor(dst, t), crnn_tensor(src, crnn_find(src, t->name)),
                            t->numel * sizeof(float));
    }
    CHECK(same, "stem and stages 1-2 (as wide as the source's) copied whole");
    /* layer3.0.conv2 (6,6,3,3) from (16,16,3,3): element (0,1,0,0) is the
     * source's (0, 1*16/6 = 2, 0, 0) */
    CHECK(tensor_at(dst, "extractor.layer3.0.conv2.weight", 9) ==
              tensor_at(src, "extractor.layer3.0.conv2.weight", 18),
          "stage 3 narrowed by selection");
    crnn_free(src);
    crnn_free(dst);
}

/* Crnn.grads_ready: each reported lo decreases, and from the report to the
 * end of backward no gradient at offset >= lo changes (what the trainer's
 * overlapped allreduce relies on), for every trainable set and both blocks. */
typedef struct {
    Crnn *m;
    float *snap[16];
    size_t lo[16];
    int n;
} ReadyLog;

static void record_ready(void *ctx, size_t lo) {
    ReadyLog *r = ctx;
    if (r->n == 16) return;
    r->lo[r->n] = lo;
    r->snap[r->n] = xalloc_floats(r->m->n_trainable);
    memcpy(r->snap[r->n], r->m->grads, r->m->n_trainable * sizeof(float));
    r->n++;
}

static void test_grads_ready(int bottleneck) {
    const int sets[3] = {PART_EXTRACTOR, PART_EXTRACTOR | PART_CLASSIFIER, PART_ALL};
    for (int k = 0; k < 3; k++) {
        ModelArch a = tiny_arch(bottleneck);
        Rng r;
        rng_seed(&r, 31);
        Crnn *m = crnn_create(&a, 2, 18, 1);
        crnn_init_params(m, 3);
        crnn_set_trainable(m, sets[k]);
        Probe p = probe_new(m, 2, &r);
        ReadyLog log = {m, {0}, {0}, 0};
        m->grads_ready = record_ready;
        m->grads_ready_ctx = &log;
        probe_backward(m, &p);
        int decreasing = 1, stable = 1;
        for (int i = 0; i < log.n; i++) {
            if (i > 0) decreasing &= log.lo[i] < log.lo[i - 1];
            size_t n = m->n_trainable - log.lo[i];
            stable &= memcmp(log.snap[i] + log.lo[i], m->grads + log.lo[i], n * sizeof(float)) == 0;
            free(log.snap[i]);
        }
        /* one report after the neck, one per block (tiny: 1+2+1+1 blocks) */
        CHECK(log.n == 6, "%s set %d: %d reports, want 6", bottleneck ? "bottleneck" : "basic",
              sets[k], log.n);
        CHECK(decreasing && log.n > 0 && log.lo[log.n - 1] > 0,
              "set %d: reported offsets not decreasing above the stem", sets[k]);
        CHECK(stable, "set %d: a gradient above a reported offset changed after the report",
              sets[k]);
        probe_free(&p);
        crnn_free(m);
    }
}

int main(void) {
    test_table();
    test_grads_ready(0);
    test_grads_ready(1);
    test_trainable_and_steps();
    test_gradients(0);
    test_gradients(1);
    test_frozen();
    test_partial_batch();
    test_inference(0);
    test_inference(1);
    test_folded(0);
    test_folded(1);
    test_copy();
    test_select();
    test_arch();
    test_widths();
    TEST_END();
}
