/* test_dist_grad.c - run with mpirun -np 2.
 * One distillation step on P ranks (per-rank BatchNorm, one allreduce of
 * the trainable slice) must equal the mean of the P single-rank gradients
 * computed on the same shards, as PyTorch DDP does; and an optimizer step
 * on that slice must leave every frozen tensor bit-identical to the
 * teacher's. With shards that mix labeled and unlabeled samples (rank 1's
 * having none labeled when P = 2) the allreduced gradient must equal the
 * mean of the hand-computed mixes (distances on all samples + CTC over the
 * labeled ones only; distill_fixture.h). Also run with -np 1. */
#include <mpi.h>
#include <string.h>

#include "../distill_fixture.h"
#include "../test.h"
#include "ocrkd/dist.h"
#include "ocrkd/optim.h"

/* Gradient of shard r on a fresh student into out (n_trainable). */
static void shard_gradient(Crnn *teacher, int r, const LossConf *lc, float *out) {
    Crnn *s = make_student(teacher);
    Shard sh;
    make_shard(&sh, r);
    LossScratch w;
    loss_scratch_init(&w, s, LMAX);
    crnn_forward(teacher, sh.img, NB, 0, UPTO_LOGITS);
    TeacherView tv = {teacher->enc, teacher->feat, teacher->logp};
    student_gradients(s, &tv, &sh.b, lc, &w);
    memcpy(out, s->grads, s->n_trainable * sizeof(float));
    loss_scratch_free(&w);
    crnn_free(s);
}

/* Shard q's labeled mask: shard 0 mixed (2 labeled, 1 not), shard 1 none
 * labeled (its CTC term is 0), shard 2 all labeled, ... */
static const unsigned char *mask_of(int q) {
    static const unsigned char masks[3][NB] = {{1, 0, 1}, {0, 0, 0}, {1, 1, 1}};
    return masks[q % 3];
}

/* The mixed shards: the distributed step against the hand-computed mixes. */
static void check_mixed(Crnn *teacher, const LossConf *lc) {
    int P = dist_world(), r = dist_rank();
    Crnn *s = make_student(teacher);
    size_t n = s->n_trainable;
    Shard sh;
    make_shard_mixed(&sh, r, mask_of(r));
    LossScratch w;
    loss_scratch_init(&w, s, LMAX);
    crnn_forward(teacher, sh.img, NB, 0, UPTO_LOGITS);
    TeacherView tv = {teacher->enc, teacher->feat, teacher->logp};
    LossTerms lt = student_gradients(s, &tv, &sh.b, lc, &w);
    if (sh.b.n_labeled == 0)
        CHECK(lt.ctc == 0, "rank %d: no labeled sample, CTC 0 (%g)", r, lt.ctc);
    dist_allreduce_mean_f32(s->grads, n);
    float *ref = xalloc_floats(n), *g = xalloc_floats(n);
    for (int q = 0; q < P; q++) {
        Crnn *sq = make_student(teacher);
        Shard shq;
        make_shard_mixed(&shq, q, mask_of(q));
        crnn_forward(teacher, shq.img, NB, 0, UPTO_LOGITS);
        TeacherView tvq = {teacher->enc, teacher->feat, teacher->logp};
        hand_mixed_gradient(sq, &tvq, &shq.b, lc, g);
        for (size_t i = 0; i < n; i++)
            ref[i] += g[i] / (float)P;
        crnn_free(sq);
    }
    char what[80];
    snprintf(what, sizeof what, "mixed labeled/unlabeled gradient (rank %d of %d)", r, P);
    CHECK_CLOSE(what, s->grads, ref, n, 1e-6, 1e-5);
    free(ref);
    free(g);
    loss_scratch_free(&w);
    crnn_free(s);
}

int main(int argc, char **argv) {
    dist_init(&argc, &argv);
    dist_set_threads(1);
    int P = dist_world(), r = dist_rank();
    LossConf lc = {.temperature = 2.0f, .ctc_weight = 0.1f, .logit_kl = 0.5f};
    lc.feat_weight[DIST_L1] = 0.3f; /* the options beyond the method travel too */
    lc.dist_weight[DIST_L2] = 1.0f;
    lc.dist_weight[DIST_COSINE] = 0.5f;
    lc.dist_weight[DIST_KL] = 0.25f;

    Crnn *teacher = make_teacher();
    Crnn *s = make_student(teacher);
    size_t n = s->n_trainable;
    CHECK(n == s->count[PART_EXTRACTOR], "only the extractor trains (%zu floats)", n);

    /* the distributed step, as the trainer does it */
    Shard sh;
    make_shard(&sh, r);
    LossScratch w;
    loss_scratch_init(&w, s, LMAX);
    crnn_forward(teacher, sh.img, NB, 0, UPTO_LOGITS);
    TeacherView tv = {teacher->enc, teacher->feat, teacher->logp};
    LossTerms lt = student_gradients(s, &tv, &sh.b, &lc, &w);
    CHECK(lt.distance > 0 && lt.ctc > 0, "loss terms positive (distance %g, ctc %g)", lt.distance,
          lt.ctc);
    dist_allreduce_mean_f32(s->grads, n);

    /* the reference: every shard on this one rank, then the mean */
    float *ref = xalloc_floats(n), *g = xalloc_floats(n);
    for (int q = 0; q < P; q++) {
        shard_gradient(teacher, q, &lc, g);
        for (size_t i = 0; i < n; i++) ref[i] += g[i] / (float)P;
    }
    char what[64];
    snprintf(what, sizeof what, "allreduced gradient (rank %d of %d)", r, P);
    CHECK_CLOSE(what, s->grads, ref, n, 1e-6, 1e-5);
    double norm = grad_norm(ref, n);
    CHECK(norm > 0, "gradient is not zero (norm %g)", norm);

    /* an optimizer step moves the extractor and nothing else */
    float *before = xalloc_floats(s->nparams);
    memcpy(before, s->params, s->nparams * sizeof(float));
    Optim o;
    OptimConf oc = {OPT_ADAM, 1e-2f, 0, 0.9f, 0.9f, 0.999f, 1e-8f};
    optim_init(&o, &oc, n);
    optim_step(&o, s->params, s->grads, oc.lr);
    int changed = 0, frozen_same = 1;
    for (int i = 0; i < s->ntensors; i++) {
        const TensorInfo *ti = &s->tensors[i];
        const float *p = crnn_tensor(s, ti), *q = before + ti->offset;
        int same = memcmp(p, q, ti->numel * sizeof(float)) == 0;
        if (ti->part == PART_EXTRACTOR && !ti->is_buffer && !same) changed++;
        if (ti->part != PART_EXTRACTOR) {
            const TensorInfo *tt = crnn_find(teacher, ti->name);
            if (!tt || memcmp(p, crnn_tensor(teacher, tt), ti->numel * sizeof(float)) != 0) {
                frozen_same = 0;
                printf("  frozen tensor %s differs from the teacher\n", ti->name);
            }
        }
    }
    CHECK(changed > 0, "extractor tensors changed (%d)", changed);
    CHECK(frozen_same, "encoder and classifier bit-identical to the teacher after a step");

    optim_free(&o);
    loss_scratch_free(&w);
    crnn_free(s);
    check_mixed(teacher, &lc);
    crnn_free(teacher);
    /* every rank reports; the runner reads rank 0's line */
    int fails = t_failed;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (r != 0) {
        dist_finalize();
        return fails ? 1 : 0;
    }
    t_failed = fails;
    dist_finalize();
    TEST_END();
}
