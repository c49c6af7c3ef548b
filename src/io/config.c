/* config.c - the run configuration (SPEC "Config"): defaults, the YAML file
 * read with libyaml's document API, "--set key=value" overrides, cross-field
 * checks. The effective config written back as YAML is config_yaml.c's.
 *
 * Every key is one row of the KEYS table below (dotted path, type, range);
 * the reader walks the YAML tree and looks each key up there, so adding a
 * key is adding a row. Errors name FILE:LINE:COL (1-based) of the offending
 * key or value and return EXIT_USAGE.
 *
 * Not for interpreting values (what a schedule does, how shards are split):
 * that belongs to the modules that use them. */
#include "ocrkd/config.h"
#include "config_internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Limits of what is read (doc/config.md): a config file's size and the
 * nesting of any YAML text (file, --set value, a checkpoint's config). */
#define CONFIG_MAX_BYTES (1 << 20)
#define CONFIG_MAX_DEPTH 64

/* ---- parsing context and error reporting ---- */

typedef struct {
    yaml_document_t *doc;
    const char *name;    /* file name (or the name given to config_load_string) */
    const char *set_key; /* non-NULL for --set: messages say "--set KEY" */
    Err *err;
} Ctx;

/* Sets err to "FILE:LINE:COL: MSG" (or "--set KEY: MSG"); returns EXIT_USAGE. */
static int fail_at(Ctx *x, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(Ctx *x, yaml_mark_t m, const char *fmt, ...) {
    char msg[OCRKD_ERR_LEN - 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (x->set_key) return err_set(x->err, EXIT_USAGE, "--set %s: %s", x->set_key, msg);
    return err_set(x->err, EXIT_USAGE, "%s:%zu:%zu: %s", x->name, m.line + 1, m.column + 1, msg);
}

static yaml_node_t *node_at(Ctx *x, int index) {
    return yaml_document_get_node(x->doc, index);
}

static const char *scalar(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int is_plain(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain empty, "~" or "null" scalar: YAML's null. */
static int is_null(const yaml_node_t *n) {
    const char *s = scalar(n);
    return s && is_plain(n) &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"));
}

/* Short description of a node for "got ..." in messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap) {
    if (n->type == YAML_MAPPING_NODE) return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE) return "a list";
    const char *s = (const char *)n->data.scalar.value;
    snprintf(buf, cap, is_plain(n) ? "'%.60s'" : "the string \"%.60s\"", s ? s : "");
    return buf;
}

/* ---- scalar readers: check the type, return the value ---- */

static int read_double(Ctx *x, const char *key, yaml_node_t *n, double *out) {
    char buf[96];
    const char *s = scalar(n);
    if (s && is_plain(n) && *s) {
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (*end == 0 && errno == 0 && isfinite(v)) {
            *out = v;
            return 0;
        }
    }
    return fail_at(x, n->start_mark, "%s: expected a number, got %s", key,
                   describe(n, buf, sizeof buf));
}

/* Same for float fields: strtof so that "%.9g" output reads back bit-exact. */
static int read_float(Ctx *x, const char *key, yaml_node_t *n, float *out) {
    double d;
    if (read_double(x, key, n, &d)) return EXIT_USAGE;
    *out = strtof(scalar(n), NULL);
    if (!isfinite(*out))
        return fail_at(x, n->start_mark, "%s: %s is out of float range", key, scalar(n));
    return 0;
}

static int read_long(Ctx *x, const char *key, yaml_node_t *n, long *out) {
    char buf[96];
    const char *s = scalar(n);
    if (s && is_plain(n) && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (*end == 0 && errno == 0) {
            *out = v;
            return 0;
        }
        double d = strtod(s, &end); /* accept 1e5 and 2000.0 for integers */
        if (*end == 0 && isfinite(d) && d == floor(d) && fabs(d) < 9e15) {
            *out = (long)d;
            return 0;
        }
    }
    return fail_at(x, n->start_mark, "%s: expected an integer, got %s", key,
                   describe(n, buf, sizeof buf));
}

static int read_bool(Ctx *x, const char *key, yaml_node_t *n, int *out) {
    static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    char buf[96];
    const char *s = scalar(n);
    for (size_t i = 0; s && is_plain(n) && i < ARRAY_LEN(yes); i++) {
        if (!strcmp(s, yes[i])) return *out = 1, 0;
        if (!strcmp(s, no[i])) return *out = 0, 0;
    }
    return fail_at(x, n->start_mark, "%s: expected true or false, got %s", key,
                   describe(n, buf, sizeof buf));
}

/* Any scalar is a string (a plain number stays its text); null is "". */
static int read_string(Ctx *x, const char *key, yaml_node_t *n, char **out) {
    char buf[96];
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(x, n->start_mark, "%s: expected a string, got %s", key,
                       describe(n, buf, sizeof buf));
    free(*out);
    *out = xstrdup(is_null(n) ? "" : scalar(n));
    return 0;
}

/* Index of the scalar in names[] (NULL-terminated), listing them on error. */
static int read_enum(Ctx *x, const char *key, yaml_node_t *n, const char *const *names, int *out) {
    char buf[96], list[200] = "";
    const char *s = scalar(n);
    for (int i = 0; s && names[i]; i++)
        if (!strcmp(s, names[i])) return *out = i, 0;
    for (int i = 0; names[i]; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    return fail_at(x, n->start_mark, "%s: expected one of %s, got %s", key, list,
                   describe(n, buf, sizeof buf));
}

/* ---- the key table ---- */

typedef enum { T_STR, T_BOOL, T_INT, T_LONG, T_FLOAT, T_DOUBLE, T_SPECIAL } KeyType;
typedef int (*ApplyFn)(Config *c, Ctx *x, const char *key, yaml_node_t *n);

typedef struct {
    const char *path;
    KeyType type;
    size_t off;           /* offsetof(Config, field) for non-special keys */
    double lo, hi;        /* allowed range */
    int lo_open, hi_open; /* range ends excluded */
    ApplyFn apply;        /* T_SPECIAL */
} Key;

const char *const OPT_NAMES[] = {"sgd", "adam", "adamw", NULL};
const char *const SCHED_NAMES[] = {"constant", "cosine", "step", NULL};
const char *const SCHED_OVER_NAMES[] = {"steps", "time", NULL};
const char *const CACHE_NAMES[] = {"auto", "on", "off", NULL};
const char *const STUDENT_INIT_NAMES[] = {"random", "teacher", NULL};
const char *const BLOCK_NAMES[] = {"basic", "bottleneck", NULL};
static const char *const PART_NAMES[] = {"extractor", "classifier", "encoder", NULL};

static void free_train(Config *c) {
    for (int i = 0; i < c->n_train; i++)
        free(c->train[i]);
    free(c->train);
    c->train = NULL;
    c->n_train = 0;
}

/* data.train: one file name or a list of shard files. */
static int apply_train(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    char buf[96];
    if (n->type == YAML_SCALAR_NODE) {
        free_train(c);
        if (is_null(n)) return 0;
        c->train = xmalloc(sizeof(char *));
        c->train[c->n_train++] = xstrdup(scalar(n));
        return 0;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(x, n->start_mark, "%s: expected a file name or a list of them, got %s", key,
                       describe(n, buf, sizeof buf));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    for (int i = 0; i < count; i++) {
        yaml_node_t *item = node_at(x, n->data.sequence.items.start[i]);
        if (item->type != YAML_SCALAR_NODE || is_null(item))
            return fail_at(x, item->start_mark, "%s: expected a file name, got %s", key,
                           describe(item, buf, sizeof buf));
    }
    free_train(c);
    c->train = xcalloc((size_t)count, sizeof(char *));
    for (int i = 0; i < count; i++)
        c->train[c->n_train++] = xstrdup(scalar(node_at(x, n->data.sequence.items.start[i])));
    return 0;
}

static int apply_depth(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    long d;
    if (read_long(x, key, n, &d)) return EXIT_USAGE;
    if (d < 0 || d > 1000 || !resnet_depth_blocks((int)d, c->blocks, &c->bottleneck))
        return fail_at(x, n->start_mark, "%s must be one of 18, 34, 50, 101, 152, got %ld", key, d);
    c->depth = (int)d;
    return 0;
}

/* model.extractor.width: w, 1..4096; clears widths (so that a --set width
 * over a config with widths means what it says). */
static int apply_width(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    long v;
    if (read_long(x, key, n, &v)) return EXIT_USAGE;
    if (v < 1 || v > 4096)
        return fail_at(x, n->start_mark, "%s must be in [1, 4096], got %ld", key, v);
    c->width = (int)v;
    memset(c->widths, 0, sizeof c->widths);
    return 0;
}

/* A list of 4 integers in [1, hi] (what: "stage widths", "block counts")
 * into out; out is untouched on error. */
static int read_stage_list(Ctx *x, const char *key, yaml_node_t *n, const char *what, long hi,
                           int out[4]) {
    char buf[96];
    int count = n->type == YAML_SEQUENCE_NODE
                    ? (int)(n->data.sequence.items.top - n->data.sequence.items.start)
                    : -1;
    if (count != 4)
        return fail_at(x, n->start_mark, "%s: expected a list of 4 %s, got %s", key, what,
                       count < 0 ? describe(n, buf, sizeof buf) : "a list of another length");
    int v4[4];
    for (int i = 0; i < 4; i++) {
        yaml_node_t *item = node_at(x, n->data.sequence.items.start[i]);
        long v;
        if (read_long(x, key, item, &v)) return EXIT_USAGE;
        if (v < 1 || v > hi)
            return fail_at(x, item->start_mark, "%s: %s must be in [1, %ld], got %ld", key, what,
                           hi, v);
        v4[i] = (int)v;
    }
    memcpy(out, v4, sizeof v4);
    return 0;
}

/* model.extractor.widths: [a, b, c, d] planes per stage, each 1..4096
 * (instead of width: w, 2w, 4w, 8w). */
static int apply_widths(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_stage_list(x, key, n, "stage widths", 4096, c->widths);
}

/* model.extractor.blocks: [a, b, c, d], each 1..100; makes the depth custom. */
static int apply_blocks(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    if (read_stage_list(x, key, n, "block counts", 100, c->blocks)) return EXIT_USAGE;
    c->depth = 0;
    return 0;
}

static int apply_block(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    if (read_enum(x, key, n, BLOCK_NAMES, &c->bottleneck)) return EXIT_USAGE;
    c->depth = 0;
    return 0;
}

/* distill.train: a non-empty list from {extractor, classifier, encoder}
 * that includes the extractor; the encoder only with the classifier (the
 * trainable set is a prefix of the parameters: extractor, classifier,
 * encoder). Training the encoder is beyond the method (doc/distill.md). */
static int apply_distill_train(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    char buf[96];
    int parts[3] = {0, 0, 0}, which;
    if (n->type == YAML_SCALAR_NODE) {
        if (read_enum(x, key, n, PART_NAMES, &which)) return EXIT_USAGE;
        parts[which] = 1;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (read_enum(x, key, node_at(x, *it), PART_NAMES, &which)) return EXIT_USAGE;
            parts[which] = 1;
        }
    } else {
        return fail_at(x, n->start_mark, "%s: expected a list, got %s", key,
                       describe(n, buf, sizeof buf));
    }
    if (!parts[0])
        return fail_at(x, n->start_mark,
                       "%s must include extractor ([extractor], [extractor, classifier] or "
                       "[extractor, classifier, encoder])",
                       key);
    if (parts[2] && !parts[1])
        return fail_at(x, n->start_mark,
                       "%s: the encoder trains only with the classifier ([extractor, classifier, "
                       "encoder])",
                       key);
    c->train_extractor = parts[0];
    c->train_classifier = parts[1];
    c->train_encoder = parts[2];
    return 0;
}

/* A map {l1|l2|cosine|kl: weight} into w (replaced whole); `need_one`: at
 * least one weight must be > 0. */
static int read_distance_map(Ctx *x, const char *key, yaml_node_t *n, int need_one,
                             float out[DIST_COUNT]) {
    char buf[96];
    if (is_null(n) && !need_one) {
        memset(out, 0, sizeof(float) * DIST_COUNT);
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE)
        return fail_at(x, n->start_mark, "%s: expected a mapping such as {l2: 1.0}, got %s", key,
                       describe(n, buf, sizeof buf));
    float w[DIST_COUNT] = {0};
    int any = 0;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(x, p->key), *v = node_at(x, p->value);
        int d = scalar(k) ? distance_from_name(scalar(k)) : -1;
        if (d < 0)
            return fail_at(x, k->start_mark,
                           "unknown distance %s in %s (known: l1, l2, cosine, kl)",
                           describe(k, buf, sizeof buf), key);
        if (read_float(x, key, v, &w[d])) return EXIT_USAGE;
        if (!(w[d] >= 0 && w[d] <= 1e6))
            return fail_at(x, v->start_mark, "%s.%s must be in [0, 1e6], got %s", key, scalar(k),
                           scalar(v));
        any |= w[d] > 0;
    }
    if (!any && need_one)
        return fail_at(x, n->start_mark, "%s: at least one weight must be > 0", key);
    memcpy(out, w, sizeof w);
    return 0;
}

/* distill.distance: {l1|l2|cosine|kl: weight}; replaces all weights. */
static int apply_distance(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_distance_map(x, key, n, 1, c->dist_weight);
}

/* distill.feature_distance: the same map on the extractor outputs; {} = none. */
static int apply_feature_distance(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_distance_map(x, key, n, 0, c->feat_weight);
}

static int apply_teacher_cache(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_enum(x, key, n, CACHE_NAMES, &c->teacher_cache);
}

static int apply_student_init(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_enum(x, key, n, STUDENT_INIT_NAMES, &c->student_init);
}

static int apply_optim_name(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    int v;
    if (read_enum(x, key, n, OPT_NAMES, &v)) return EXIT_USAGE;
    c->optim.kind = (OptKind)v;
    return 0;
}

static int apply_sched_type(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    int v;
    if (read_enum(x, key, n, SCHED_NAMES, &v)) return EXIT_USAGE;
    c->schedule.kind = (SchedKind)v;
    return 0;
}

static int apply_sched_over(Config *c, Ctx *x, const char *key, yaml_node_t *n) {
    return read_enum(x, key, n, SCHED_OVER_NAMES, &c->schedule.over_time) ? EXIT_USAGE : 0;
}

#define F(field) offsetof(Config, field)
#define BIG 9.0e15
static const Key KEYS[] = {
    {"run.dir", T_STR, F(run_dir), 0, 0, 0, 0, NULL},
    {"run.seed", T_LONG, F(seed), 0, BIG, 0, 0, NULL},
    {"run.threads", T_INT, F(threads), 0, 1024, 0, 0, NULL},
    {"data.train", T_SPECIAL, 0, 0, 0, 0, 0, apply_train},
    {"data.val", T_STR, F(val), 0, 0, 0, 0, NULL},
    {"data.test", T_STR, F(test), 0, 0, 0, 0, NULL},
    {"data.batch_size", T_INT, F(batch_size), 1, 1 << 20, 0, 0, NULL},
    {"data.shuffle", T_BOOL, F(shuffle), 0, 0, 0, 0, NULL},
    {"data.augment", T_BOOL, F(augment), 0, 0, 0, 0, NULL},
    {"augment.prob", T_FLOAT, F(aug.prob), 0, 1, 0, 0, NULL},
    {"augment.stretch", T_FLOAT, F(aug.stretch), 0, 0.9, 0, 0, NULL},
    {"augment.perspective", T_FLOAT, F(aug.perspective), 0, 0.5, 0, 0, NULL},
    {"augment.rotate", T_FLOAT, F(aug.rotate), 0, 30, 0, 0, NULL},
    {"augment.crop", T_FLOAT, F(aug.crop), 0, 0.3, 0, 0, NULL},
    {"augment.blur", T_FLOAT, F(aug.blur), 0, 4, 0, 0, NULL},
    {"augment.lowres", T_FLOAT, F(aug.lowres), 0.1, 1, 0, 0, NULL},
    {"augment.noise", T_FLOAT, F(aug.noise), 0, 0.5, 0, 0, NULL},
    {"augment.contrast", T_FLOAT, F(aug.contrast), 0, 0.9, 0, 0, NULL},
    {"augment.brightness", T_FLOAT, F(aug.brightness), 0, 0.5, 0, 0, NULL},
    {"augment.invert", T_FLOAT, F(aug.invert), 0, 1, 0, 0, NULL},
    {"data.skip_bad_labels", T_BOOL, F(skip_bad_labels), 0, 0, 0, 0, NULL},
    {"data.train_limit", T_LONG, F(train_limit), 0, BIG, 0, 0, NULL},
    {"model.extractor.depth", T_SPECIAL, 0, 0, 0, 0, 0, apply_depth},
    {"model.extractor.blocks", T_SPECIAL, 0, 0, 0, 0, 0, apply_blocks},
    {"model.extractor.block", T_SPECIAL, 0, 0, 0, 0, 0, apply_block},
    {"model.extractor.width", T_SPECIAL, 0, 0, 0, 0, 0, apply_width},
    {"model.extractor.widths", T_SPECIAL, 0, 0, 0, 0, 0, apply_widths},
    {"model.feature_dim", T_INT, F(feature_dim), 1, 65536, 0, 0, NULL},
    {"model.encoder.layers", T_INT, F(enc_layers), 1, 16, 0, 0, NULL},
    {"model.encoder.hidden", T_INT, F(enc_hidden), 1, 65536, 0, 0, NULL},
    {"model.alphabet", T_STR, F(alphabet), 0, 0, 0, 0, NULL},
    {"model.init", T_STR, F(init), 0, 0, 0, 0, NULL},
    {"teacher.checkpoint", T_STR, F(teacher_checkpoint), 0, 0, 0, 0, NULL},
    {"distill.train", T_SPECIAL, 0, 0, 0, 0, 0, apply_distill_train},
    {"distill.distance", T_SPECIAL, 0, 0, 0, 0, 0, apply_distance},
    {"distill.feature_distance", T_SPECIAL, 0, 0, 0, 0, 0, apply_feature_distance},
    {"distill.logit_kl", T_FLOAT, F(logit_kl), 0, 1e6, 0, 0, NULL},
    {"distill.temperature", T_FLOAT, F(temperature), 0, 1e6, 1, 0, NULL},
    {"distill.ctc_weight", T_FLOAT, F(ctc_weight), 0, 1e6, 0, 0, NULL},
    {"distill.teacher_cache", T_SPECIAL, 0, 0, 0, 0, 0, apply_teacher_cache},
    {"distill.student_init", T_SPECIAL, 0, 0, 0, 0, 0, apply_student_init},
    {"distill.allow_any_size", T_BOOL, F(allow_any_size), 0, 0, 0, 0, NULL},
    {"optim.name", T_SPECIAL, 0, 0, 0, 0, 0, apply_optim_name},
    {"optim.lr", T_FLOAT, F(optim.lr), 0, 1e3, 1, 0, NULL},
    {"optim.weight_decay", T_FLOAT, F(optim.weight_decay), 0, 1e3, 0, 0, NULL},
    {"optim.grad_clip", T_FLOAT, F(grad_clip), 0, 1e9, 0, 0, NULL},
    {"optim.momentum", T_FLOAT, F(optim.momentum), 0, 1, 0, 1, NULL},
    {"optim.beta1", T_FLOAT, F(optim.beta1), 0, 1, 0, 1, NULL},
    {"optim.beta2", T_FLOAT, F(optim.beta2), 0, 1, 0, 1, NULL},
    {"optim.eps", T_FLOAT, F(optim.eps), 0, 1, 1, 0, NULL},
    {"optim.schedule.type", T_SPECIAL, 0, 0, 0, 0, 0, apply_sched_type},
    {"optim.schedule.warmup_steps", T_LONG, F(schedule.warmup_steps), 0, BIG, 0, 0, NULL},
    {"optim.schedule.step_size", T_LONG, F(schedule.step_size), 1, BIG, 0, 0, NULL},
    {"optim.schedule.gamma", T_FLOAT, F(schedule.gamma), 0, 1e3, 1, 0, NULL},
    {"optim.schedule.total_steps", T_LONG, F(schedule_steps), 0, BIG, 0, 0, NULL},
    {"optim.schedule.min_lr", T_FLOAT, F(schedule.min_lr), 0, 1e3, 0, 0, NULL},
    {"optim.schedule.over", T_SPECIAL, 0, 0, 0, 0, 0, apply_sched_over},
    {"stop.max_steps", T_LONG, F(max_steps), 0, BIG, 0, 0, NULL},
    {"stop.max_epochs", T_LONG, F(max_epochs), 0, BIG, 0, 0, NULL},
    {"stop.max_minutes", T_DOUBLE, F(max_minutes), 0, 1e9, 0, 0, NULL},
    {"stop.converge.window", T_INT, F(converge_window), 0, 1e8, 0, 0, NULL},
    {"stop.converge.rel_tol", T_DOUBLE, F(converge_rel_tol), 0, 1, 1, 0, NULL},
    {"stop.converge.patience", T_INT, F(converge_patience), 1, 1e6, 0, 0, NULL},
    {"checkpoint.every_steps", T_LONG, F(ckpt_every_steps), 0, BIG, 0, 0, NULL},
    {"checkpoint.every_minutes", T_DOUBLE, F(ckpt_every_minutes), 0, 1e9, 0, 0, NULL},
    {"checkpoint.keep", T_INT, F(ckpt_keep), 1, 1e6, 0, 0, NULL},
    {"eval.every_steps", T_LONG, F(eval_every_steps), 0, BIG, 0, 0, NULL},
    {"eval.case_insensitive", T_BOOL, F(eval_case_insensitive), 0, 0, 0, 0, NULL},
    {"log.every_steps", T_LONG, F(log_every_steps), 1, BIG, 0, 0, NULL},
};
#undef F

static const Key *find_key(const char *path) {
    for (size_t i = 0; i < ARRAY_LEN(KEYS); i++)
        if (!strcmp(KEYS[i].path, path)) return &KEYS[i];
    return NULL;
}

/* A section is a proper prefix of some key ("optim", "optim.schedule"); "" is the root. */
static int is_section(const char *prefix) {
    size_t n = strlen(prefix);
    if (n == 0) return 1;
    for (size_t i = 0; i < ARRAY_LEN(KEYS); i++)
        if (!strncmp(KEYS[i].path, prefix, n) && KEYS[i].path[n] == '.') return 1;
    return 0;
}

/* "a, b, c": the names directly under a section, for unknown-key messages. */
static void section_children(const char *prefix, char *buf, size_t cap) {
    size_t n = strlen(prefix);
    buf[0] = 0;
    for (size_t i = 0; i < ARRAY_LEN(KEYS); i++) {
        const char *p = KEYS[i].path;
        if (n && (strncmp(p, prefix, n) || p[n] != '.')) continue;
        const char *child = n ? p + n + 1 : p;
        size_t len = strcspn(child, ".");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, child);
        /* already listed? (whole-word match against ", name,") */
        char probe[70], padded[1200];
        snprintf(probe, sizeof probe, ", %s,", name);
        snprintf(padded, sizeof padded, ", %s,", buf);
        if (strstr(padded, probe)) continue;
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? ", " : "", name);
    }
}

static int check_range(Ctx *x, const Key *k, yaml_node_t *n, double v) {
    int low = k->lo_open ? v <= k->lo : v < k->lo;
    int high = k->hi_open ? v >= k->hi : v > k->hi;
    if (!low && !high) return 0;
    if (k->hi >= BIG)
        return fail_at(x, n->start_mark, "%s must be %s %.10g, got %s", k->path,
                       k->lo_open ? ">" : ">=", k->lo, scalar(n));
    return fail_at(x, n->start_mark, "%s must be in %c%.10g, %.10g%c, got %s", k->path,
                   k->lo_open ? '(' : '[', k->lo, k->hi, k->hi_open ? ')' : ']', scalar(n));
}

/* Reads one value node into the field of key k, with type and range checks. */
static int apply_key(Config *c, Ctx *x, const Key *k, yaml_node_t *n) {
    char *field = (char *)c + k->off;
    double d;
    long l;
    float f;
    switch (k->type) {
    case T_SPECIAL:
        return k->apply(c, x, k->path, n);
    case T_STR:
        return read_string(x, k->path, n, (char **)field);
    case T_BOOL:
        return read_bool(x, k->path, n, (int *)field);
    case T_INT:
    case T_LONG:
        if (read_long(x, k->path, n, &l) || check_range(x, k, n, (double)l)) return EXIT_USAGE;
        if (k->type == T_INT)
            *(int *)field = (int)l;
        else
            *(long *)field = l;
        return 0;
    case T_FLOAT:
        if (read_float(x, k->path, n, &f) || check_range(x, k, n, f)) return EXIT_USAGE;
        *(float *)field = f;
        return 0;
    case T_DOUBLE:
        if (read_double(x, k->path, n, &d) || check_range(x, k, n, d)) return EXIT_USAGE;
        *(double *)field = d;
        return 0;
    }
    return 0;
}

/* model.extractor takes {depth, width} or {blocks, block, width}, not both;
 * and width or widths, not both. */
static int check_extractor_keys(Ctx *x, yaml_node_t *map) {
    yaml_node_t *depth = NULL, *custom = NULL, *width = NULL, *widths = NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(x, p->key);
        const char *s = scalar(k);
        if (s && !strcmp(s, "depth")) depth = k;
        if (s && (!strcmp(s, "blocks") || !strcmp(s, "block"))) custom = k;
        if (s && !strcmp(s, "width")) width = k;
        if (s && !strcmp(s, "widths")) widths = k;
    }
    if (width && widths)
        return fail_at(x, widths->start_mark,
                       "model.extractor: give either width or widths (one per stage), not both");
    if (depth && custom)
        return fail_at(x, custom->start_mark,
                       "model.extractor: give either depth or blocks + block, not both");
    return 0;
}

static int walk(Config *c, Ctx *x, const char *prefix, yaml_node_t *n);

/* A mapping under section `prefix`: each key is a leaf or a sub-section. */
static int walk_map(Config *c, Ctx *x, const char *prefix, yaml_node_t *map) {
    char buf[96];
    if (!strcmp(prefix, "model.extractor") && check_extractor_keys(x, map)) return EXIT_USAGE;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = node_at(x, p->key), *v = node_at(x, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(x, k->start_mark, "expected a key name, got %s",
                           describe(k, buf, sizeof buf));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (!strcmp(scalar(node_at(x, q->key)), scalar(k)))
                return fail_at(x, k->start_mark, "duplicate key '%s'%s%s", scalar(k),
                               *prefix ? " in " : "", prefix);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", scalar(k));
        const Key *key = find_key(path);
        if (key) {
            if (apply_key(c, x, key, v)) return EXIT_USAGE;
        } else if (is_section(path)) {
            if (walk(c, x, path, v)) return EXIT_USAGE;
        } else {
            char known[600];
            section_children(prefix, known, sizeof known);
            return fail_at(x, k->start_mark, "unknown key '%s'%s%s (known: %s)", scalar(k),
                           *prefix ? " in " : "", prefix, known);
        }
    }
    return 0;
}

/* A section's value: a mapping, or null for an empty section. */
static int walk(Config *c, Ctx *x, const char *prefix, yaml_node_t *n) {
    char buf[96];
    if (n->type == YAML_MAPPING_NODE) return walk_map(c, x, prefix, n);
    if (is_null(n)) return 0;
    return fail_at(x, n->start_mark, "%s%sexpected a mapping of keys, got %s", prefix,
                   *prefix ? ": " : "", describe(n, buf, sizeof buf));
}

/* ---- entry points ---- */

/* The schedule's length: its own key, else the run's step limit. */
static void sync_schedule(Config *c) {
    c->schedule.total_steps = c->schedule_steps > 0 ? c->schedule_steps : c->max_steps;
}

void config_defaults(Config *c) {
    memset(c, 0, sizeof *c);
    c->run_dir = xstrdup("runs/default");
    c->seed = 1234;
    c->val = xstrdup("");
    c->test = xstrdup("");
    c->batch_size = 64;
    c->shuffle = 1;
    c->depth = 18;
    resnet_depth_blocks(18, c->blocks, &c->bottleneck);
    c->width = 64;
    c->feature_dim = 256;
    c->enc_layers = 2;
    c->enc_hidden = 256;
    c->alphabet = xstrdup("");
    c->init = xstrdup("");
    c->teacher_checkpoint = xstrdup("");
    c->train_extractor = 1;
    c->dist_weight[DIST_L2] = 1.0f;
    c->temperature = 1.0f;
    c->ctc_weight = 0.1f;
    c->teacher_cache = TEACHER_CACHE_AUTO;
    augment_defaults(&c->aug);
    c->optim = (OptimConf){.kind = OPT_ADAM,
                           .lr = 1e-3f,
                           .momentum = 0.9f,
                           .beta1 = 0.9f,
                           .beta2 = 0.999f,
                           .eps = 1e-8f};
    c->grad_clip = 5.0f;
    c->schedule = (Schedule){.kind = SCHED_COSINE,
                             .warmup_steps = 200,
                             .step_size = 1000,
                             .gamma = 0.1f,
                             .min_lr = 0.0f};
    c->max_steps = 100000;
    c->converge_window = 200;
    c->converge_rel_tol = 1e-3;
    c->converge_patience = 5;
    c->ckpt_every_steps = 500;
    c->ckpt_every_minutes = 15;
    c->ckpt_keep = 3;
    c->eval_every_steps = 1000;
    c->log_every_steps = 20;
    sync_schedule(c);
}

void config_free(Config *c) {
    free_train(c);
    char **strs[] = {&c->run_dir,  &c->val,  &c->test,
                     &c->alphabet, &c->init, &c->teacher_checkpoint};
    for (size_t i = 0; i < ARRAY_LEN(strs); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

/* Nesting deeper than CONFIG_MAX_DEPTH or a second document is an error at
 * its position, found with libyaml's event parser before a document is
 * built: it stops at the first offending event, whereas building a deeply
 * nested document takes time quadratic in the depth (libyaml's scanner).
 * Syntax errors are left to the loader, which reports them. */
static int check_structure(const char *text, size_t len, Ctx *x) {
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return err_set(x->err, EXIT_USAGE, "%s: out of memory", x->name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, docs = 0, rc = 0;
    yaml_event_t e;
    while (!rc && yaml_parser_parse(&parser, &e)) {
        yaml_event_type_t type = e.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH)
                rc = fail_at(x, e.start_mark, "nested deeper than %d levels (a config's limit)",
                             CONFIG_MAX_DEPTH);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (type == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
            rc = fail_at(x, e.start_mark,
                         "a second YAML document ('---'): a config is a single document");
        }
        yaml_event_delete(&e);
        if (type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Parses `len` bytes of YAML into doc; a syntax error becomes LOC:LINE:COL. */
static int parse_yaml(const char *text, size_t len, yaml_document_t *doc, Ctx *x) {
    if (check_structure(text, len, x)) return EXIT_USAGE;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return err_set(x->err, EXIT_USAGE, "%s: out of memory", x->name);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int ok = yaml_parser_load(&parser, doc);
    if (!ok) {
        char ctx[160] = "";
        if (parser.context)
            snprintf(ctx, sizeof ctx, " (%s at line %zu)", parser.context,
                     parser.context_mark.line + 1);
        fail_at(x, parser.problem_mark, "YAML syntax error: %s%s",
                parser.problem ? parser.problem : "unknown problem", ctx);
    }
    yaml_parser_delete(&parser);
    return ok ? 0 : EXIT_USAGE;
}

int config_load_string(Config *c, const char *yaml, const char *name, Err *err) {
    config_defaults(c);
    yaml_document_t doc;
    Ctx x = {&doc, name, NULL, err};
    if (parse_yaml(yaml, strlen(yaml), &doc, &x)) return EXIT_USAGE;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? walk(c, &x, "", root) : 0; /* an empty file is all defaults */
    yaml_document_delete(&doc);
    sync_schedule(c);
    return rc;
}

int config_load(Config *c, const char *path, Err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        config_defaults(c);
        return err_set(err, EXIT_USAGE, "cannot open %s: %s", path, strerror(errno));
    }
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len + 4096 + 1 > cap) text = xrealloc(text, cap = 2 * cap + 4096 + 1);
        got = fread(text + len, 1, cap - len - 1, f);
        len += got;
    } while (got > 0 && len <= CONFIG_MAX_BYTES);
    int bad = ferror(f);
    fclose(f);
    if (!bad && len > CONFIG_MAX_BYTES) {
        free(text);
        config_defaults(c);
        return err_set(err, EXIT_USAGE, "%s: larger than %d bytes, the limit of a config file",
                       path, CONFIG_MAX_BYTES);
    }
    if (bad) {
        free(text);
        config_defaults(c);
        return err_set(err, EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    }
    text[len] = 0;
    if (strlen(text) != len) {
        free(text);
        config_defaults(c);
        return err_set(err, EXIT_USAGE, "%s: not a YAML text file (contains a NUL byte)", path);
    }
    int rc = config_load_string(c, text, path, err);
    free(text);
    return rc;
}

int config_set(Config *c, const char *assignment, Err *err) {
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return err_set(err, EXIT_USAGE, "--set %s: expected KEY=VALUE (e.g. optim.lr=3e-4)",
                       assignment);
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - assignment), assignment);
    const Key *k = find_key(key);
    if (!k && !is_section(key)) return err_set(err, EXIT_USAGE, "--set: unknown key '%s'", key);
    yaml_document_t doc;
    Ctx x = {&doc, key, key, err};
    if (parse_yaml(eq + 1, strlen(eq + 1), &doc, &x)) return EXIT_USAGE;
    yaml_node_t *v = yaml_document_get_root_node(&doc);
    if (!v)
        v = node_at(&x, yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)"", 0,
                                                 YAML_PLAIN_SCALAR_STYLE));
    int rc = k ? apply_key(c, &x, k, v) : walk(c, &x, key, v);
    yaml_document_delete(&doc);
    sync_schedule(c);
    return rc;
}

int config_validate(const Config *c, const char *command, Err *err) {
    int distill = !strcmp(command, "distill");
    if (!distill && strcmp(command, "train"))
        return err_set(err, EXIT_USAGE, "config: unknown command '%s' (train or distill)", command);
    if (c->n_train == 0)
        return err_set(err, EXIT_USAGE,
                       "config: %s needs data.train (a .h5 file or a list of shards)", command);
    if (distill && !*c->teacher_checkpoint)
        return err_set(err, EXIT_USAGE,
                       "config: distill needs teacher.checkpoint (the teacher's .h5)");
    if (distill && !c->train_extractor)
        return err_set(err, EXIT_USAGE, "config: distill.train must include extractor");
    if (!c->max_steps && !c->max_epochs && c->max_minutes <= 0 && !c->converge_window)
        return err_set(err, EXIT_USAGE,
                       "config: no stop rule: set stop.max_steps, max_epochs, max_minutes or "
                       "converge.window");
    if (c->schedule.over_time && c->schedule.kind != SCHED_COSINE)
        return err_set(err, EXIT_USAGE,
                       "config: optim.schedule.over: time needs optim.schedule.type cosine (a %s "
                       "schedule has no end to reach)",
                       SCHED_NAMES[c->schedule.kind]);
    if (c->schedule.over_time && c->max_minutes <= 0)
        return err_set(err, EXIT_USAGE,
                       "config: optim.schedule.over: time needs stop.max_minutes > 0 (the cosine "
                       "decays to min_lr when that time is used)");
    if (c->schedule.kind == SCHED_COSINE && !c->schedule.over_time &&
        c->schedule.total_steps == 0)
        return err_set(err, EXIT_USAGE,
                       "config: optim.schedule.type cosine needs stop.max_steps > 0 or "
                       "optim.schedule.total_steps > 0 (it decays to min_lr there); use constant "
                       "or step otherwise");
    if (c->schedule.min_lr > c->optim.lr)
        return err_set(err, EXIT_USAGE, "config: optim.schedule.min_lr (%g) exceeds optim.lr (%g)",
                       c->schedule.min_lr, c->optim.lr);
    return 0;
}
