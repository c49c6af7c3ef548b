/* trainer.c - the step loop shared by `train` and `distill`.
 *
 * Data flow of one step on every rank:
 *   loader batch -> [teacher forward (frozen, running-stat BN) or cache]
 *   -> student forward (batch-stat BN) -> CTC (+ distances to the teacher)
 *   -> backward (frozen parts: input gradients only)
 *   -> flags allreduce (loss sums, NaN, signal, clocks) -> gradient allreduce
 *   (trainable slice only) -> clip -> optimizer -> log / eval / checkpoint.
 * Every decision to stop, skip or checkpoint is computed from values all
 * ranks share after the flags allreduce, so ranks never disagree.
 * The start-up, the state a checkpoint keeps, validation and progress
 * output live beside it (trainer_internal.h lists the files).
 * Not for the command line (cli/) or file formats (io/). */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/dist.h"
#include "ocrkd/gemm.h"
#include "ocrkd/h5util.h"
#include "ocrkd/nn.h"
#include "trainer_internal.h"

#define MAX_NONFINITE_STREAK 10

/* *norm: the 2-norm of the gradients on one rank (where no reduction
 * changes them before the clip, which takes it from here), else NAN */
static void compute_gradients(Trainer *t, double *flags, double *norm) {
    Err err = {0};
    const Batch *b;
    double t0 = now_seconds();
    fail_if(loader_next(t->train, &b, &err), &err);
    double t1 = now_seconds(), f1 = gemm_flop_count();
    TeacherView tv = {0};
    if (t->mode == MODE_DISTILL) tv = teacher_outputs(t, b);
    double t2 = now_seconds(), f2 = gemm_flop_count();
    grad_sync_begin(t);
    LossTerms r = student_gradients(t->student, t->mode == MODE_DISTILL ? &tv : NULL, b,
                                    &t->loss_conf, &t->scratch);
    double t3 = now_seconds();
    t->tm[TM_DATA] += t1 - t0;
    t->tm[TM_TEACHER] += t2 - t1;
    t->tm[TM_STUDENT] += t3 - t2;
    t->flops[TM_TEACHER] += f2 - f1;
    t->flops[TM_STUDENT] += gemm_flop_count() - f2;
    if (fault_nan_now(t->step + 1)) t->student->grads[0] = NAN;
    int bad;
    if (dist_world() == 1) { /* grad_sync_local_bad's test, on the whole vector */
        *norm = grad_norm(t->student->grads, t->student->n_trainable);
        bad = !isfinite(r.loss) || !isfinite(*norm);
    } else {
        *norm = NAN;
        bad = !isfinite(r.loss) || grad_sync_local_bad(t);
    }
    flags[F_LOSS] = r.loss;
    flags[F_DIST] = r.distance;
    flags[F_CTC] = r.ctc;
    flags[F_BAD] = bad;
    flags[F_IMAGES] = b->B;
    flags[F_LABELED] = b->n_labeled;
    flags[F_UNLABELED] = b->B - b->n_labeled;
}

/* Returns the stop reason (NULL = go on) and sets *code. */
static const char *train_step(Trainer *t, int *code) {
    const Config *c = t->cfg;
    double f[F_COUNT] = {0}, norm;
    compute_gradients(t, f, &norm);
    f[F_SIGNAL] = signal_caught() != 0;
    if (dist_rank() == 0) {
        double now = now_seconds();
        f[F_TIME_CKPT] =
            c->ckpt_every_minutes > 0 && now - t->t_last_ckpt >= 60 * c->ckpt_every_minutes;
        const double used = t->elapsed_before + now - t->t_start;
        f[F_TIME_STOP] = c->max_minutes > 0 && used >= 60 * c->max_minutes;
        f[F_TIME_FRAC] = c->max_minutes > 0 ? used / (60 * c->max_minutes) : 0;
    }
    if (isfinite(f[F_LOSS]) == 0) f[F_LOSS] = f[F_DIST] = f[F_CTC] = 0; /* keep sums finite */
    dist_allreduce_sum_f64(f, F_COUNT);
    int P = dist_world();
    float lr = lr_at(&c->schedule, c->optim.lr, t->step, f[F_TIME_FRAC]); /* rank 0's clock */
    if (f[F_BAD] > 0) {
        grad_sync_finish(t, 0); /* buckets already in flight are waited for, not used */
        t->nonfinite_streak++;
        t->nonfinite_total++;
        warn0("step %ld: non-finite loss or gradient on %.0f rank(s); update skipped (%d in a row)",
              t->step + 1, f[F_BAD], t->nonfinite_streak);
        if (t->nonfinite_streak >= MAX_NONFINITE_STREAK) {
            *code = EXIT_NUMERIC;
            return "numerical failure: too many non-finite steps in a row";
        }
    } else {
        t->nonfinite_streak = 0;
        Crnn *s = t->student;
        double t0 = now_seconds();
        grad_sync_finish(t, 1);
        double t1 = now_seconds();
        if (isfinite(norm))
            clip_grad_to_norm(s->grads, s->n_trainable, c->grad_clip, norm);
        else
            clip_grad_norm(s->grads, s->n_trainable, c->grad_clip);
        optim_step(&t->optim, s->params, s->grads, lr);
        t->tm[TM_ALLREDUCE] += t1 - t0;
        t->tm[TM_OPTIM] += now_seconds() - t1;
        t->log_sum[F_LOSS] += f[F_LOSS] / P;
        t->log_sum[F_DIST] += f[F_DIST] / P;
        t->log_sum[F_CTC] += f[F_CTC] / P;
        t->log_sum[F_IMAGES] += f[F_IMAGES];
        t->log_sum[F_LABELED] += f[F_LABELED];
        t->log_sum[F_UNLABELED] += f[F_UNLABELED];
        t->log_steps++;
    }
    t->step++;
    long epoch, in_epoch;
    loader_tell(t->train, &epoch, &in_epoch);
    int converged = f[F_BAD] == 0 && converge_add(&t->converge, f[F_LOSS] / P);
    if (c->log_every_steps > 0 && t->step % c->log_every_steps == 0) log_progress(t, lr);
    if (t->opt->bench_steps) {
        if (t->step == BENCH_WARMUP) { /* first steps touch fresh memory: not timed */
            memset(t->tm, 0, sizeof t->tm);
            memset(t->flops, 0, sizeof t->flops); /* counted over the same steps */
            t->t_start = now_seconds();
        }
        return t->step >= BENCH_WARMUP + t->opt->bench_steps ? "bench done" : NULL;
    }
    if (f[F_SIGNAL] > 0) {
        *code = EXIT_PREEMPTED;
        return "stopped by a signal";
    }
    if (c->eval_every_steps > 0 && t->step % c->eval_every_steps == 0) evaluate_val(t);
    if (converged) return "converged";
    if (c->max_steps > 0 && t->step >= c->max_steps) return "reached stop.max_steps";
    if (c->max_epochs > 0 && epoch >= c->max_epochs) return "reached stop.max_epochs";
    if (f[F_TIME_STOP] > 0) return "reached stop.max_minutes";
    if ((c->ckpt_every_steps > 0 && t->step % c->ckpt_every_steps == 0) || f[F_TIME_CKPT] > 0)
        checkpoint_now(t);
    return NULL;
}

/* A signal before step 1 (every rank agrees at these points): the job ends
 * with exit 75 and writes nothing, since the state is still that of the
 * checkpoint it resumes, or a fresh start that --resume auto repeats. */
static int stopped_in_startup(Trainer *t, const char *resume, const char *phase) {
    if (t->opt->bench_steps || !signalled_anywhere()) return 0;
    if (resume)
        printf0("stop     stopped by a signal during start-up (%s): no new checkpoint, %s still "
                "holds this run's state\n",
                phase, resume);
    else
        printf0("stop     stopped by a signal during start-up (%s): nothing to save yet, "
                "--resume auto will start afresh\n",
                phase);
    log_json(t, "{\"step\":%ld,\"event\":\"stop\",\"reason\":\"signal during start-up\"}", t->step);
    if (t->metrics) fclose(t->metrics);
    if (t->train) loader_close(t->train);
    if (t->val) loader_close(t->val);
    dist_barrier();
    return 1;
}

/* Everything before step 1, in the order that the parts depend on each
 * other, with a stop point after each slow phase. Returns 1 when a signal
 * stopped the job during it. */
static int start_run(Trainer *t, char *rbuf, size_t cap, const char **resume) {
    Config *cfg = t->cfg;
    const TrainOptions *opt = t->opt;
    h5_quiet();
    check_data_heights(cfg);
    *resume = NULL;
    if (!opt->bench_steps) {
        mkdir_p(cfg->run_dir);
        *resume = prepare_run_dir(t, rbuf, cap);
        if (dist_rank() == 0) /* restore may adopt the resumed run's id instead */
            ckpt_new_run_id(t->run_id, sizeof t->run_id);
        fault_startup_sleep();
    }
    if (stopped_in_startup(t, *resume, "checking run.dir")) return 1;
    /* the teacher first: it fixes the alphabet */
    if (t->mode == MODE_DISTILL) {
        /* the data width is needed to size the teacher: read it from the file */
        DatasetMeta dm;
        Err err = {0};
        fail_if(dataset_read_meta(cfg->train[0], &dm, &err), &err);
        setup_teacher(t, dm.width);
        dataset_meta_free(&dm);
        if (stopped_in_startup(t, *resume, "loading the teacher")) return 1;
    }
    open_loaders(t);
    setup_student(t, loader_width(t->train), *resume != NULL);
    if (stopped_in_startup(t, *resume, "building the model")) return 1;
    teacher_cache_init(t);
    converge_init(&t->converge, cfg->converge_window, cfg->converge_rel_tol, cfg->converge_patience);
    if (*resume) restore(t, *resume);
    if (stopped_in_startup(t, *resume, "restoring the checkpoint")) return 1;
    check_agreement(t);
    print_start(t);
    if (dist_rank() == 0 && !opt->bench_steps) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run_dir);
        t->metrics = fopen(path, *resume ? "a" : "w");
        if (!t->metrics) fatal(EXIT_USAGE, "cannot write %s: %s", path, strerror(errno));
    }
    t->tty = progress_redraws();
    t->t_start = t->t_log = t->t_last_ckpt = now_seconds();
    evaluate_teacher(t);
    return stopped_in_startup(t, *resume, "evaluating the teacher");
}

/* After the last step: the bench report, or a last validation, the final
 * checkpoint and best.h5 (unless the run failed numerically). */
static void finish_run(Trainer *t, const char *why, int code, double secs) {
    const Config *cfg = t->cfg;
    printf0("stop     %s at step %ld (%.1f s this run%s)\n", why, t->step, secs,
            t->nonfinite_total ? ", some non-finite steps skipped" : "");
    if (t->opt->bench_steps) {
        print_bench(t, secs);
    } else if (code != EXIT_NUMERIC) {
        if (code == EXIT_OK) evaluate_val(t);
        if (t->teacher_acc >= 0)
            printf0("summary  best val word_acc: student %.4f, teacher %.4f (%+.4f)\n", t->best_acc,
                    t->teacher_acc, t->best_acc - t->teacher_acc);
        checkpoint_now(t);
        if (dist_rank() == 0) {
            char best[4200];
            snprintf(best, sizeof best, "%s/best.h5", cfg->run_dir);
            if (!t->val || access(best, F_OK) != 0) write_checkpoint(t, best);
            printf0("saved    %s/ckpt-%08ld.h5 and best.h5\n", cfg->run_dir, t->step);
        }
        log_json(t, "{\"step\":%ld,\"event\":\"stop\",\"reason\":\"%s\"}", t->step, why);
    }
    if (t->metrics) fclose(t->metrics);
    loader_close(t->train);
    if (t->val) loader_close(t->val);
    dist_barrier();
}

int trainer_run(TrainMode mode, Config *cfg, const TrainOptions *opt) {
    Trainer tr, *t = &tr;
    memset(t, 0, sizeof *t);
    t->mode = mode;
    t->cfg = cfg;
    t->opt = opt;
    t->best_cer = INFINITY;
    t->best_acc = -1;
    char rbuf[4200];
    const char *resume;
    if (start_run(t, rbuf, sizeof rbuf, &resume)) return EXIT_PREEMPTED;
    int code = EXIT_OK;
    const char *why = NULL;
    if (cfg->max_steps > 0 && t->step >= cfg->max_steps) why = "reached stop.max_steps";
    /* a resumed run whose time is used (every rank restored the same clock) */
    if (!why && cfg->max_minutes > 0 && t->elapsed_before >= 60 * cfg->max_minutes)
        why = "reached stop.max_minutes";
    while (!why)
        why = train_step(t, &code);
    end_progress_line(t);
    finish_run(t, why, code, now_seconds() - t->t_start);
    return code;
}
