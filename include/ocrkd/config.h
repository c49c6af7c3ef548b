/* config.h - the run configuration (SPEC "Config"): YAML read with libyaml,
 * defaults, type and range checks, --set overrides, and the effective config
 * written back as YAML (printed at start and stored in every checkpoint).
 *
 * Errors name FILE:LINE:COLUMN and return EXIT_USAGE through Err. Not for
 * deciding what a value means for training (trainer.c does that). */
#ifndef OCRKD_CONFIG_H
#define OCRKD_CONFIG_H

#include "ocrkd/augment.h"
#include "ocrkd/common.h"
#include "ocrkd/model.h"
#include "ocrkd/nn.h"
#include "ocrkd/optim.h"

enum { TEACHER_CACHE_AUTO = 0, TEACHER_CACHE_ON, TEACHER_CACHE_OFF };
enum { STUDENT_INIT_RANDOM = 0, STUDENT_INIT_TEACHER };

typedef struct {
    /* run */
    char *run_dir; /* default "runs/default" */
    long seed;     /* default 1234 */
    int threads;   /* run.threads: GEMM threads per rank; 0 = auto (env OCRKD_THREADS, else cores / ranks) */

    /* data */
    char **train;  /* one file or a list of shard files */
    int n_train;
    char *val;         /* "" = none */
    char *test;        /* "" = none; optional, used by the demo */
    int batch_size;    /* per rank, default 64, >= 1 */
    int shuffle;       /* default 1 */
    int augment;       /* default 0 */
    AugmentConf aug;   /* section `augment`: the ranges used when augment is on */
    int skip_bad_labels; /* data.skip_bad_labels, default 0 */
    long train_limit;  /* data.train_limit: only the first N samples of each training file; 0 = all */

    /* model */
    int depth;         /* 18|34|50|101|152, or 0 when blocks is given */
    int blocks[4];     /* derived from depth when depth != 0 */
    int bottleneck;    /* block: basic (0) | bottleneck (1); derived from depth */
    int width;         /* base width w, default 64 */
    int widths[4];     /* model.extractor.widths: planes per stage; all 0 = width x 1,2,4,8 */
    int feature_dim;   /* default 256 */
    int enc_layers;    /* default 2 */
    int enc_hidden;    /* default 256 */
    char *alphabet;    /* "" = the dataset's */
    char *init;        /* "" = none */

    /* teacher (distill only) */
    char *teacher_checkpoint; /* "" when absent */

    /* distill */
    int train_extractor, train_classifier, train_encoder; /* distill.train; default [extractor] */
    float dist_weight[DIST_COUNT];         /* distill.distance map; default {l2: 1.0} */
    float feat_weight[DIST_COUNT];         /* distill.feature_distance: the same distances
                                              between the extractors' outputs; default {} */
    float logit_kl;                        /* distill.logit_kl: weight of tau^2 KL between the
                                              CTC posteriors; default 0 */
    float temperature;                     /* default 1.0, > 0 */
    float ctc_weight;                      /* default 0.1, >= 0 */
    int teacher_cache;                     /* TEACHER_CACHE_*, default auto */
    int student_init;                      /* distill.student_init: STUDENT_INIT_*; default
                                              random (the method); teacher = the extractor
                                              selected from the teacher's (doc/distill.md) */
    int allow_any_size;                    /* default 0 */

    /* optim */
    OptimConf optim;   /* name adam, lr 1e-3, wd 0, momentum 0.9, betas 0.9/0.999, eps 1e-8 */
    float grad_clip;   /* default 5.0; 0 = off */
    Schedule schedule; /* type cosine, warmup 200, step_size 1000, gamma 0.1, min_lr 0;
                          total_steps = schedule_steps, or stop.max_steps when 0 */
    long schedule_steps; /* optim.schedule.total_steps, default 0 = stop.max_steps: set it
                            to split one schedule over several jobs with smaller max_steps */

    /* stop */
    long max_steps;     /* default 100000; 0 = no limit */
    long max_epochs;    /* default 0 = no limit */
    double max_minutes; /* default 0 = no limit */
    int converge_window;    /* stop.converge.window, default 200; 0 disables convergence */
    double converge_rel_tol; /* default 1e-3 */
    int converge_patience;  /* default 5 */

    /* checkpoint */
    long ckpt_every_steps;    /* default 500 */
    double ckpt_every_minutes; /* default 15 */
    int ckpt_keep;            /* default 3, >= 1 */

    long eval_every_steps;     /* default 1000; 0 = only at the end */
    int eval_case_insensitive; /* eval.case_insensitive, default 0: validation (and so best.h5)
                                  scores case-folded text, as `ocrkd eval --case-insensitive` */
    long log_every_steps;      /* default 20 */
} Config;

/* Fills every field with its default. */
void config_defaults(Config *c);
/* Reads path into c (which config_load first sets to defaults).
 * Errors: missing/unreadable file, YAML syntax, unknown key, wrong type,
 * out-of-range value; message "FILE:LINE:COL: ..." and code EXIT_USAGE. */
int config_load(Config *c, const char *path, Err *err);
/* Same, from YAML text (e.g. the config stored in a checkpoint); `name` is
 * used in messages in place of a file name. */
int config_load_string(Config *c, const char *yaml, const char *name, Err *err);
/* Applies one "--set a.b.c=VALUE" override (VALUE is parsed as YAML, so
 * lists and maps work: data.train=[a.h5,b.h5]). Same checks as the file. */
int config_set(Config *c, const char *assignment, Err *err);
/* Cross-field checks after all overrides (e.g. distill needs
 * teacher.checkpoint): `command` is "train" or "distill". */
int config_validate(const Config *c, const char *command, Err *err);
/* The effective configuration as YAML text (malloc'd); loading it with
 * config_load_string gives back an identical Config. */
char *config_to_yaml(const Config *c);
void config_free(Config *c);

/* The model architecture of c's model section (io/config_arch.c);
 * num_classes from the alphabet. */
int arch_from_config(const Config *c, int num_classes, ModelArch *a, Err *err);

#endif
