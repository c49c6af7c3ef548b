/* distill.c - one step's loss and gradient for the student (or for a model
 * trained from scratch): forward, CTC, distances to the teacher's encoder
 * outputs, backward. The teacher forward happens in the caller (trainer.c
 * keeps a cache of it). */
#include "ocrkd/distill.h"

#include <stdlib.h>
#include <string.h>

void loss_scratch_init(LossScratch *w, const Crnn *s, int max_label_len) {
    size_t rows = (size_t)s->T * s->max_batch;
    w->dlogits = xalloc_floats(rows * s->arch.num_classes);
    w->denc = xalloc_floats(rows * 2 * s->arch.enc_hidden);
    w->ctc_ws = xmalloc(ctc_workspace_doubles(s->T, s->max_batch, max_label_len) * sizeof(double));
}

void loss_scratch_free(LossScratch *w) {
    free(w->dlogits);
    free(w->denc);
    free(w->ctc_ws);
}

LossTerms student_gradients(Crnn *s, const float *et, const Batch *b, const LossConf *lc,
                            LossScratch *w) {
    int B = b->B, T = s->T, K = s->arch.num_classes, C = 2 * s->arch.enc_hidden;
    LossTerms r = {0};
    crnn_forward(s, b->images, B, 1, UPTO_LOGITS);
    crnn_zero_grad(s);
    memset(w->dlogits, 0, (size_t)T * B * K * sizeof(float));
    r.ctc = ctc_loss(s->logp, T, B, K, b->labels, b->label_lens, NULL, w->dlogits, lc->ctc_weight,
                     w->ctc_ws);
    if (et) {
        memset(w->denc, 0, (size_t)T * B * C * sizeof(float));
        for (int k = 0; k < DIST_COUNT; k++) {
            float wd = lc->dist_weight[k];
            if (wd > 0)
                r.distance += wd * distance_forward_backward((DistKind)k, et, s->enc, T * B, C,
                                                             lc->temperature, w->denc, wd);
        }
    }
    crnn_backward(s, w->dlogits, et ? w->denc : NULL);
    r.loss = r.distance + lc->ctc_weight * r.ctc;
    return r;
}
