/* test_crnn_parity.c - the whole CRNN (model.h) loaded from a checkpoint
 * (checkpoint.h) against PyTorch: tests/ref/crnn_basic.h5 and
 * crnn_bottleneck.h5, written by tests/ref/make_refs.py with
 * data-tools/crnn_torch.py. Each file is a real ocrkd checkpoint plus a
 * /ref group holding images, labels and the expected outputs.
 *
 * Checks: eval-mode log-probs and encoder output (inference and training
 * builds), train-mode (batch statistics) outputs, updated running stats, the
 * CTC loss, and the gradient of that loss w.r.t. every parameter; then, with
 * only the extractor trainable, that the extractor gradients are unchanged
 * (the frozen encoder/classifier pass input gradients only).
 * Tolerance: 1e-4 relative, and 1e-4 of the tensor's largest reference
 * magnitude absolute (gradients here are as small as 1e-3, so a fixed 1e-4
 * would let 10% errors through). float32 through ~20 layers against a float64
 * reference; observed worst differences, printed, are ~1e-7 of that scale.
 * Not for: single layers (test_parity.c) or file-format edge cases
 * (test_checkpoint.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/checkpoint.h"
#include "ocrkd/common.h"
#include "ocrkd/model.h"
#include "ocrkd/nn.h"
#include "ref_io.h"
#include "test.h"

#define TOL 1e-4

typedef struct {
    hid_t f;
    const char *file;
    int B, W, T, K;
    float *images;
    int *labels, *lens;
} Ref;

/* Compares got (n floats) with dataset `path` of the reference file. */
static void cmp(const Ref *r, const char *path, const float *got, size_t n) {
    size_t nref;
    char what[160];
    snprintf(what, sizeof what, "%s %s", r->file, path);
    float *want = ref_floats(r->f, path, &nref);
    CHECK(nref == n, "%s: %zu elements, reference has %zu", what, n, nref);
    double scale = 1e-6; /* floor: an all-zero reference still gets a tolerance */
    for (size_t i = 0; i < nref; i++) scale = MAX(scale, fabs((double)want[i]));
    if (nref == n) CHECK_CLOSE(what, got, want, n, TOL * scale, TOL);
    free(want);
}

/* The reference file is closed while the checkpoint code opens it: HDF5
 * refuses a second open of the same file with different access properties
 * (checkpoint.c turns file locking off). */
static Crnn *load(Ref *r, int train) {
    char path[1024];
    snprintf(path, sizeof path, "%s", ref_last_path());
    H5Fclose(r->f);
    Err err = {0, ""};
    Crnn *m = NULL;
    int rc = ckpt_load_model(path, r->B, r->W, train, &m, NULL, NULL, &err);
    CHECK(rc == 0 && m, "ckpt_load_model(%s, train=%d): %s", path, train, err.msg);
    r->f = ref_open(r->file);
    return rc == 0 ? m : NULL;
}

static void check_eval(const Ref *r, Crnn *m) {
    crnn_forward(m, r->images, r->B, 0, UPTO_LOGITS);
    size_t tb = (size_t)r->T * r->B;
    cmp(r, "ref/logp_eval", m->logp, tb * r->K);
    cmp(r, "ref/enc_eval", m->enc, tb * 2 * m->arch.enc_hidden);
}

/* Train-mode forward, CTC loss and backward; returns the CTC loss. */
static double train_step(const Ref *r, Crnn *m, float *dlogits, double *ws) {
    size_t n = (size_t)r->T * r->B * r->K;
    memset(dlogits, 0, n * sizeof(float));
    crnn_zero_grad(m);
    crnn_forward(m, r->images, r->B, 1, UPTO_LOGITS);
    double loss = ctc_loss(m->logp, r->T, r->B, r->K, r->labels, r->lens, NULL, dlogits, 1.0f,
                           ws);
    crnn_backward(m, dlogits, NULL, NULL);
    return loss;
}

/* Gradient of every tensor in /ref/grads that belongs to `parts`. */
static void check_grads(const Ref *r, Crnn *m, int parts) {
    RefNames names = ref_names(r->f, "ref/grads");
    for (int i = 0; i < names.count; i++) {
        TensorInfo *t = crnn_find(m, names.names[i]);
        CHECK(t != NULL, "%s: model has no tensor %s", r->file, names.names[i]);
        if (!t || !(t->part & parts)) continue;
        CHECK(t->offset + t->numel <= m->n_trainable, "%s: %s is not in the trainable prefix",
              r->file, t->name);
        if (t->offset + t->numel > m->n_trainable) continue;
        char path[160];
        snprintf(path, sizeof path, "ref/grads/%s", t->name);
        cmp(r, path, m->grads + t->offset, t->numel);
    }
}

static void check_running(const Ref *r, Crnn *m) {
    RefNames names = ref_names(r->f, "ref/running");
    CHECK(names.count > 0, "%s: no running stats in /ref/running", r->file);
    for (int i = 0; i < names.count; i++) {
        TensorInfo *t = crnn_find(m, names.names[i]);
        CHECK(t && t->is_buffer, "%s: model has no buffer %s", r->file, names.names[i]);
        if (!t) continue;
        char path[160];
        snprintf(path, sizeof path, "ref/running/%s", t->name);
        cmp(r, path, crnn_tensor(m, t), t->numel);
    }
}

static void check_train(const Ref *r, Crnn *m) {
    size_t n = (size_t)r->T * r->B * r->K;
    float *dlogits = malloc(n * sizeof(float));
    int lmax = 0;
    for (int b = 0; b < r->B; b++) lmax = MAX(lmax, r->lens[b]);
    double *ws = malloc(ctc_workspace_doubles(r->T, r->B, lmax) * sizeof(double));

    CHECK(crnn_set_trainable(m, PART_ALL) == 0, "crnn_set_trainable(PART_ALL) failed");
    float loss = (float)train_step(r, m, dlogits, ws);
    cmp(r, "ref/logp_train", m->logp, n);
    cmp(r, "ref/enc_train", m->enc, (size_t)r->T * r->B * 2 * m->arch.enc_hidden);
    cmp(r, "ref/loss", &loss, 1);
    check_running(r, m); /* after exactly one train forward */
    check_grads(r, m, PART_ALL);

    /* Distill's default: only the extractor trains. Batch statistics make
     * the forward independent of the (now twice updated) running stats. */
    CHECK(crnn_set_trainable(m, PART_EXTRACTOR) == 0, "crnn_set_trainable(EXTRACTOR) failed");
    CHECK(m->n_trainable == m->count[PART_EXTRACTOR], "%s: trainable prefix %zu != extractor %zu",
          r->file, m->n_trainable, m->count[PART_EXTRACTOR]);
    train_step(r, m, dlogits, ws);
    check_grads(r, m, PART_EXTRACTOR);
    free(dlogits), free(ws);
}

static void run_file(const char *file) {
    Ref r = {.file = file};
    r.f = ref_open(file);
    r.B = ref_attr_int(r.f, "ref", "B");
    r.W = ref_attr_int(r.f, "ref", "W");
    r.T = ref_attr_int(r.f, "ref", "T");
    r.images = ref_floats(r.f, "ref/images", NULL);
    r.labels = ref_ints(r.f, "ref/labels", NULL);
    r.lens = ref_ints(r.f, "ref/label_lens", NULL);
    CHECK(crnn_time_steps(r.W) == r.T, "crnn_time_steps(%d) = %d, torch %d", r.W,
          crnn_time_steps(r.W), r.T);

    Crnn *m = load(&r, 0);
    if (m) {
        r.K = m->arch.num_classes;
        CHECK(m->T == r.T, "%s: model T %d, torch %d", file, m->T, r.T);
        check_eval(&r, m);
        crnn_free(m);
    }
    m = load(&r, 1);
    if (m) {
        r.K = m->arch.num_classes;
        check_eval(&r, m);
        check_train(&r, m);
        crnn_free(m);
    }
    free(r.images), free(r.labels), free(r.lens);
    H5Fclose(r.f);
}

int main(void) {
    run_file("crnn_basic.h5");
    run_file("crnn_bottleneck.h5");
    TEST_END();
}
