/* trainer_internal.h - what the files of the step loop share: the trainer's
 * state, the per-step flags every rank sums, and the functions each file
 * offers the others. src/train/ only: the public face is ocrkd/trainer.h.
 *
 *   trainer.c        the step loop and trainer_run (start-up order, the end)
 *   setup.c          teacher, loaders, student, losses; start-up agreement
 *   teacher_cache.c  the teacher's outputs kept in memory after epoch 1
 *   run_state.c      what a checkpoint holds, how a run resumes, run.dir
 *   validation.c     validation passes and best.h5
 *   progress.c       progress lines, metrics.jsonl, banner, bench report
 *   signals.c        the signal flag and the fault injection of the tests
 *   converge.c       the stop.converge rule */
#ifndef OCRKD_TRAINER_INTERNAL_H
#define OCRKD_TRAINER_INTERNAL_H

#include <stdio.h>

#include "ocrkd/checkpoint.h"
#include "ocrkd/common.h"
#include "ocrkd/config.h"
#include "ocrkd/converge.h"
#include "ocrkd/dataset.h"
#include "ocrkd/distill.h"
#include "ocrkd/model.h"
#include "ocrkd/optim.h"
#include "ocrkd/trainer.h"

#define BENCH_WARMUP 2 /* steps not timed by `ocrkd bench`: they touch fresh memory */

/* seconds per phase of a step, for `ocrkd bench` */
enum { TM_DATA = 0, TM_TEACHER, TM_STUDENT, TM_ALLREDUCE, TM_OPTIM, TM_COUNT };

/* What each rank contributes to a step's one allreduce of flags. */
enum {
    F_LOSS = 0,
    F_DIST,
    F_CTC,
    F_BAD,
    F_SIGNAL,
    F_TIME_CKPT,
    F_TIME_STOP,
    F_TIME_FRAC, /* rank 0's share of stop.max_minutes used (optim.schedule.over: time) */
    F_IMAGES,
    F_LABELED,
    F_UNLABELED,
    F_COUNT
};

/* The teacher's outputs per shard sample: its encoder outputs (T*2H), then
 * its extractor outputs (T*D) and log-posteriors (T*K) when the loss uses
 * them. Sized from data.train (and data.train_limit) at start-up. */
typedef struct {
    float *rows;  /* NULL: no cache */
    int parts[3]; /* floats per time step of each part: 2H, D or 0, K or 0 */
    unsigned char *cached;
    long slots;
    int n_files;       /* of data.train */
    long *file_offset; /* slot offset of each file of the list (-1: not ours) */
    long shard_start;  /* single file: first index of this rank's shard */
    float *batch[3];   /* (T,B,c) of each part, gathered from the cache */
} TeacherCache;

typedef struct {
    TrainMode mode;
    Config *cfg;
    const TrainOptions *opt;
    Alphabet alpha;
    Loader *train, *val;
    double unlabeled_total; /* samples without a label in data.train, all ranks */
    Crnn *student, *teacher;
    Optim optim;
    LossConf loss_conf;
    LossScratch scratch;
    TeacherCache cache;
    /* progress */
    long step;
    Converge converge;
    int nonfinite_streak;
    long nonfinite_total;
    double best_acc, best_cer;
    double teacher_acc;    /* the teacher's val word accuracy (distill with data.val), else -1 */
    double elapsed_before; /* seconds spent in earlier runs (resume) */
    double t_start, t_last_ckpt;
    double log_sum[F_COUNT];
    long log_steps;
    double t_log;
    FILE *metrics;
    int tty;
    double tm[TM_COUNT]; /* seconds per phase, for `ocrkd bench` */
    double flops[TM_COUNT]; /* GEMM FLOPs per phase (gemm_flop_count), for `ocrkd bench` */
    /* gradient buckets reduced during backward (grad_sync.c) */
    struct {
        size_t bucket;  /* floats per bucket; 0 = one reduction after backward */
        size_t sent_lo; /* grads[sent_lo ..) are in flight this step */
        int bad;        /* a bucket sent had a non-finite value (checked before sending) */
    } sync;
    /* names this run's checkpoints (kept across resumes); only files that
     * carry it are ever pruned. Rank 0 only; "" in bench. */
    char run_id[CKPT_RUN_ID_LEN + 1];
} Trainer;

/* grad_sync.c: the trainable gradients' allreduce, in buckets overlapped
 * with backward (env OCRKD_BUCKET_KB, default GRAD_BUCKET_KB; 0: one
 * allreduce after backward) */
#define GRAD_BUCKET_KB 256
void grad_sync_setup(Trainer *t);
void grad_sync_begin(Trainer *t);
int grad_sync_local_bad(const Trainer *t);
void grad_sync_finish(Trainer *t, int apply);

static inline const char *mode_name(TrainMode m) {
    return m == MODE_DISTILL ? "distill" : "train";
}

static inline void fail_if(int rc, const Err *err) {
    if (rc) fatal_err(err);
}

/* setup.c */
void check_data_heights(const Config *c);
void setup_teacher(Trainer *t, int width);
void open_loaders(Trainer *t);
void setup_student(Trainer *t, int width, int resuming);
void check_agreement(const Trainer *t);

/* teacher_cache.c */
void teacher_cache_init(Trainer *t);
TeacherView teacher_outputs(Trainer *t, const Batch *b);

/* run_state.c */
void mkdir_p(const char *dir);
const char *share_verdict(int code, char *buf, size_t cap);
void bcast_meta(const char *path, CkptMeta *meta);
void load_and_bcast(Crnn *m, const char *path, int parts, int strict);
const char *prepare_run_dir(Trainer *t, char *buf, size_t cap);
void average_bn_buffers(Crnn *m);
void write_checkpoint(Trainer *t, const char *path);
void checkpoint_now(Trainer *t);
void restore(Trainer *t, const char *path);

/* validation.c */
void evaluate_teacher(Trainer *t);
void evaluate_val(Trainer *t);

/* progress.c */
void log_json(Trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_progress(Trainer *t, float lr);
int progress_redraws(void);
void end_progress_line(const Trainer *t);
void print_start(const Trainer *t);
void print_bench(Trainer *t, double secs);

/* signals.c */
int signal_caught(void); /* the signal number this rank caught, or 0 */
int signalled_anywhere(void);
void fault_startup_sleep(void);
int fault_nan_now(long step);

#endif
