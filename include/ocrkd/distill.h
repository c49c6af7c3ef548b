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
    float feat_weight[DIST_COUNT]; /* distances between the extractor outputs (all 0: none) */
    float logit_kl;                /* weight of tau^2 KL between the CTC posteriors (0: none) */
    float temperature;
    float ctc_weight; /* 1 for `train` */
} LossConf;

/* What the teacher gives a step: its encoder outputs (always), and its
 * extractor outputs / log-posteriors when a term of LossConf needs them. */
typedef struct {
    const float *enc;  /* (T,B,2H) */
    const float *feat; /* (T,B,D) or NULL */
    const float *logp; /* (T,B,K) or NULL */
} TeacherView;

/* Scratch for student_gradients, sized once for (max_batch, T, K, 2H, D). */
typedef struct {
    float *dlogits; /* (T,B,K) */
    float *denc;    /* (T,B,2H) */
    float *dfeat;   /* (T,B,D) */
    double *ctc_ws;
} LossScratch;
void loss_scratch_init(LossScratch *w, const Crnn *student, int max_label_len);
void loss_scratch_free(LossScratch *w);

/* Student forward in training mode (batch-stat BN) on the batch, the loss
 * against the teacher's outputs tv (NULL: CTC only) and the backward into
 * student->grads (zeroed first). The loss is
 *   sum_d w_d D_d(E_t, E_s) + sum_d f_d D_d(F_t, F_s)
 *   + logit_kl * tau^2 KL(P_t || P_s) + ctc_weight * CTC,
 * F the extractor outputs and P the CTC posteriors at temperature tau;
 * LossTerms.distance holds every teacher term. The distances are means over
 * the whole batch; CTC is the mean over its labeled samples only (b->labeled;
 * NULL: all), unlabeled ones having no CTC term and no CTC gradient, and 0
 * when the batch has no labeled sample (ctc_loss_labeled). */
LossTerms student_gradients(Crnn *student, const TeacherView *tv, const Batch *b,
                            const LossConf *lc, LossScratch *w);

/* Whether the loss needs the teacher's extractor outputs / posteriors. */
int loss_needs_feat(const LossConf *lc);
int loss_needs_logp(const LossConf *lc);

#endif
