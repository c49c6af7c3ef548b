/* crnn.c - the whole CRNN: creation (parameters + activations sized once),
 * forward (extractor -> height mean -> neck -> BiLSTM -> classifier ->
 * log-softmax) and backward with frozen parts skipped.
 *
 * Not for the residual stages themselves (resnet.c), the tensor table and
 * initialisation (params.c), losses (nn/ctc.c, nn/distance.c) or files. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

size_t tensor_offset(const Crnn *m, const char *name) {
    const TensorInfo *t = crnn_find(m, name);
    if (!t) internal_error("model tensor %s missing from the table", name);
    return t->offset;
}

static LstmShape lstm_shape(const Crnn *m, int B) {
    LstmShape s = {m->arch.enc_layers, m->T, B, m->arch.feature_dim, m->arch.enc_hidden};
    return s;
}

/* Views of the BiLSTM weights (and gradients, train only) by name. */
static void bind_lstm(Crnn *m) {
    CrnnActs *A = m->acts;
    int n = 2 * m->arch.enc_layers;
    A->lw = xcalloc((size_t)n, sizeof *A->lw);
    A->ldw = xcalloc((size_t)n, sizeof *A->ldw);
    for (int i = 0; i < n; i++) {
        const char *rev = (i & 1) ? "_reverse" : "";
        char name[4][64];
        size_t off[4];
        snprintf(name[0], 64, "encoder.weight_ih_l%d%s", i / 2, rev);
        snprintf(name[1], 64, "encoder.weight_hh_l%d%s", i / 2, rev);
        snprintf(name[2], 64, "encoder.bias_ih_l%d%s", i / 2, rev);
        snprintf(name[3], 64, "encoder.bias_hh_l%d%s", i / 2, rev);
        for (int k = 0; k < 4; k++) off[k] = tensor_offset(m, name[k]);
        LstmWeights w = {m->params + off[0], m->params + off[1], m->params + off[2],
                         m->params + off[3]};
        A->lw[i] = w;
        if (m->grads) {
            LstmWeights dw = {m->grads + off[0], m->grads + off[1], m->grads + off[2],
                              m->grads + off[3]};
            A->ldw[i] = dw;
        }
    }
}

/* Everything after the extractor; measure pass when ar->base is NULL. */
static void plan_head_buffers(Crnn *m, Arena *ar) {
    CrnnActs *A = m->acts;
    const ModelArch *a = &m->arch;
    size_t N = (size_t)m->T * m->max_batch;
    LstmShape s = lstm_shape(m, m->max_batch);
    A->pooled = arena_floats(ar, N * A->fc);
    m->feat = arena_floats(ar, N * a->feature_dim);
    m->enc = arena_floats(ar, N * 2 * a->enc_hidden);
    m->logp = arena_floats(ar, N * a->num_classes);
    A->lstm_acts = arena_floats(ar, bilstm_acts_floats(&s));
    if (!m->train) return;
    A->lstm_ws = arena_floats(ar, bilstm_workspace_floats(&s));
    A->d_enc = arena_floats(ar, N * 2 * a->enc_hidden);
    A->d_feat = arena_floats(ar, N * a->feature_dim);
    A->d_pooled = arena_floats(ar, N * A->fc);
}

static void plan_buffers(Crnn *m, Arena *ar) {
    extractor_plan_buffers(m, ar);
    plan_head_buffers(m, ar);
}

Crnn *crnn_create(const ModelArch *a, int max_batch, int width, int train) {
    if (max_batch < 1 || width < 1) internal_error("crnn_create(max_batch %d, width %d)",
                                          max_batch, width);
    Crnn *m = xcalloc(1, sizeof *m);
    m->arch = *a;
    m->max_batch = max_batch;
    m->width = width;
    m->T = crnn_time_steps(width);
    m->train = train != 0;
    params_build_table(m);
    m->params = xalloc_floats(m->nparams);
    if (m->train) {
        m->grads = xalloc_floats(m->count[PART_EXTRACTOR] + m->count[PART_CLASSIFIER] +
                                 m->count[PART_ENCODER]);
        crnn_set_trainable(m, PART_ALL);
    }
    m->acts = xcalloc(1, sizeof *m->acts);
    CrnnActs *A = m->acts;
    extractor_plan_shapes(m);
    if (A->fw != m->T || A->fh < 1)
        internal_error("extractor map width %d != time steps %d", A->fw, m->T);
    A->neck_w = tensor_offset(m, "extractor.neck.weight");
    A->neck_b = tensor_offset(m, "extractor.neck.bias");
    A->cls_w = tensor_offset(m, "classifier.weight");
    A->cls_b = tensor_offset(m, "classifier.bias");
    bind_lstm(m);
    arena_init(&A->arena);
    plan_buffers(m, &A->arena); /* measure */
    arena_commit(&A->arena);
    plan_buffers(m, &A->arena); /* assign */
    return m;
}

void crnn_free(Crnn *m) {
    if (!m) return;
    if (m->acts) {
        arena_free(&m->acts->arena);
        free(m->acts->blocks);
        free(m->acts->lw);
        free(m->acts->ldw);
        free(m->acts);
    }
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m);
}

void crnn_params_changed(Crnn *m) {
    if (!m->train) extractor_params_changed(m);
}

void crnn_zero_grad(Crnn *m) {
    if (m->grads) memset(m->grads, 0, m->n_trainable * sizeof(float));
}

/* img (B,1,IMAGE_H,width) -> feat (T,B,D) -> enc (T,B,2H) [-> logp (T,B,K)] */
void crnn_forward(Crnn *m, const float *img, int B, int bn_train, int upto) {
    CrnnActs *A = m->acts;
    const ModelArch *a = &m->arch;
    if (B < 1 || B > m->max_batch)
        internal_error("crnn_forward batch %d outside 1..%d", B, m->max_batch);
    if (bn_train && !m->train)
        internal_error("crnn_forward with batch statistics on an inference model");
    if (m->train) {
        memcpy(A->img, img, (size_t)B * IMAGE_H * m->width * sizeof(float));
        img = A->img;
    }
    A->last_B = B;
    A->last_bn_train = bn_train;
    int N = m->T * B, D = a->feature_dim, H2 = 2 * a->enc_hidden, K = a->num_classes;
    const float *map = extractor_forward(m, img, B, bn_train);
    mean_height_forward(map, B, A->fc, A->fh, A->fw, A->pooled);
    linear_forward(A->pooled, m->params + A->neck_w, m->params + A->neck_b, N, A->fc, D, m->feat);
    LstmShape s = lstm_shape(m, B);
    bilstm_forward(&s, A->lw, m->feat, m->enc, A->lstm_acts);
    if (upto != UPTO_LOGITS) return;
    linear_forward(m->enc, m->params + A->cls_w, m->params + A->cls_b, N, H2, K, m->logp);
    log_softmax_forward(m->logp, N, K, m->logp);
}

/* Gradient pointer of a tensor at offset off, or NULL when its part is frozen. */
static float *grad_at(const Crnn *m, int part, size_t off) {
    return (m->trainable & part) ? m->grads + off : NULL;
}

void crnn_backward(Crnn *m, const float *d_logits, const float *d_enc, const float *d_feat) {
    CrnnActs *A = m->acts;
    const ModelArch *a = &m->arch;
    if (!m->train || !A->last_B) internal_error("crnn_backward without a train forward");
    if ((m->trainable & PART_EXTRACTOR) && !A->last_bn_train)
        internal_error("crnn_backward through the extractor after a running-stat forward");
    int B = A->last_B, N = m->T * B, D = a->feature_dim, H2 = 2 * a->enc_hidden;
    int K = a->num_classes;
    zero_floats(A->d_enc, (size_t)N * H2);
    if (d_logits)
        linear_backward(m->enc, m->params + A->cls_w, d_logits, N, H2, K, A->d_enc,
                        grad_at(m, PART_CLASSIFIER, A->cls_w), grad_at(m, PART_CLASSIFIER, A->cls_b));
    if (d_enc) add_forward(A->d_enc, d_enc, A->d_enc, (size_t)N * H2);
    if (!(m->trainable & PART_EXTRACTOR)) return; /* nothing below trains */
    LstmShape s = lstm_shape(m, B);
    memset(A->d_feat, 0, (size_t)N * D * sizeof(float));
    bilstm_backward(&s, A->lw, (m->trainable & PART_ENCODER) ? A->ldw : NULL, m->feat,
                    A->lstm_acts, A->d_enc, A->d_feat, A->lstm_ws);
    if (d_feat) add_forward(A->d_feat, d_feat, A->d_feat, (size_t)N * D);
    memset(A->d_pooled, 0, (size_t)N * A->fc * sizeof(float));
    linear_backward(A->pooled, m->params + A->neck_w, A->d_feat, N, A->fc, D, A->d_pooled,
                    m->grads + A->neck_w, m->grads + A->neck_b);
    report_grads_ready(m, MIN(A->neck_w, A->neck_b)); /* the neck, classifier, encoder */
    zero_floats(A->grad[0], (size_t)B * A->fc * A->fh * A->fw);
    mean_height_backward(A->d_pooled, B, A->fc, A->fh, A->fw, A->grad[0]);
    extractor_backward(m, A->img, B);
}
