/* distill.h - the loss of one step and its gradient (SPEC "The method",
 * item 5): sum_d w_d * D_d(E_t, E_s) + ctc_weight * CTC(student), or plain
 * CTC when there is no teacher. Shared by the trainer and the tests that
 * check the distributed gradient. Not for communication or optimisation. */
#ifndef OCRKD_DISTILL_H
#define OCRKD_DISTILL_H

#include "ocrkd/dataset.h"
#include "ocrkd/model.h"
#include "ocrkd/nn.h"

typedef struct {
    double loss, distance, ctc;
} LossTerms;

typedef struct {
    float dist_weight[DIST_COUNT]; /* all 0 for `train` */
    float temperature;
    float ctc_weight; /* 1 for `train` */
} LossConf;

/* Scratch for student_gradients, sized once for (max_batch, T, K, 2H). */
typedef struct {
    float *dlogits; /* (T,B,K) */
    float *denc;    /* (T,B,2H) */
    double *ctc_ws;
} LossScratch;
void loss_scratch_init(LossScratch *w, const Crnn *student, int max_label_len);
void loss_scratch_free(LossScratch *w);

/* Student forward in training mode (batch-stat BN) on the batch, the loss
 * against the teacher encoder outputs et (T,B,2H) (NULL: CTC only), and the
 * backward into student->grads (zeroed first). */
LossTerms student_gradients(Crnn *student, const float *et, const Batch *b, const LossConf *lc,
                            LossScratch *w);

#endif
