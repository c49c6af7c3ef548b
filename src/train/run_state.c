/* run_state.c - what a checkpoint of a run holds beside the parameters
 * (counters, optimizer moments, the convergence window, best scores, wall
 * time: doc/checkpoint.md "Training state"), how a run resumes from one
 * (on any number of ranks), and what run.dir must hold before a run starts.
 * Rank 0 reads and writes files; every rank gets the result by broadcast.
 * Not for the file format itself (io/checkpoint.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ocrkd/dist.h"
#include "trainer_internal.h"

void mkdir_p(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            fatal(EXIT_USAGE, "cannot create run directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        fatal(EXIT_USAGE, "cannot create run directory %s: %s", buf, strerror(errno));
}

/* Rank 0 reads a checkpoint's meta; every rank gets the config text and
 * alphabet. */
void bcast_meta(const char *path, CkptMeta *meta) {
    Err err = {0};
    memset(meta, 0, sizeof *meta);
    int rc = 0;
    if (dist_rank() == 0) {
        rc = ckpt_read_meta(path, meta, &err);
    }
    if (rc) fatal_err(&err);
    if (dist_rank() != 0) {
        meta->kind = xstrdup("");
        meta->config = xstrdup("");
        meta->alphabet = xstrdup("");
        meta->run_id = xstrdup("");
    }
    dist_bcast_string(&meta->kind, 0);
    dist_bcast_string(&meta->config, 0);
    dist_bcast_string(&meta->alphabet, 0);
    dist_bcast_string(&meta->run_id, 0);
    int64_t nums[3] = {meta->step, meta->epoch, meta->world_size};
    dist_bcast_i64(nums, 3, 0);
    meta->step = nums[0];
    meta->epoch = nums[1];
    meta->world_size = (int)nums[2];
}

/* Rank 0 loads tensors of `parts` from path into m, then every rank gets
 * rank 0's whole parameter buffer. */
void load_and_bcast(Crnn *m, const char *path, int parts, int strict) {
    Err err = {0};
    int rc = 0;
    if (dist_rank() == 0) {
        rc = ckpt_read_params(path, m, parts, strict, &err);
    }
    if (rc) fatal_err(&err);
    dist_bcast_f32(m->params, m->nparams, 0);
    crnn_params_changed(m);
}

/* The training state, as the datasets state/counters and state/values. */
enum {
    S_STEP = 0,
    S_EPOCH,
    S_IN_EPOCH,
    S_WORLD,
    S_NONFINITE,
    S_STREAK,
    S_CONVERGE_COUNT,
    S_CONVERGE_STRIKES,
    S_CONVERGE_WINDOWS,
    S_OPT_T,
    S_SEED,
    S_COUNT
};
enum { D_CONVERGE_SUM = 0, D_CONVERGE_BEST, D_BEST_ACC, D_BEST_CER, D_ELAPSED, D_COUNT };

void average_bn_buffers(Crnn *m) {
    dist_allreduce_mean_f32(m->params + (m->nparams - m->n_buffers), m->n_buffers);
}

void write_checkpoint(Trainer *t, const char *path) {
    if (dist_rank() != 0) return;
    long ep, in_ep;
    loader_tell(t->train, &ep, &in_ep);
    int64_t s[S_COUNT] = {0};
    s[S_STEP] = t->step;
    s[S_EPOCH] = ep;
    s[S_IN_EPOCH] = in_ep;
    s[S_WORLD] = dist_world();
    s[S_NONFINITE] = t->nonfinite_total;
    s[S_STREAK] = t->nonfinite_streak;
    s[S_CONVERGE_COUNT] = t->converge.count;
    s[S_CONVERGE_STRIKES] = t->converge.strikes;
    s[S_CONVERGE_WINDOWS] = t->converge.windows;
    s[S_OPT_T] = t->optim.t;
    s[S_SEED] = t->cfg->seed;
    double d[D_COUNT] = {t->converge.sum, t->converge.best, t->best_acc, t->best_cer,
                         t->elapsed_before + now_seconds() - t->t_start};
    CkptBlob blobs[4] = {
        {"state/counters", BLOB_I64, s, S_COUNT},
        {"state/values", BLOB_F64, d, D_COUNT},
        {"optim/m", BLOB_F32, t->optim.m, t->optim.n},
        {"optim/v", BLOB_F32, t->optim.v, t->optim.n},
    };
    int nblobs = t->optim.v ? 4 : 3;
    char *yaml = config_to_yaml(t->cfg);
    CkptMeta meta = {.kind = t->mode == MODE_DISTILL ? "student" : "teacher",
                     .config = yaml,
                     .alphabet = t->alpha.utf8,
                     .step = t->step,
                     .epoch = ep,
                     .world_size = dist_world(),
                     .version = CKPT_VERSION,
                     .run_id = t->run_id};
    Err err = {0};
    int rc = ckpt_write(path, t->student, &meta, blobs, nblobs, &err);
    free(yaml);
    fail_if(rc, &err);
}

void checkpoint_now(Trainer *t) {
    average_bn_buffers(t->student);
    if (dist_rank() == 0) {
        char path[4200];
        ckpt_path_for_step(t->cfg->run_dir, t->step, path, sizeof path);
        write_checkpoint(t, path);
        Err err = {0};
        if (ckpt_prune(t->cfg->run_dir, t->cfg->ckpt_keep, t->run_id, path, &err))
            warn0("%s", err.msg);
    }
    t->t_last_ckpt = now_seconds();
}

void restore(Trainer *t, const char *path) {
    CkptMeta meta;
    bcast_meta(path, &meta);
    const char *want = t->mode == MODE_DISTILL ? "student" : "teacher";
    if (strcmp(meta.kind, want) != 0)
        fatal(EXIT_CKPT, "%s: a %s checkpoint cannot resume `ocrkd %s` (expected kind %s)", path,
              meta.kind, mode_name(t->mode), want);
    if (strcmp(meta.alphabet, t->alpha.utf8) != 0)
        fatal(EXIT_CKPT, "%s: alphabet \"%s\" differs from this run's \"%s\"", path, meta.alphabet,
              t->alpha.utf8);
    load_and_bcast(t->student, path, PART_ALL, 1);
    int64_t s[S_COUNT] = {0};
    double d[D_COUNT] = {0};
    Err err = {0};
    int rc = 0;
    if (dist_rank() == 0) {
        rc = ckpt_read_blob(path, "state/counters", BLOB_I64, s, S_COUNT, &err);
        if (!rc) rc = ckpt_read_blob(path, "state/values", BLOB_F64, d, D_COUNT, &err);
        if (!rc) rc = ckpt_read_blob(path, "optim/m", BLOB_F32, t->optim.m, t->optim.n, &err);
        if (!rc && t->optim.v)
            rc = ckpt_read_blob(path, "optim/v", BLOB_F32, t->optim.v, t->optim.n, &err);
    }
    if (rc) fatal_err(&err);
    dist_bcast_i64(s, S_COUNT, 0);
    dist_bcast_f64(d, D_COUNT, 0);
    dist_bcast_f32(t->optim.m, t->optim.n, 0);
    if (t->optim.v) dist_bcast_f32(t->optim.v, t->optim.n, 0);
    t->step = s[S_STEP];
    t->nonfinite_total = s[S_NONFINITE];
    t->nonfinite_streak = (int)s[S_STREAK];
    t->converge.count = s[S_CONVERGE_COUNT];
    t->converge.strikes = (int)s[S_CONVERGE_STRIKES];
    t->converge.windows = s[S_CONVERGE_WINDOWS];
    t->optim.t = s[S_OPT_T];
    t->converge.sum = d[D_CONVERGE_SUM];
    t->converge.best = d[D_CONVERGE_BEST];
    t->best_acc = d[D_BEST_ACC];
    t->best_cer = d[D_BEST_CER];
    t->elapsed_before = d[D_ELAPSED];
    long epoch = s[S_EPOCH], in_epoch = s[S_IN_EPOCH];
    if (s[S_WORLD] != dist_world()) {
        /* re-shard: keep the epoch, skip the same share of it */
        long per_epoch = loader_steps_per_epoch(t->train);
        double done = (double)in_epoch * s[S_WORLD] / dist_world();
        in_epoch = MIN((long)done, per_epoch);
        printf0("resume   checkpoint written by %ld ranks, running on %d: data re-sharded, "
                "epoch %ld continues at batch %ld of %ld\n",
                (long)s[S_WORLD], dist_world(), epoch, in_epoch, per_epoch);
    }
    fail_if(loader_seek(t->train, epoch, in_epoch, &err), &err);
    if (meta.run_id[0]) /* the same run goes on; a file from before run ids starts a new one */
        snprintf(t->run_id, sizeof t->run_id, "%s", meta.run_id);
    printf0("resume   %s: step %ld, epoch %ld\n", path, t->step, epoch);
    ckpt_meta_free(&meta);
}

/* Rank 0's verdict on run.dir, shared with every rank: a message (fatal
 * when code != 0) or the checkpoint to resume from ("" = start fresh). */
const char *share_verdict(int code, char *buf, size_t cap) {
    int64_t c = code;
    dist_bcast_i64(&c, 1, 0);
    if (c) {
        if (dist_rank() == 0) fatal((int)c, "%s", buf);
        dist_barrier(); /* rank 0's MPI_Abort ends us here */
        exit((int)c);
    }
    char *s = xstrdup(dist_rank() == 0 ? buf : "");
    dist_bcast_string(&s, 0);
    snprintf(buf, cap, "%s", s);
    free(s);
    return buf[0] ? buf : NULL;
}

/* What run.dir holds decides how the run starts (doc/checkpoint.md "Run
 * directory"): no --resume in a directory with checkpoints is refused (a
 * second run would mix with the first); --resume fresh sets the earlier
 * run's files aside; --resume auto takes the newest checkpoint that
 * verifies and refuses when there are some but none does. Returns the
 * checkpoint to resume from, or NULL. */
const char *prepare_run_dir(Trainer *t, char *buf, size_t cap) {
    const char *r = t->opt->resume, *dir = t->cfg->run_dir;
    int code = 0;
    buf[0] = 0;
    if (dist_rank() == 0) {
        char names[600];
        int n = ckpt_list(dir, names, sizeof names);
        Err err = {0};
        if (!r && n > 0) {
            code = EXIT_USAGE;
            snprintf(buf, cap,
                     "run.dir %s already holds %d checkpoint(s) of a run (%s): add --resume auto "
                     "to continue it, --resume fresh to start over (its files are moved to "
                     "%s/previous-N/), or set another run.dir",
                     dir, n, names, dir);
        } else if (r && !strcmp(r, "fresh")) {
            int moved = 0;
            char to[4200];
            code = ckpt_set_aside(dir, to, sizeof to, &moved, &err);
            if (code) snprintf(buf, cap, "--resume fresh: %s", err.msg);
            if (moved)
                printf0("resume   --resume fresh: %d file(s) of the earlier run moved to %s\n",
                        moved, to);
        } else if (r && !strcmp(r, "auto")) {
            int rc = ckpt_find_resume(dir, buf, cap, &err);
            if (rc == EXIT_CKPT) {
                code = EXIT_CKPT;
                snprintf(buf, cap,
                         "--resume auto: %s. Nothing was changed: repair or move these files, "
                         "or start over with --resume fresh (moves them to %s/previous-N/)",
                         err.msg, dir);
            } else if (rc < 0) {
                buf[0] = 0;
                printf0("resume   no checkpoint in %s: starting fresh\n", dir);
            }
        } else if (r) {
            snprintf(buf, cap, "%s", r);
        }
    }
    return share_verdict(code, buf, cap);
}
