/* config_yaml.c - the effective config written back as YAML (config_to_yaml):
 * what `ocrkd train`/`distill` store in run.dir/config.yaml and in every
 * checkpoint, so that a run can be repeated and a resume checked. Every key
 * is written, defaults included, in the layout of SPEC "Config". Not for
 * reading YAML (config.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/config.h"
#include "config_internal.h"

/* A YAML double-quoted string: escapes quotes, backslashes and control bytes;
 * UTF-8 passes through. */
static void put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void put_key_string(FILE *f, const char *indent_key, const char *s) {
    fprintf(f, "%s: ", indent_key);
    put_string(f, s);
    fputc('\n', f);
}

static const char *bool_name(int v) {
    return v ? "true" : "false";
}

/* The shortest "%g" text that reads back (strtof) to exactly v: 0.1, not 0.100000001. */
static const char *fmt_float(float v, char *buf, size_t cap) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, cap, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    return buf;
}

static const char *fmt_double(double v, char *buf, size_t cap) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

static void write_run_data(FILE *f, const Config *c) {
    fprintf(f, "run:\n");
    put_key_string(f, "  dir", c->run_dir);
    fprintf(f, "  seed: %ld\n  threads: %d\n", c->seed, c->threads);
    fprintf(f, "data:\n  train: [");
    for (int i = 0; i < c->n_train; i++) {
        if (i) fprintf(f, ", ");
        put_string(f, c->train[i]);
    }
    fprintf(f, "]\n");
    put_key_string(f, "  val", c->val);
    put_key_string(f, "  test", c->test);
    fprintf(f, "  batch_size: %d\n  shuffle: %s\n  augment: %s\n  skip_bad_labels: %s\n",
            c->batch_size, bool_name(c->shuffle), bool_name(c->augment),
            bool_name(c->skip_bad_labels));
    if (c->train_limit) fprintf(f, "  train_limit: %ld\n", c->train_limit);
}

static void write_model(FILE *f, const Config *c) {
    fprintf(f, "model:\n  extractor:\n");
    if (c->depth)
        fprintf(f, "    depth: %d\n", c->depth);
    else
        fprintf(f, "    blocks: [%d, %d, %d, %d]\n    block: %s\n", c->blocks[0], c->blocks[1],
                c->blocks[2], c->blocks[3], BLOCK_NAMES[c->bottleneck ? 1 : 0]);
    if (c->widths[0])
        fprintf(f, "    widths: [%d, %d, %d, %d]\n", c->widths[0], c->widths[1], c->widths[2],
                c->widths[3]);
    else
        fprintf(f, "    width: %d\n", c->width);
    fprintf(f, "  feature_dim: %d\n", c->feature_dim);
    fprintf(f, "  encoder: {layers: %d, hidden: %d}\n", c->enc_layers, c->enc_hidden);
    put_key_string(f, "  alphabet", c->alphabet);
    put_key_string(f, "  init", c->init);
    fprintf(f, "teacher:\n");
    put_key_string(f, "  checkpoint", c->teacher_checkpoint);
}

static void write_augment(FILE *f, const Config *c) {
    const AugmentConf *g = &c->aug;
    const float v[] = {g->prob,   g->stretch, g->perspective, g->rotate,     g->crop,  g->blur,
                       g->lowres, g->noise,   g->contrast,    g->brightness, g->invert};
    const char *names[] = {"prob",   "stretch", "perspective", "rotate",     "crop",  "blur",
                           "lowres", "noise",   "contrast",    "brightness", "invert"};
    char a[32];
    fprintf(f, "augment:\n");
    for (size_t i = 0; i < ARRAY_LEN(v); i++)
        fprintf(f, "  %s: %s\n", names[i], fmt_float(v[i], a, sizeof a));
}

/* "{l2: 1, cosine: 0.5}" of the non-zero weights. */
static void write_distance_map(FILE *f, const float *w) {
    char a[32];
    int first = 1;
    fprintf(f, "{");
    for (int d = 0; d < DIST_COUNT; d++) {
        if (w[d] == 0) continue;
        fprintf(f, "%s%s: %s", first ? "" : ", ", distance_name((DistKind)d),
                fmt_float(w[d], a, sizeof a));
        first = 0;
    }
    fprintf(f, "}\n");
}

static void write_distill(FILE *f, const Config *c) {
    char a[32], b[32];
    fprintf(f, "distill:\n  train: [extractor%s%s]\n  distance: ",
            c->train_classifier ? ", classifier" : "", c->train_encoder ? ", encoder" : "");
    write_distance_map(f, c->dist_weight);
    fprintf(f, "  feature_distance: ");
    write_distance_map(f, c->feat_weight);
    fprintf(f, "  logit_kl: %s\n", fmt_float(c->logit_kl, a, sizeof a));
    fprintf(f, "  temperature: %s\n  ctc_weight: %s\n", fmt_float(c->temperature, a, sizeof a),
            fmt_float(c->ctc_weight, b, sizeof b));
    fprintf(f, "  teacher_cache: %s\n  student_init: %s\n  allow_any_size: %s\n",
            CACHE_NAMES[c->teacher_cache], STUDENT_INIT_NAMES[c->student_init],
            bool_name(c->allow_any_size));
}

static void write_optim(FILE *f, const Config *c) {
    const OptimConf *o = &c->optim;
    const Schedule *s = &c->schedule;
    char a[32], b[32], d[32];
    fprintf(f, "optim:\n  name: %s\n  lr: %s\n  weight_decay: %s\n  grad_clip: %s\n",
            OPT_NAMES[o->kind], fmt_float(o->lr, a, sizeof a),
            fmt_float(o->weight_decay, b, sizeof b), fmt_float(c->grad_clip, d, sizeof d));
    fprintf(f, "  momentum: %s\n", fmt_float(o->momentum, a, sizeof a));
    fprintf(f, "  beta1: %s\n  beta2: %s\n", fmt_float(o->beta1, a, sizeof a),
            fmt_float(o->beta2, b, sizeof b));
    fprintf(f, "  eps: %s\n", fmt_float(o->eps, a, sizeof a));
    fprintf(
        f,
        "  schedule: {type: %s, warmup_steps: %ld, total_steps: %ld, step_size: %ld, gamma: %s, "
        "min_lr: %s, over: %s}\n",
        SCHED_NAMES[s->kind], s->warmup_steps, c->schedule_steps, s->step_size,
        fmt_float(s->gamma, a, sizeof a), fmt_float(s->min_lr, b, sizeof b),
        SCHED_OVER_NAMES[s->over_time != 0]);
}

static void write_stop_ckpt(FILE *f, const Config *c) {
    char a[40];
    fprintf(f, "stop:\n  max_steps: %ld\n  max_epochs: %ld\n  max_minutes: %s\n", c->max_steps,
            c->max_epochs, fmt_double(c->max_minutes, a, sizeof a));
    fprintf(f, "  converge: {window: %d, rel_tol: %s, patience: %d}\n", c->converge_window,
            fmt_double(c->converge_rel_tol, a, sizeof a), c->converge_patience);
    fprintf(f, "checkpoint: {every_steps: %ld, every_minutes: %s, keep: %d}\n", c->ckpt_every_steps,
            fmt_double(c->ckpt_every_minutes, a, sizeof a), c->ckpt_keep);
    fprintf(f, "eval: {every_steps: %ld, case_insensitive: %s}\nlog: {every_steps: %ld}\n",
            c->eval_every_steps, bool_name(c->eval_case_insensitive), c->log_every_steps);
}

char *config_to_yaml(const Config *c) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) fatal(1, "out of memory writing the config as YAML");
    write_run_data(f, c);
    write_augment(f, c);
    write_model(f, c);
    write_distill(f, c);
    write_optim(f, c);
    write_stop_ckpt(f, c);
    if (fclose(f) != 0) fatal(1, "out of memory writing the config as YAML");
    return text;
}
