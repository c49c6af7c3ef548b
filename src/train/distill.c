/* distill.c - one step's loss and gradient for the student (or for a model
 * trained from scratch): forward, CTC, distances to the teacher's encoder
 * outputs (the method), optionally to its extractor outputs and a KL
 * between the CTC posteriors (options beyond it), backward. The teacher forward happens in the
 * caller (teacher_cache.c keeps its outputs). Unlabeled samples get the
 * teacher terms only; CTC is averaged over the labeled samples. Not for
 * the update, the allreduce or the teacher cache (trainer.c and its files). */
#include "ocrkd/distill.h"

#include <stdlib.h>
#include <string.h>

void loss_scratch_init(LossScratch *w, const Crnn *s, int max_label_len) {
    size_t rows = (size_t)s->T * s->max_batch;
    w->dlogits = xalloc_floats(rows * s->arch.num_classes);
    w->denc = xalloc_floats(rows * 2 * s->arch.enc_hidden);
    w->dfeat = xalloc_floats(rows * s->arch.feature_dim);
    w->ctc_ws = xmalloc(ctc_workspace_doubles(s->T, s->max_batch, max_label_len) * sizeof(double));
}

void loss_scratch_free(LossScratch *w) {
    free(w->dlogits);
    free(w->denc);
    free(w->dfeat);
    free(w->ctc_ws);
}

int loss_needs_feat(const LossConf *lc) {
    for (int k = 0; k < DIST_COUNT; k++)
        if (lc->feat_weight[k] > 0) return 1;
    return 0;
}

int loss_needs_logp(const LossConf *lc) {
    return lc->logit_kl > 0;
}

/* sum_k w[k] * D_k(et, es) over (N,C) rows; gradient into des (zeroed here). */
static double distances(const float *w, const float *et, const float *es, int N, int C, float tau,
                        float *des) {
    double sum = 0;
    memset(des, 0, (size_t)N * C * sizeof(float));
    for (int k = 0; k < DIST_COUNT; k++)
        if (w[k] > 0)
            sum += w[k] * distance_forward_backward((DistKind)k, et, es, N, C, tau, des, w[k]);
    return sum;
}

LossTerms student_gradients(Crnn *s, const TeacherView *tv, const Batch *b, const LossConf *lc,
                            LossScratch *w) {
    int B = b->B, T = s->T, K = s->arch.num_classes, C = 2 * s->arch.enc_hidden;
    int D = s->arch.feature_dim, N = T * B;
    LossTerms r = {0};
    crnn_forward(s, b->images, B, BN_BATCH_STATS, UPTO_LOGITS);
    crnn_zero_grad(s);
    memset(w->dlogits, 0, (size_t)N * K * sizeof(float));
    /* unlabeled samples (b->labeled[i] == 0) have no CTC term at all; the
     * mean is over the labeled ones (doc/distill.md "Unlabeled data") */
    r.ctc = ctc_loss_labeled(s->logp, T, B, K, b->labels, b->label_lens, b->labeled, NULL,
                             w->dlogits, lc->ctc_weight, w->ctc_ws);
    const float *denc = NULL, *dfeat = NULL;
    if (tv) {
        r.distance = distances(lc->dist_weight, tv->enc, s->enc, N, C, lc->temperature, w->denc);
        denc = w->denc;
        if (loss_needs_feat(lc)) {
            if (!tv->feat) internal_error("feature distance without the teacher's features");
            r.distance +=
                distances(lc->feat_weight, tv->feat, s->feat, N, D, lc->temperature, w->dfeat);
            dfeat = w->dfeat;
        }
        /* KL on log-posteriors: softmax(logp / tau) = softmax(logits / tau), and
         * the gradient w.r.t. logp is one w.r.t. the logits (its rows sum to 0) */
        if (loss_needs_logp(lc)) {
            if (!tv->logp) internal_error("logit KL without the teacher's posteriors");
            r.distance +=
                lc->logit_kl * distance_forward_backward(DIST_KL, tv->logp, s->logp, N, K,
                                                         lc->temperature, w->dlogits, lc->logit_kl);
        }
    }
    crnn_backward(s, w->dlogits, denc, dfeat);
    r.loss = r.distance + lc->ctc_weight * r.ctc;
    return r;
}
