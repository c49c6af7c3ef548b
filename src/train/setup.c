/* setup.c - the start-up of a run before step 1: the data's image height,
 * the teacher (rank 0 loads it, every rank gets it), the loaders on this
 * rank's shard, the student with the teacher's encoder and classifier
 * copied in and only its trainable parts left free, the loss terms, and
 * the check that all ranks agree on all of it. Not for resuming
 * (run_state.c) or the teacher cache (teacher_cache.c). */
#include <stdlib.h>
#include <string.h>

#include "ocrkd/dist.h"
#include "ocrkd/h5util.h"
#include "trainer_internal.h"

/* Every file the job reads must hold images of the model's input height:
 * SPEC lets a reader resize or refuse, and ocrkd refuses (doc/data.md).
 * Rank 0 reads the metadata before anything is sized from the files; the
 * other ranks wait for its verdict. */
void check_data_heights(const Config *c) {
    Err err = {0};
    int rc = 0;
    for (int k = 0; k < c->n_train && !rc && dist_rank() == 0; k++)
        rc = dataset_check_height(c->train[k], IMAGE_H, &err);
    if (!rc && c->val && c->val[0] && dist_rank() == 0)
        rc = dataset_check_height(c->val, IMAGE_H, &err);
    char buf[OCRKD_ERR_LEN];
    snprintf(buf, sizeof buf, "%s", err.msg);
    share_verdict(rc, buf, sizeof buf);
}

void setup_teacher(Trainer *t, int width) {
    const char *path = t->cfg->teacher_checkpoint;
    CkptMeta meta;
    bcast_meta(path, &meta);
    Config tc;
    Err err = {0};
    char name[4200];
    snprintf(name, sizeof name, "%s (stored config)", path);
    fail_if(config_load_string(&tc, meta.config, name, &err), &err);
    if (t->cfg->alphabet[0] && strcmp(t->cfg->alphabet, meta.alphabet) != 0)
        fatal(EXIT_USAGE, "model.alphabet \"%s\" differs from the teacher's \"%s\" (%s)",
              t->cfg->alphabet, meta.alphabet, path);
    fail_if(alphabet_init(&t->alpha, meta.alphabet, &err), &err);
    ModelArch ta;
    fail_if(arch_from_config(&tc, t->alpha.n + 1, &ta, &err), &err);
    t->teacher = crnn_create(&ta, t->cfg->batch_size, width, CRNN_INFERENCE);
    load_and_bcast(t->teacher, path, PART_ALL, 1);
    char desc[256];
    arch_describe(&ta, desc, sizeof desc);
    printf0("teacher  %s: %s, step %ld\n", path, desc, meta.step);
    config_free(&tc);
    ckpt_meta_free(&meta);
}

static void check_size_band(const Trainer *t) {
    const Crnn *s = t->student, *te = t->teacher;
    size_t s_all = s->count[PART_EXTRACTOR] + s->count[PART_ENCODER] + s->count[PART_CLASSIFIER];
    size_t t_all = te->count[PART_EXTRACTOR] + te->count[PART_ENCODER] + te->count[PART_CLASSIFIER];
    size_t s_x = s->count[PART_EXTRACTOR], t_x = te->count[PART_EXTRACTOR];
    int ok_all = s_all < t_all && s_all * 10 > t_all;
    int ok_x = s_x < t_x && s_x * 10 > t_x;
    printf0("size     student/teacher: model %zu/%zu = %.3f, extractor %zu/%zu = %.3f\n", s_all,
            t_all, (double)s_all / t_all, s_x, t_x, (double)s_x / t_x);
    if (ok_all && ok_x) return;
    if (t->cfg->allow_any_size) {
        warn0("student size is outside (1/10, 1) of the teacher's; allowed by "
              "distill.allow_any_size");
        return;
    }
    fatal(EXIT_USAGE,
          "the student must have fewer parameters than the teacher and more than 1/10 of them, "
          "for the whole model (%zu vs %zu) and the extractor (%zu vs %zu); set "
          "distill.allow_any_size: true to override",
          s_all, t_all, s_x, t_x);
}

void open_loaders(Trainer *t) {
    Config *c = t->cfg;
    Err err = {0};
    LoaderConf lc = {0};
    lc.files = (const char *const *)c->train;
    lc.nfiles = c->n_train;
    lc.rank = dist_rank();
    lc.world = dist_world();
    lc.batch_size = c->batch_size;
    lc.shuffle = c->shuffle;
    lc.augment = c->augment;
    lc.aug = &c->aug;
    lc.seed = (uint64_t)c->seed;
    lc.alphabet = t->alpha.utf8 ? t->alpha.utf8 : c->alphabet;
    lc.skip_bad = c->skip_bad_labels;
    lc.limit = c->train_limit;
    lc.train = 1;
    lc.prefetch = 1;
    lc.allow_unlabeled = t->mode == MODE_DISTILL; /* distance terms alone for those samples */
    lc.labels_for = "`ocrkd train` (CTC from scratch)";
    fail_if(loader_open(&t->train, &lc, &err), &err);
    double unl[1] = {(double)loader_unlabeled(t->train)};
    dist_allreduce_sum_f64(unl, 1);
    t->unlabeled_total = unl[0];
    if (!t->alpha.utf8)
        fail_if(alphabet_init(&t->alpha, loader_alphabet(t->train)->utf8, &err), &err);
    if (loader_steps_per_epoch(t->train) < 1)
        fatal(EXIT_DATA, "%s: rank %d's shard has %ld samples, fewer than one batch of %d",
              c->train[0], dist_rank(), loader_shard_size(t->train), c->batch_size);
    if (c->val && c->val[0]) {
        const char *vf[1] = {c->val};
        LoaderConf vc = lc;
        vc.files = vf;
        vc.nfiles = 1;
        vc.limit = 0;
        vc.shuffle = 0;
        vc.augment = 0;
        vc.train = 0;
        vc.alphabet = t->alpha.utf8;
        vc.allow_unlabeled = 0;
        vc.labels_for = "data.val (validation scores the student against labels)";
        fail_if(loader_open(&t->val, &vc, &err), &err);
    }
}

/* Everything rank-independent about the job must agree before step 1. */
void check_agreement(const Trainer *t) {
    char *yaml = config_to_yaml(t->cfg);
    uint64_t h = hash_bytes(HASH_SEED, yaml, strlen(yaml));
    free(yaml);
    const Crnn *m = t->student;
    for (int i = 0; i < m->ntensors; i++) {
        h = hash_bytes(h, m->tensors[i].name, strlen(m->tensors[i].name));
        h = hash_bytes(h, m->tensors[i].shape, sizeof m->tensors[i].shape);
    }
    h = hash_bytes(h, &m->n_trainable, sizeof m->n_trainable);
    long steps = loader_steps_per_epoch(t->train);
    h = hash_bytes(h, &steps, sizeof steps);
    if (!dist_all_equal_u64(h))
        fatal(EXIT_USAGE, "ranks disagree on the configuration, model or steps per epoch "
                          "(different files or versions on different nodes?)");
}

/* The student: initialised from run.seed (or model.init); when distilling,
 * the teacher's encoder and classifier are copied in (with model.init, only
 * the frozen ones) and only the extractor (and the classifier, and the
 * encoder, with distill.train) stays trainable. Then the optimizer and the
 * loss terms for what is trainable. resuming: the checkpoint restored next
 * replaces the parameters (nothing is said of an initialisation it undoes). */
void setup_student(Trainer *t, int width, int resuming) {
    Config *cfg = t->cfg;
    Err err = {0};
    ModelArch arch;
    fail_if(arch_from_config(cfg, t->alpha.n + 1, &arch, &err), &err);
    int select = t->mode == MODE_DISTILL && cfg->student_init == STUDENT_INIT_TEACHER;
    if (select && cfg->init && cfg->init[0])
        fatal(EXIT_USAGE, "model.init (%s) and distill.student_init: teacher both set the "
                          "student's extractor; keep one",
              cfg->init);
    t->student = crnn_create(&arch, cfg->batch_size, width, CRNN_TRAINING);
    crnn_init_params(t->student, (uint64_t)cfg->seed);
    int parts = PART_ALL;
    if (t->mode == MODE_DISTILL) {
        if (t->teacher->arch.num_classes != arch.num_classes)
            fatal(EXIT_USAGE, "student and teacher alphabets differ");
        fail_if(crnn_copy_part(t->student, t->teacher, PART_ENCODER | PART_CLASSIFIER, &err),
                &err);
        parts = PART_EXTRACTOR | (cfg->train_classifier ? PART_CLASSIFIER : 0) |
                (cfg->train_encoder ? PART_ENCODER : 0);
    }
    /* SPEC: model.init loads first and the teacher's copies then replace the
     * frozen parts - the same as loading only the trainable parts after the
     * copies, so a trainable encoder or classifier keeps the init's (a second
     * distillation phase continues from the first one's) */
    if (cfg->init && cfg->init[0]) load_and_bcast(t->student, cfg->init, parts, 0);
    if (select) {
        if (crnn_select_extractor(t->student, t->teacher, &err))
            fatal(EXIT_USAGE, "distill.student_init: teacher (%s): %s", cfg->teacher_checkpoint,
                  err.msg);
        if (!resuming) /* a resumed run's extractor is the checkpoint's */
            printf0("student  extractor selected from the teacher's (distill.student_init: "
                    "teacher)\n");
    }
    if (t->mode == MODE_DISTILL) check_size_band(t);
    if (crnn_set_trainable(t->student, parts) != 0) fatal(1, "internal: trainable set %d", parts);
    grad_sync_setup(t);
    dist_bcast_f32(t->student->params, t->student->nparams, 0);
    optim_init(&t->optim, &cfg->optim, t->student->n_trainable);

    loss_scratch_init(&t->scratch, t->student, loader_max_label_len(t->train));
    t->loss_conf.temperature = cfg->temperature;
    t->loss_conf.ctc_weight = t->mode == MODE_DISTILL ? cfg->ctc_weight : 1.0f;
    if (t->mode == MODE_DISTILL) {
        memcpy(t->loss_conf.dist_weight, cfg->dist_weight, sizeof cfg->dist_weight);
        memcpy(t->loss_conf.feat_weight, cfg->feat_weight, sizeof cfg->feat_weight);
        t->loss_conf.logit_kl = cfg->logit_kl;
    }
}
