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
 * Not for the command line (cli/) or file formats (io/). */
#include "ocrkd/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ocrkd/blas_core.h"
#include "ocrkd/checkpoint.h"
#include "ocrkd/dataset.h"
#include "ocrkd/dist.h"
#include "ocrkd/distill.h"
#include "ocrkd/evaluate.h"
#include "ocrkd/h5util.h"
#include "ocrkd/model.h"
#include "ocrkd/nn.h"
#include "ocrkd/optim.h"

#define MAX_NONFINITE_STREAK 10
#define BENCH_WARMUP 2
#define TEACHER_CACHE_AUTO_BYTES (2UL << 30) /* per rank */

/* ---- signals: the handler only sets a flag; the step loop acts on it ---- */
static volatile sig_atomic_t g_signal;
static void on_signal(int sig) { g_signal = sig; }
void trainer_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* a signal must not fail a read or write in progress */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL); /* mpirun forwards it too; by default it would kill the rank */
    sigaction(SIGINT, &sa, NULL);
}

/* Has any rank been signalled? A collective: every rank calls it at the
 * same points of the start-up, so all agree to stop before step 1. */
static int signalled_anywhere(void) {
    double f[1] = {g_signal != 0};
    dist_allreduce_sum_f64(f, 1);
    return f[0] > 0;
}

/* Fault injection for tests: OCRKD_FAULT_STARTUP_SLEEP=SECONDS makes the
 * start-up that much slower (ended early by a signal), so that a test can
 * signal a job before its first step. */
static void fault_startup_sleep(void) {
    const char *env = getenv("OCRKD_FAULT_STARTUP_SLEEP");
    double left = env ? atof(env) : 0;
    for (; left > 0 && !g_signal; left -= 0.05) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* ---- convergence ---- */
void converge_init(Converge *c, int window, double rel_tol, int patience) {
    memset(c, 0, sizeof *c);
    c->window = window;
    c->rel_tol = rel_tol;
    c->patience = patience;
    c->best = INFINITY;
}

int converge_add(Converge *c, double loss) {
    if (c->window <= 0) return 0;
    c->sum += loss;
    if (++c->count < c->window) return 0;
    double mean = c->sum / (double)c->count;
    c->sum = 0;
    c->count = 0;
    c->windows++;
    if (!isfinite(c->best)) {
        c->best = mean;
        return 0;
    }
    double gain = (c->best - mean) / fmax(fabs(c->best), 1e-12);
    if (gain < c->rel_tol)
        c->strikes++;
    else
        c->strikes = 0;
    if (mean < c->best) c->best = mean;
    return c->strikes >= c->patience;
}

/* ---- the trainer's state ---- */
enum { TM_DATA = 0, TM_TEACHER, TM_STUDENT, TM_ALLREDUCE, TM_OPTIM, TM_COUNT };
static const char *tm_name[TM_COUNT] = {"data (wait)", "teacher forward",
                                        "student forward+backward", "allreduce", "optimizer"};
enum {
    F_LOSS = 0,
    F_DIST,
    F_CTC,
    F_BAD,
    F_SIGNAL,
    F_TIME_CKPT,
    F_TIME_STOP,
    F_IMAGES,
    F_LABELED,
    F_UNLABELED,
    F_COUNT
};

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
    /* teacher cache: per shard sample, its encoder outputs (T*2H), then its
     * extractor outputs (T*D) and log-posteriors (T*K) when the loss uses them */
    float *cache;
    int cache_parts[3]; /* floats per time step of each part: 2H, D or 0, K or 0 */
    unsigned char *cached;
    long cache_slots;
    long *file_offset; /* slot offset of each file of the list (-1: not ours) */
    long shard_start;  /* single file: first index of this rank's shard */
    float *tb[3];      /* (T,B,c) of each part, gathered from the cache */
    /* progress */
    long step;
    Converge conv;
    int nonfinite_streak;
    long nonfinite_total;
    double best_acc, best_cer;
    double teacher_acc; /* the teacher's val word accuracy (distill with data.val), else -1 */
    double elapsed_before; /* seconds spent in earlier runs (resume) */
    double t_start, t_last_ckpt;
    double log_sum[F_COUNT];
    long log_steps;
    double t_log;
    FILE *metrics;
    int tty;
    double tm[TM_COUNT]; /* seconds per phase, for `ocrkd bench` */
    /* names this run's checkpoints (kept across resumes); only files that
     * carry it are ever pruned. Rank 0 only; "" in bench. */
    char run_id[CKPT_RUN_ID_LEN + 1];
} Trainer;

static const char *mode_name(TrainMode m) { return m == MODE_DISTILL ? "distill" : "train"; }

static void fail_if(int rc, const Err *err) {
    if (rc) fatal_err(err);
}

static void mkdir_p(const char *dir) {
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

/* ---- set-up ---- */

/* Rank 0 reads a checkpoint's meta; every rank gets the config text and
 * alphabet. */
static void bcast_meta(const char *path, CkptMeta *meta) {
    Err err = {0};
    memset(meta, 0, sizeof *meta);
    int rc = 0;
    if (dist_rank() == 0) {
        dataset_hdf5_lock();
        rc = ckpt_read_meta(path, meta, &err);
        dataset_hdf5_unlock();
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
static void load_and_bcast(Crnn *m, const char *path, int parts, int strict) {
    Err err = {0};
    int rc = 0;
    if (dist_rank() == 0) {
        dataset_hdf5_lock();
        rc = ckpt_read_params(path, m, parts, strict, &err);
        dataset_hdf5_unlock();
    }
    if (rc) fatal_err(&err);
    dist_bcast_f32(m->params, m->nparams, 0);
    crnn_params_changed(m);
}

static void setup_teacher(Trainer *t, int width) {
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
    t->teacher = crnn_create(&ta, t->cfg->batch_size, width, 0);
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

static void setup_cache(Trainer *t) {
    const Config *c = t->cfg;
    t->cache = NULL;
    if (t->mode != MODE_DISTILL || c->teacher_cache == TEACHER_CACHE_OFF) return;
    if (c->augment) {
        if (c->teacher_cache == TEACHER_CACHE_ON)
            warn0("distill.teacher_cache: on is ignored because data.augment is on");
        return;
    }
    int P = dist_world(), r = dist_rank();
    long slots = 0;
    t->file_offset = xcalloc((size_t)c->n_train, sizeof(long));
    for (int k = 0; k < c->n_train; k++) {
        DatasetMeta dm;
        Err err = {0};
        fail_if(dataset_read_meta(c->train[k], &dm, &err), &err);
        dm.n = dataset_limited(dm.n, c->train_limit);
        if (c->n_train == 1) {
            t->shard_start = (long)((long long)r * dm.n / P);
            slots = (long)((long long)(r + 1) * dm.n / P) - t->shard_start;
        } else if (k % P == r) {
            t->file_offset[k] = slots;
            slots += dm.n;
        } else {
            t->file_offset[k] = -1;
        }
        dataset_meta_free(&dm);
    }
    t->cache_parts[0] = 2 * t->teacher->arch.enc_hidden;
    t->cache_parts[1] = loss_needs_feat(&t->loss_conf) ? t->teacher->arch.feature_dim : 0;
    t->cache_parts[2] = loss_needs_logp(&t->loss_conf) ? t->teacher->arch.num_classes : 0;
    size_t row = (size_t)t->student->T *
                 (t->cache_parts[0] + t->cache_parts[1] + t->cache_parts[2]);
    double bytes = (double)slots * row * sizeof(float);
    double most = 0;
    if (c->teacher_cache == TEACHER_CACHE_AUTO) most = (double)TEACHER_CACHE_AUTO_BYTES;
    /* every rank must agree on whether the cache is on */
    double fits[1] = {c->teacher_cache == TEACHER_CACHE_ON || bytes <= most ? 0.0 : 1.0};
    dist_allreduce_sum_f64(fits, 1);
    if (fits[0] > 0) {
        printf0("cache    teacher outputs not cached (%.0f MiB per rank > %.0f MiB)\n",
                bytes / 1048576, most / 1048576);
        return;
    }
    t->cache_slots = slots;
    t->cache = xalloc_floats((size_t)slots * row);
    t->cached = xcalloc((size_t)slots, 1);
    for (int p = 0; p < 3; p++)
        t->tb[p] = xalloc_floats((size_t)c->batch_size * t->student->T * t->cache_parts[p]);
    printf0("cache    teacher encoder outputs cached in memory: %.0f MiB per rank\n",
            bytes / 1048576);
}

static long cache_slot(const Trainer *t, const Batch *b, int i) {
    long slot = t->cfg->n_train == 1 ? b->index[i] - t->shard_start
                                     : t->file_offset[b->file[i]] + b->index[i];
    if (slot < 0 || slot >= t->cache_slots) fatal(1, "internal: teacher cache slot %ld", slot);
    return slot;
}

/* Moves sample i's (T,c) rows between the cache row and a (T,B,c) batch. */
static void cache_copy(float *batch, float *row, int T, int B, int i, int c, int to_batch) {
    for (int s = 0; s < T; s++) {
        float *bt = batch + ((size_t)s * B + i) * c, *rw = row + (size_t)s * c;
        memcpy(to_batch ? bt : rw, to_batch ? rw : bt, c * sizeof(float));
    }
}

/* The teacher's outputs for the batch: from the cache when every sample is
 * there, else a teacher forward (which fills the cache). */
static TeacherView teacher_outputs(Trainer *t, const Batch *b) {
    int T = t->student->T, B = b->B;
    const int *cp = t->cache_parts;
    size_t row = (size_t)T * (cp[0] + cp[1] + cp[2]);
    if (t->cache) {
        int all = 1;
        for (int i = 0; i < B && all; i++) all = t->cached[cache_slot(t, b, i)];
        if (all) {
            for (int i = 0; i < B; i++) {
                float *src = t->cache + (size_t)cache_slot(t, b, i) * row;
                for (int p = 0; p < 3; src += (size_t)T * cp[p], p++)
                    if (cp[p]) cache_copy(t->tb[p], src, T, B, i, cp[p], 1);
            }
            return (TeacherView){t->tb[0], cp[1] ? t->tb[1] : NULL, cp[2] ? t->tb[2] : NULL};
        }
    }
    int logits = loss_needs_logp(&t->loss_conf);
    Crnn *te = t->teacher;
    crnn_forward(te, b->images, B, 0, logits ? UPTO_LOGITS : UPTO_ENCODER);
    if (t->cache) {
        float *out[3] = {te->enc, te->feat, te->logp};
        for (int i = 0; i < B; i++) {
            long slot = cache_slot(t, b, i);
            float *dst = t->cache + (size_t)slot * row;
            for (int p = 0; p < 3; dst += (size_t)T * cp[p], p++)
                if (cp[p]) cache_copy(out[p], dst, T, B, i, cp[p], 0);
            t->cached[slot] = 1;
        }
    }
    return (TeacherView){te->enc, loss_needs_feat(&t->loss_conf) ? te->feat : NULL,
                         logits ? te->logp : NULL};
}

static void open_loaders(Trainer *t) {
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
    if (!t->alpha.utf8) fail_if(alphabet_init(&t->alpha, loader_alphabet(t->train)->utf8, &err), &err);
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
static void check_agreement(const Trainer *t) {
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

/* ---- checkpoints ---- */
enum { S_STEP = 0, S_EPOCH, S_IN_EPOCH, S_WORLD, S_NONFINITE, S_STREAK, S_CONV_COUNT,
       S_CONV_STRIKES, S_CONV_WINDOWS, S_OPT_T, S_SEED, S_COUNT };
enum { D_CONV_SUM = 0, D_CONV_BEST, D_BEST_ACC, D_BEST_CER, D_ELAPSED, D_COUNT };

static void average_bn_buffers(Crnn *m) {
    dist_allreduce_mean_f32(m->params + (m->nparams - m->n_buffers), m->n_buffers);
}

static void write_checkpoint(Trainer *t, const char *path) {
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
    s[S_CONV_COUNT] = t->conv.count;
    s[S_CONV_STRIKES] = t->conv.strikes;
    s[S_CONV_WINDOWS] = t->conv.windows;
    s[S_OPT_T] = t->optim.t;
    s[S_SEED] = t->cfg->seed;
    double d[D_COUNT] = {t->conv.sum, t->conv.best, t->best_acc, t->best_cer,
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
    dataset_hdf5_lock(); /* the prefetch thread reads HDF5 concurrently */
    int rc = ckpt_write(path, t->student, &meta, blobs, nblobs, &err);
    dataset_hdf5_unlock();
    free(yaml);
    fail_if(rc, &err);
}

static void checkpoint_now(Trainer *t) {
    average_bn_buffers(t->student);
    if (dist_rank() == 0) {
        char path[4200];
        ckpt_path_for_step(t->cfg->run_dir, t->step, path, sizeof path);
        write_checkpoint(t, path);
        Err err = {0};
        dataset_hdf5_lock();
        if (ckpt_prune(t->cfg->run_dir, t->cfg->ckpt_keep, t->run_id, path, &err))
            warn0("%s", err.msg);
        dataset_hdf5_unlock();
    }
    t->t_last_ckpt = now_seconds();
}

static void restore(Trainer *t, const char *path) {
    CkptMeta meta;
    bcast_meta(path, &meta);
    const char *want = t->mode == MODE_DISTILL ? "student" : "teacher";
    if (strcmp(meta.kind, want) != 0)
        fatal(EXIT_CKPT, "%s: a %s checkpoint cannot resume `ocrkd %s` (expected kind %s)", path,
              meta.kind, mode_name(t->mode), want);
    if (strcmp(meta.alphabet, t->alpha.utf8) != 0)
        fatal(EXIT_CKPT, "%s: alphabet \"%s\" differs from this run's \"%s\"", path,
              meta.alphabet, t->alpha.utf8);
    load_and_bcast(t->student, path, PART_ALL, 1);
    int64_t s[S_COUNT] = {0};
    double d[D_COUNT] = {0};
    Err err = {0};
    int rc = 0;
    if (dist_rank() == 0) {
        dataset_hdf5_lock();
        rc = ckpt_read_blob(path, "state/counters", BLOB_I64, s, S_COUNT, &err);
        if (!rc) rc = ckpt_read_blob(path, "state/values", BLOB_F64, d, D_COUNT, &err);
        if (!rc) rc = ckpt_read_blob(path, "optim/m", BLOB_F32, t->optim.m, t->optim.n, &err);
        if (!rc && t->optim.v)
            rc = ckpt_read_blob(path, "optim/v", BLOB_F32, t->optim.v, t->optim.n, &err);
        dataset_hdf5_unlock();
    }
    if (rc) fatal_err(&err);
    dist_bcast_i64(s, S_COUNT, 0);
    dist_bcast_f64(d, D_COUNT, 0);
    dist_bcast_f32(t->optim.m, t->optim.n, 0);
    if (t->optim.v) dist_bcast_f32(t->optim.v, t->optim.n, 0);
    t->step = s[S_STEP];
    t->nonfinite_total = s[S_NONFINITE];
    t->nonfinite_streak = (int)s[S_STREAK];
    t->conv.count = s[S_CONV_COUNT];
    t->conv.strikes = (int)s[S_CONV_STRIKES];
    t->conv.windows = s[S_CONV_WINDOWS];
    t->optim.t = s[S_OPT_T];
    t->conv.sum = d[D_CONV_SUM];
    t->conv.best = d[D_CONV_BEST];
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
static const char *share_verdict(int code, char *buf, size_t cap) {
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
static const char *prepare_run_dir(Trainer *t, char *buf, size_t cap) {
    const char *r = t->opt->resume, *dir = t->cfg->run_dir;
    int code = 0;
    buf[0] = 0;
    if (dist_rank() == 0) {
        char names[600];
        int n = ckpt_list(dir, names, sizeof names);
        dataset_hdf5_lock();
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
        dataset_hdf5_unlock();
    }
    return share_verdict(code, buf, cap);
}

/* ---- logging ---- */
static void log_json(Trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* fmt is a JSON object "{...}"; the line gets "wall" (seconds of training
 * since the run began, resumed jobs included) as its first key. */
static void log_json(Trainer *t, const char *fmt, ...) {
    if (!t->metrics) return;
    if (fmt[0] != '{') fatal(1, "internal: log_json format %s", fmt);
    fprintf(t->metrics, "{\"wall\":%.1f,", t->elapsed_before + now_seconds() - t->t_start);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->metrics, fmt + 1, ap);
    va_end(ap);
    fputc('\n', t->metrics);
    fflush(t->metrics);
}

static void log_progress(Trainer *t, float lr) {
    if (t->log_steps == 0) return;
    double n = (double)t->log_steps;
    double dt = now_seconds() - t->t_log;
    double ips = dt > 0 ? t->log_sum[F_IMAGES] / dt : 0;
    double loss = t->log_sum[F_LOSS] / n, dist = t->log_sum[F_DIST] / n,
           ctc = t->log_sum[F_CTC] / n;
    long epoch, in_epoch;
    loader_tell(t->train, &epoch, &in_epoch);
    char eta[64] = "";
    if (t->cfg->max_steps > 0 && ips > 0) {
        double left = (double)(t->cfg->max_steps - t->step) * t->cfg->batch_size * dist_world() / ips;
        snprintf(eta, sizeof eta, " eta %02d:%02d:%02d", (int)(left / 3600),
                 (int)fmod(left / 60, 60), (int)fmod(left, 60));
    }
    double lab = t->log_sum[F_LABELED], unl = t->log_sum[F_UNLABELED];
    if (dist_rank() == 0) {
        char line[512], mix[64] = "";
        if (t->unlabeled_total > 0) /* the samples the logged steps had, all ranks */
            snprintf(mix, sizeof mix, " (%.0f lab + %.0f unl)", lab, unl);
        if (t->mode == MODE_DISTILL)
            snprintf(line, sizeof line,
                     "step %7ld  epoch %3ld  loss %.4f  dist %.4f  ctc %.4f%s  lr %.2e  %.0f "
                     "img/s%s",
                     t->step, epoch, loss, dist, ctc, mix, lr, ips, eta);
        else
            snprintf(line, sizeof line, "step %7ld  epoch %3ld  loss %.4f  lr %.2e  %.0f img/s%s",
                     t->step, epoch, loss, lr, ips, eta);
        if (t->tty)
            printf("\r\033[K%s", line);
        else
            printf("%s\n", line);
        fflush(stdout);
    }
    if (t->mode == MODE_DISTILL)
        log_json(t,
                 "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.6g,\"distance\":%.6g,\"ctc\":%.6g,"
                 "\"lr\":%.6g,\"img_per_s\":%.1f,\"labeled\":%.0f,\"unlabeled\":%.0f}",
                 t->step, epoch, loss, dist, ctc, lr, ips, lab, unl);
    else
        log_json(t,
                 "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.6g,\"distance\":%.6g,\"ctc\":%.6g,"
                 "\"lr\":%.6g,\"img_per_s\":%.1f}",
                 t->step, epoch, loss, dist, ctc, lr, ips);
    memset(t->log_sum, 0, sizeof t->log_sum);
    t->log_steps = 0;
    t->t_log = now_seconds();
}

/* Redraw the progress line in place only on a real terminal. mpirun gives
 * its ranks a pseudo-terminal even when its own output goes to a batch log,
 * so under a launcher we print plain lines unless OCRKD_PROGRESS=redraw. */
static int progress_redraws(void) {
    const char *env = getenv("OCRKD_PROGRESS");
    if (env) return strcmp(env, "redraw") == 0;
    int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("SLURM_STEP_ID");
    return !launched && isatty(STDOUT_FILENO);
}

static void end_progress_line(const Trainer *t) {
    if (t->tty && dist_rank() == 0) printf("\n");
}

/* ---- evaluation ---- */
/* The teacher on the validation set, once at the start of a distill run:
 * logged as {"model":"teacher",...}; later val lines carry the gap to it. */
static void evaluate_teacher(Trainer *t) {
    t->teacher_acc = -1;
    if (!t->val || t->mode != MODE_DISTILL || t->opt->bench_steps) return;
    Err err = {0};
    fail_if(loader_seek(t->val, 0, 0, &err), &err);
    EvalCounts c = {0};
    fail_if(evaluate_pass(t->teacher, t->val, t->cfg->eval_case_insensitive, &c, &err), &err);
    dist_allreduce_sum_f64(c.v, EVAL_COUNT);
    EvalResult r = eval_result(&c);
    t->teacher_acc = r.word_acc;
    printf0("eval     teacher  val word_acc %.4f  cer %.4f  1-ned %.4f  (%.0f images)\n", r.word_acc,
            r.cer, r.ned, r.n);
    log_json(t,
             "{\"step\":%ld,\"split\":\"val\",\"model\":\"teacher\",\"word_acc\":%.6g,"
             "\"cer\":%.6g,\"ned\":%.6g}",
             t->step, r.word_acc, r.cer, r.ned);
}

static void evaluate_val(Trainer *t) {
    if (!t->val) return;
    Err err = {0};
    average_bn_buffers(t->student);
    fail_if(loader_seek(t->val, 0, 0, &err), &err);
    EvalCounts c = {0};
    fail_if(evaluate_pass(t->student, t->val, t->cfg->eval_case_insensitive, &c, &err), &err);
    dist_allreduce_sum_f64(c.v, EVAL_COUNT);
    EvalResult r = eval_result(&c);
    end_progress_line(t);
    printf0("eval     step %ld  val word_acc %.4f  cer %.4f  1-ned %.4f  (%.0f images)\n", t->step,
            r.word_acc, r.cer, r.ned, r.n);
    if (t->teacher_acc >= 0) {
        printf0("eval     step %ld  student - teacher word_acc %+.4f\n", t->step,
                r.word_acc - t->teacher_acc);
        log_json(t,
                 "{\"step\":%ld,\"split\":\"val\",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g,"
                 "\"gap_to_teacher\":%.6g}",
                 t->step, r.word_acc, r.cer, r.ned, r.word_acc - t->teacher_acc);
    } else {
        log_json(t, "{\"step\":%ld,\"split\":\"val\",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g}",
                 t->step, r.word_acc, r.cer, r.ned);
    }
    int better = r.word_acc > t->best_acc || (r.word_acc == t->best_acc && r.cer < t->best_cer);
    if (better) {
        t->best_acc = r.word_acc;
        t->best_cer = r.cer;
        if (dist_rank() == 0 && !t->opt->bench_steps) {
            char path[4200];
            snprintf(path, sizeof path, "%s/best.h5", t->cfg->run_dir);
            write_checkpoint(t, path);
        }
    }
}

/* ---- one step ---- */
/* Fault injection for tests: OCRKD_FAULT_NAN=RANK:FROM:COUNT poisons the
 * gradient of that rank for steps FROM .. FROM+COUNT-1 (1-based), as a
 * numerical blow-up would. */
static int fault_nan_now(long step) {
    static int parsed, rank = -1;
    static long from, count;
    if (!parsed) {
        parsed = 1;
        const char *env = getenv("OCRKD_FAULT_NAN");
        if (env && sscanf(env, "%d:%ld:%ld", &rank, &from, &count) != 3) rank = -1;
    }
    return rank == dist_rank() && step >= from && step < from + count;
}

/* Forward and backward on this rank's batch; fills flags[F_LOSS..F_IMAGES]. */
static void compute_gradients(Trainer *t, double *flags) {
    Err err = {0};
    const Batch *b;
    double t0 = now_seconds();
    fail_if(loader_next(t->train, &b, &err), &err);
    double t1 = now_seconds();
    TeacherView tv = {0};
    if (t->mode == MODE_DISTILL) tv = teacher_outputs(t, b);
    double t2 = now_seconds();
    LossTerms r = student_gradients(t->student, t->mode == MODE_DISTILL ? &tv : NULL, b,
                                    &t->loss_conf, &t->scratch);
    double t3 = now_seconds();
    t->tm[TM_DATA] += t1 - t0;
    t->tm[TM_TEACHER] += t2 - t1;
    t->tm[TM_STUDENT] += t3 - t2;
    if (fault_nan_now(t->step + 1)) t->student->grads[0] = NAN;
    int bad = !isfinite(r.loss) || !isfinite(grad_norm(t->student->grads, t->student->n_trainable));
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
    double f[F_COUNT] = {0};
    compute_gradients(t, f);
    f[F_SIGNAL] = g_signal != 0;
    if (dist_rank() == 0) {
        double now = now_seconds();
        f[F_TIME_CKPT] = c->ckpt_every_minutes > 0 && now - t->t_last_ckpt >= 60 * c->ckpt_every_minutes;
        f[F_TIME_STOP] = c->max_minutes > 0 && t->elapsed_before + now - t->t_start >= 60 * c->max_minutes;
    }
    if (isfinite(f[F_LOSS]) == 0) f[F_LOSS] = f[F_DIST] = f[F_CTC] = 0; /* keep sums finite */
    dist_allreduce_sum_f64(f, F_COUNT);
    int P = dist_world();
    float lr = lr_at_step(&c->schedule, c->optim.lr, t->step);
    if (f[F_BAD] > 0) {
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
        dist_allreduce_mean_f32(s->grads, s->n_trainable);
        double t1 = now_seconds();
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
    int converged = f[F_BAD] == 0 && converge_add(&t->conv, f[F_LOSS] / P);
    if (c->log_every_steps > 0 && t->step % c->log_every_steps == 0) log_progress(t, lr);
    if (t->opt->bench_steps) {
        if (t->step == BENCH_WARMUP) { /* first steps touch fresh memory: not timed */
            memset(t->tm, 0, sizeof t->tm);
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

/* `ocrkd bench`: throughput and the time split, averaged over ranks. */
static void print_bench(Trainer *t, double secs) {
    double v[TM_COUNT + 1];
    memcpy(v, t->tm, sizeof t->tm);
    v[TM_COUNT] = secs;
    dist_allreduce_sum_f64(v, TM_COUNT + 1);
    double total = v[TM_COUNT] / dist_world();
    long steps = t->step - BENCH_WARMUP;
    double images = (double)steps * t->cfg->batch_size * dist_world();
    printf0("bench    %s: %ld steps, %d ranks x batch %d: %.1f images/s (%.1f ms/step)\n",
            mode_name(t->mode), steps, dist_world(), t->cfg->batch_size, images / total,
            1e3 * total / steps);
    for (int k = 0; k < TM_COUNT; k++) {
        if (k == TM_TEACHER && t->mode != MODE_DISTILL) continue;
        double sec = v[k] / dist_world();
        printf0("bench      %-22s %8.2f ms/step  %5.1f%%\n", tm_name[k], 1e3 * sec / steps,
                100 * sec / total);
    }
    double teacher = v[TM_TEACHER] / dist_world();
    if (t->mode == MODE_DISTILL && teacher > 0)
        printf0("bench    teacher forward alone: %.1f images/s\n", images / teacher);
    double student = total - teacher;
    printf0("bench    student training step alone: %.1f images/s\n", images / student);
}

static void print_start(const Trainer *t) {
    const Crnn *s = t->student;
    char desc[256];
    arch_describe(&s->arch, desc, sizeof desc);
    printf0("model    %s\n", desc);
    char blas[256];
    blas_core_describe(blas, sizeof blas);
    printf0("blas     %s\n", blas);
    printf0("params   extractor %zu, encoder %zu, classifier %zu; trainable %zu (%s)\n",
            s->count[PART_EXTRACTOR], s->count[PART_ENCODER], s->count[PART_CLASSIFIER],
            s->n_trainable,
            s->trainable == PART_ALL ? "all"
            : s->trainable == PART_EXTRACTOR ? "extractor"
                                             : "extractor, classifier");
    printf0("data     %ld samples per rank, %d ranks, batch %d per rank (global %d), %ld steps "
            "per epoch, alphabet of %d\n",
            loader_shard_size(t->train), dist_world(), t->cfg->batch_size,
            t->cfg->batch_size * dist_world(), loader_steps_per_epoch(t->train), t->alpha.n);
    if (t->cfg->train_limit > 0)
        printf0("data     data.train_limit: only the first %ld samples of each training file\n",
                t->cfg->train_limit);
    if (t->unlabeled_total > 0)
        printf0("data     %.0f unlabeled samples (all ranks): distance terms alone for them, CTC "
                "averaged over each batch's labeled samples\n",
                t->unlabeled_total);
}

/* Every file the job reads must hold images of the model's input height:
 * SPEC lets a reader resize or refuse, and ocrkd refuses (doc/data.md).
 * Rank 0 reads the metadata before anything is sized from the files; the
 * other ranks wait for its verdict. */
static void check_data_heights(const Config *c) {
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

int trainer_run(TrainMode mode, Config *cfg, const TrainOptions *opt) {
    Trainer tr, *t = &tr;
    memset(t, 0, sizeof *t);
    t->mode = mode;
    t->cfg = cfg;
    t->opt = opt;
    t->best_cer = INFINITY;
    t->best_acc = -1;
    h5_quiet();
    check_data_heights(cfg);
    char rbuf[4200];
    const char *resume = NULL;
    if (!opt->bench_steps) {
        mkdir_p(cfg->run_dir);
        resume = prepare_run_dir(t, rbuf, sizeof rbuf);
        if (dist_rank() == 0) /* restore may adopt the resumed run's id instead */
            ckpt_new_run_id(t->run_id, sizeof t->run_id);
        fault_startup_sleep();
    }
    if (stopped_in_startup(t, resume, "checking run.dir")) return EXIT_PREEMPTED;

    /* the teacher first: it fixes the alphabet */
    int width = 0;
    if (mode == MODE_DISTILL) {
        /* the data width is needed to size the teacher: read it from the file */
        DatasetMeta dm;
        Err err = {0};
        fail_if(dataset_read_meta(cfg->train[0], &dm, &err), &err);
        width = dm.width;
        dataset_meta_free(&dm);
        setup_teacher(t, width);
        if (stopped_in_startup(t, resume, "loading the teacher")) return EXIT_PREEMPTED;
    }
    open_loaders(t);
    width = loader_width(t->train);

    Err err = {0};
    ModelArch arch;
    fail_if(arch_from_config(cfg, t->alpha.n + 1, &arch, &err), &err);
    t->student = crnn_create(&arch, cfg->batch_size, width, 1);
    crnn_init_params(t->student, (uint64_t)cfg->seed);
    if (cfg->init && cfg->init[0]) load_and_bcast(t->student, cfg->init, PART_ALL, 0);
    int parts = PART_ALL;
    if (mode == MODE_DISTILL) {
        if (t->teacher->arch.num_classes != arch.num_classes)
            fatal(EXIT_USAGE, "student and teacher alphabets differ");
        int copy = PART_ENCODER | PART_CLASSIFIER;
        fail_if(crnn_copy_part(t->student, t->teacher, copy, &err), &err);
        check_size_band(t);
        parts = PART_EXTRACTOR | (cfg->train_classifier ? PART_CLASSIFIER : 0);
    }
    if (crnn_set_trainable(t->student, parts) != 0) fatal(1, "internal: trainable set %d", parts);
    dist_bcast_f32(t->student->params, t->student->nparams, 0);
    optim_init(&t->optim, &cfg->optim, t->student->n_trainable);

    loss_scratch_init(&t->scratch, t->student, loader_max_label_len(t->train));
    t->loss_conf.temperature = cfg->temperature;
    t->loss_conf.ctc_weight = mode == MODE_DISTILL ? cfg->ctc_weight : 1.0f;
    if (mode == MODE_DISTILL) {
        memcpy(t->loss_conf.dist_weight, cfg->dist_weight, sizeof cfg->dist_weight);
        memcpy(t->loss_conf.feat_weight, cfg->feat_weight, sizeof cfg->feat_weight);
        t->loss_conf.logit_kl = cfg->logit_kl;
    }
    if (stopped_in_startup(t, resume, "building the model")) return EXIT_PREEMPTED;
    setup_cache(t);
    converge_init(&t->conv, cfg->conv_window, cfg->conv_rel_tol, cfg->conv_patience);

    if (resume) restore(t, resume);
    if (stopped_in_startup(t, resume, "restoring the checkpoint")) return EXIT_PREEMPTED;
    check_agreement(t);
    print_start(t);

    if (dist_rank() == 0 && !opt->bench_steps) {
        char path[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run_dir);
        t->metrics = fopen(path, resume ? "a" : "w");
        if (!t->metrics) fatal(EXIT_USAGE, "cannot write %s: %s", path, strerror(errno));
    }
    t->tty = progress_redraws();
    t->t_start = t->t_log = t->t_last_ckpt = now_seconds();
    evaluate_teacher(t);
    if (stopped_in_startup(t, resume, "evaluating the teacher")) return EXIT_PREEMPTED;

    int code = EXIT_OK;
    const char *why = NULL;
    if (cfg->max_steps > 0 && t->step >= cfg->max_steps) why = "reached stop.max_steps";
    while (!why) why = train_step(t, &code);
    end_progress_line(t);
    double secs = now_seconds() - t->t_start;
    printf0("stop     %s at step %ld (%.1f s this run%s)\n", why, t->step, secs,
            t->nonfinite_total ? ", some non-finite steps skipped" : "");
    if (opt->bench_steps) {
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
    return code;
}
