/* test_config.c - the YAML config: defaults, the SPEC example, every error
 * class with its FILE:LINE:COL, --set overrides, the round trip through
 * config_to_yaml, config_validate, and every shipped conf/ file. */
#include <dirent.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/config.h"
#include "test.h"

static char tmpdir[] = "/tmp/ocrkd-test-config-XXXXXX";

/* Writes text to tmpdir/name; returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads yaml from a file and expects EXIT_USAGE with "FILE:LOC: ...TEXT...". */
static void expect_error(const char *yaml, const char *loc, const char *text) {
    const char *path = write_tmp("bad.yaml", yaml);
    Config c;
    Err err = {0};
    int rc = config_load(&c, path, &err);
    char prefix[600];
    snprintf(prefix, sizeof prefix, *loc ? "%s:%s: " : "%s:", path, loc);
    CHECK(rc == EXIT_USAGE && err.code == EXIT_USAGE, "rc %d for <<%s>>", rc, yaml);
    CHECK(!strncmp(err.msg, prefix, strlen(prefix)), "want prefix '%s', got '%s'", prefix, err.msg);
    CHECK(strstr(err.msg, text) != NULL, "want '%s' in '%s'", text, err.msg);
    config_free(&c);
}

/* Applies one --set on defaults and expects an error naming "--set KEY". */
static void expect_set_error(const char *assignment, const char *text) {
    Config c;
    config_defaults(&c);
    Err err = {0};
    int rc = config_set(&c, assignment, &err);
    CHECK(rc == EXIT_USAGE && err.code == EXIT_USAGE, "--set %s: rc %d", assignment, rc);
    CHECK(strstr(err.msg, text) != NULL, "want '%s' in '%s'", text, err.msg);
    config_free(&c);
}

static int same_str(const char *a, const char *b) {
    return a && b && !strcmp(a, b);
}

/* Field-by-field equality (floats bit-exact), naming the first difference. */
static const char *config_diff(const Config *a, const Config *b) {
#define SAME(f)                                                                                    \
    if (a->f != b->f) return #f
#define SAME_S(f)                                                                                  \
    if (!same_str(a->f, b->f)) return #f
    SAME_S(run_dir);
    SAME(seed);
    SAME(threads);
    SAME(n_train);
    for (int i = 0; i < a->n_train; i++)
        if (!same_str(a->train[i], b->train[i])) return "train[i]";
    SAME_S(val);
    SAME_S(test);
    SAME(batch_size);
    SAME(shuffle);
    SAME(augment);
    SAME(skip_bad_labels);
    SAME(train_limit);
    SAME(depth);
    SAME(blocks[0]);
    SAME(blocks[1]);
    SAME(blocks[2]);
    SAME(blocks[3]);
    SAME(bottleneck);
    SAME(width);
    for (int i = 0; i < 4; i++)
        SAME(widths[i]);
    SAME(feature_dim);
    SAME(enc_layers);
    SAME(enc_hidden);
    SAME_S(alphabet);
    SAME_S(init);
    SAME_S(teacher_checkpoint);
    SAME(train_extractor);
    SAME(train_classifier);
    SAME(train_encoder);
    for (int d = 0; d < DIST_COUNT; d++)
        SAME(dist_weight[d]);
    for (int d = 0; d < DIST_COUNT; d++)
        SAME(feat_weight[d]);
    SAME(logit_kl);
    SAME(aug.prob);
    SAME(aug.stretch);
    SAME(aug.perspective);
    SAME(aug.rotate);
    SAME(aug.crop);
    SAME(aug.blur);
    SAME(aug.lowres);
    SAME(aug.noise);
    SAME(aug.contrast);
    SAME(aug.brightness);
    SAME(aug.invert);
    SAME(temperature);
    SAME(ctc_weight);
    SAME(teacher_cache);
    SAME(student_init);
    SAME(allow_any_size);
    SAME(optim.kind);
    SAME(optim.lr);
    SAME(optim.weight_decay);
    SAME(optim.momentum);
    SAME(optim.beta1);
    SAME(optim.beta2);
    SAME(optim.eps);
    SAME(grad_clip);
    SAME(schedule.kind);
    SAME(schedule.warmup_steps);
    SAME(schedule.total_steps);
    SAME(schedule_steps);
    SAME(schedule.min_lr);
    SAME(schedule.step_size);
    SAME(schedule.gamma);
    SAME(schedule.over_time);
    SAME(max_steps);
    SAME(max_epochs);
    SAME(max_minutes);
    SAME(converge_window);
    SAME(converge_rel_tol);
    SAME(converge_patience);
    SAME(ckpt_every_steps);
    SAME(ckpt_every_minutes);
    SAME(ckpt_keep);
    SAME(eval_every_steps);
    SAME(eval_case_insensitive);
    SAME(log_every_steps);
    return NULL;
#undef SAME
#undef SAME_S
}

/* to_yaml -> load_string gives an identical Config; the text is stable too. */
static void check_round_trip(const Config *c, const char *what) {
    char *y = config_to_yaml(c);
    Config back;
    Err err = {0};
    int rc = config_load_string(&back, y, "round-trip", &err);
    CHECK(rc == 0, "%s: reloading the effective config: %s\n%s", what, err.msg, y);
    const char *diff = config_diff(c, &back);
    CHECK(diff == NULL, "%s: round trip changed field %s\n%s", what, diff, y);
    char *y2 = config_to_yaml(&back);
    CHECK(!strcmp(y, y2), "%s: second to_yaml differs", what);
    free(y);
    free(y2);
    config_free(&back);
}

static void test_defaults(void) {
    Config c;
    config_defaults(&c);
    CHECK(same_str(c.run_dir, "runs/default") && c.seed == 1234 && c.threads == 0, "run defaults");
    CHECK(c.n_train == 0 && same_str(c.val, "") && same_str(c.test, ""),
          "data files default empty");
    CHECK(c.batch_size == 64 && c.shuffle == 1 && c.augment == 0 && !c.skip_bad_labels,
          "data flags");
    CHECK(c.depth == 18 && !c.bottleneck && c.blocks[0] == 2 && c.blocks[3] == 2,
          "resnet-18 default");
    CHECK(c.width == 64 && c.feature_dim == 256 && c.enc_layers == 2 && c.enc_hidden == 256,
          "sizes");
    CHECK(same_str(c.alphabet, "") && same_str(c.init, "") && same_str(c.teacher_checkpoint, ""),
          "empty strings");
    CHECK(c.train_extractor && !c.train_classifier && !c.train_encoder,
          "distill.train default [extractor]");
    CHECK(c.dist_weight[DIST_L2] == 1.0f && c.dist_weight[DIST_L1] == 0 &&
              c.dist_weight[DIST_COSINE] == 0 && c.dist_weight[DIST_KL] == 0,
          "distance default {l2: 1}");
    CHECK(c.temperature == 1.0f && c.ctc_weight == 0.1f && c.teacher_cache == TEACHER_CACHE_AUTO &&
              !c.allow_any_size && c.student_init == STUDENT_INIT_RANDOM,
          "distill defaults");
    CHECK(c.optim.kind == OPT_ADAM && c.optim.lr == 1e-3f && c.optim.weight_decay == 0 &&
              c.optim.momentum == 0.9f && c.optim.beta1 == 0.9f && c.optim.beta2 == 0.999f &&
              c.optim.eps == 1e-8f && c.grad_clip == 5.0f,
          "optim defaults");
    CHECK(c.schedule.kind == SCHED_COSINE && c.schedule.warmup_steps == 200 &&
              c.schedule.step_size == 1000 && c.schedule.gamma == 0.1f && c.schedule.min_lr == 0 &&
              c.schedule.total_steps == 100000,
          "schedule defaults");
    CHECK(c.max_steps == 100000 && c.max_epochs == 0 && c.max_minutes == 0 &&
              c.converge_window == 200 && c.converge_rel_tol == 1e-3 && c.converge_patience == 5,
          "stop defaults");
    CHECK(c.ckpt_every_steps == 500 && c.ckpt_every_minutes == 15 && c.ckpt_keep == 3 &&
              c.eval_every_steps == 1000 && !c.eval_case_insensitive && c.log_every_steps == 20,
          "checkpoint/eval/log defaults");
    check_round_trip(&c, "defaults");
    config_free(&c);
}

/* The example block of SPEC "Config", verbatim. */
static const char *SPEC_EXAMPLE =
    "run:        {dir: runs/distill-r18, seed: 1234}\n"
    "data:       {train: data/train.h5, val: data/val.h5, batch_size: 64, shuffle: true,\n"
    "             augment: false}            # train may be a list of shard files\n"
    "model:                                  # the model trained (the student in distill)\n"
    "  extractor: {depth: 18, width: 64}     # depth 18|34|50|101|152, or blocks:[..] + block: "
    "basic|bottleneck\n"
    "  feature_dim: 256                      # extractor output size (encoder input)\n"
    "  encoder:   {layers: 2, hidden: 256}   # BiLSTM\n"
    "  alphabet:  \"0123456789abcdefghijklmnopqrstuvwxyz\"   # default: the dataset's\n"
    "  init: \"\"                              # optional checkpoint to start from\n"
    "teacher:    {checkpoint: runs/teacher/best.h5}        # distill only\n"
    "distill:    {train: [extractor], distance: {l2: 1.0}, temperature: 1.0,\n"
    "             ctc_weight: 0.1, teacher_cache: auto, allow_any_size: false}\n"
    "optim:      {name: adam, lr: 1.0e-3, weight_decay: 0.0, grad_clip: 5.0,   # name: "
    "sgd|adam|adamw\n"
    "             momentum: 0.9, schedule: {type: cosine, warmup_steps: 200}}  # type: "
    "constant|cosine|step\n"
    "stop:       {max_steps: 100000, max_epochs: 0, max_minutes: 0,\n"
    "             converge: {window: 200, rel_tol: 1.0e-3, patience: 5}}\n"
    "checkpoint: {every_steps: 500, every_minutes: 15, keep: 3}\n"
    "eval:       {every_steps: 1000}\n"
    "log:        {every_steps: 20}\n";

static void test_spec_example(void) {
    Config c;
    Err err = {0};
    int rc = config_load(&c, write_tmp("spec.yaml", SPEC_EXAMPLE), &err);
    CHECK(rc == 0, "SPEC example: %s", err.msg);
    CHECK(same_str(c.run_dir, "runs/distill-r18") && c.n_train == 1 &&
              same_str(c.train[0], "data/train.h5") && same_str(c.val, "data/val.h5"),
          "SPEC example: files");
    CHECK(same_str(c.alphabet, "0123456789abcdefghijklmnopqrstuvwxyz"), "SPEC example: alphabet");
    CHECK(same_str(c.teacher_checkpoint, "runs/teacher/best.h5"), "SPEC example: teacher");
    CHECK(config_validate(&c, "distill", &err) == 0, "SPEC example validates: %s", err.msg);
    check_round_trip(&c, "SPEC example");
    config_free(&c);
}

/* Every optional form: lists, custom blocks, maps, extra keys. */
static const char *ALL_FIELDS =
    "run: {dir: \"r/x y\", seed: 7, threads: 3}\n"
    "data:\n"
    "  train: [a.h5, \"b \\\"q\\\".h5\", c.h5]\n"
    "  val: v.h5\n"
    "  test: t.h5\n"
    "  batch_size: 5\n"
    "  shuffle: no\n"
    "  augment: yes\n"
    "  skip_bad_labels: true\n"
    "  train_limit: 12345\n"
    "augment: {prob: 0.75, stretch: 0.125, perspective: 0.25, rotate: 4.5, crop: 0.2,\n"
    "          blur: 2, lowres: 0.3, noise: 0.1, contrast: 0.25, brightness: 0.05, invert: 0.5}\n"
    "model:\n"
    "  extractor: {blocks: [1, 2, 3, 4], block: bottleneck, width: 8}\n"
    "  feature_dim: 33\n"
    "  encoder: {layers: 3, hidden: 17}\n"
    "  alphabet: \"\xc3\xa4\xc3\xb6\\\\ \\\"#: x\"\n"
    "  init: init.h5\n"
    "teacher: {checkpoint: t/best.h5}\n"
    "distill:\n"
    "  train: [classifier, extractor]\n"
    "  distance: {l1: 0.25, cosine: 2, kl: 0.1}\n"
    "  feature_distance: {l2: 0.5, cosine: 1}\n"
    "  logit_kl: 1.5\n"
    "  temperature: 2.5\n"
    "  ctc_weight: 0\n"
    "  teacher_cache: off\n"
    "  student_init: teacher\n"
    "  allow_any_size: true\n"
    "optim:\n"
    "  name: adamw\n  lr: 3.3e-4\n  weight_decay: 0.01\n  grad_clip: 0\n  momentum: 0.5\n"
    "  beta1: 0.8\n  beta2: 0.99\n  eps: 1e-6\n"
    "  schedule: {type: step, warmup_steps: 7, step_size: 300, gamma: 0.3, min_lr: 1e-6}\n"
    "stop:\n  max_steps: 1e5\n  max_epochs: 4\n  max_minutes: 90.5\n"
    "  converge: {window: 0, rel_tol: 0.01, patience: 2}\n"
    "checkpoint: {every_steps: 0, every_minutes: 0.5, keep: 1}\n"
    "eval: {every_steps: 0, case_insensitive: true}\nlog: {every_steps: 1}\n";

static void test_all_fields(void) {
    Config c;
    Err err = {0};
    int rc = config_load_string(&c, ALL_FIELDS, "all", &err);
    CHECK(rc == 0, "all fields: %s", err.msg);
    if (rc) return;
    CHECK(same_str(c.run_dir, "r/x y") && c.seed == 7 && c.threads == 3, "run");
    CHECK(c.n_train == 3 && same_str(c.train[1], "b \"q\".h5") && same_str(c.test, "t.h5"),
          "train list");
    CHECK(c.batch_size == 5 && !c.shuffle && c.augment && c.skip_bad_labels &&
              c.train_limit == 12345,
          "data scalars");
    CHECK(c.depth == 0 && c.blocks[0] == 1 && c.blocks[3] == 4 && c.bottleneck && c.width == 8,
          "custom blocks");
    CHECK(same_str(c.alphabet, "\xc3\xa4\xc3\xb6\\ \"#: x"), "alphabet escapes + UTF-8: '%s'",
          c.alphabet);
    CHECK(c.train_extractor && c.train_classifier && !c.train_encoder, "distill.train both");
    CHECK(c.dist_weight[DIST_L1] == 0.25f && c.dist_weight[DIST_L2] == 0 &&
              c.dist_weight[DIST_COSINE] == 2 && c.dist_weight[DIST_KL] == 0.1f,
          "distance map replaces the default");
    CHECK(c.feat_weight[DIST_L2] == 0.5f && c.feat_weight[DIST_COSINE] == 1 &&
              c.feat_weight[DIST_L1] == 0 && c.logit_kl == 1.5f,
          "feature_distance and logit_kl");
    CHECK(c.aug.prob == 0.75f && c.aug.stretch == 0.125f && c.aug.rotate == 4.5f &&
              c.aug.lowres == 0.3f && c.aug.invert == 0.5f,
          "augment ranges");
    CHECK(c.teacher_cache == TEACHER_CACHE_OFF && c.allow_any_size, "teacher_cache off");
    CHECK(c.student_init == STUDENT_INIT_TEACHER, "student_init teacher");
    CHECK(c.optim.kind == OPT_ADAMW && c.optim.lr == 3.3e-4f && c.optim.eps == 1e-6f, "optim");
    CHECK(c.schedule.kind == SCHED_STEP && c.schedule.step_size == 300 && c.schedule.gamma == 0.3f,
          "schedule");
    CHECK(c.max_steps == 100000 && c.schedule.total_steps == 100000 && c.max_minutes == 90.5,
          "max_steps 1e5 as an integer; total_steps follows");
    CHECK(c.converge_window == 0 && c.ckpt_keep == 1 && c.ckpt_every_minutes == 0.5, "stop/ckpt");
    CHECK(c.eval_every_steps == 0 && c.eval_case_insensitive == 1, "eval.case_insensitive");
    check_round_trip(&c, "all fields");
    /* depth after blocks (via --set) restores the standard layout */
    CHECK(config_set(&c, "model.extractor.depth=101", &err) == 0, "set depth: %s", err.msg);
    CHECK(c.depth == 101 && c.bottleneck && c.blocks[2] == 23, "depth 101 fills blocks");
    check_round_trip(&c, "after --set depth");
    config_free(&c);
}

static void test_errors(void) {
    expect_error("optim:\n  name: adam\n  lrr: 0.1\n", "3:3", "unknown key 'lrr' in optim");
    expect_error("optim: {name: adam, lrr: 0.1}\n", "1:21", "unknown key 'lrr' in optim");
    expect_error("runn: {dir: x}\n", "1:1", "unknown key 'runn'");
    expect_error("model:\n  encoder: {layers: 2, hiden: 3}\n", "2:24",
                 "unknown key 'hiden' in model.encoder");
    expect_error("data:\n  batch_size: abc\n", "2:15", "expected an integer");
    expect_error("optim: {lr: fast}\n", "1:13", "expected a number");
    expect_error("optim: {lr: \"1e-3\"}\n", "1:13", "expected a number");
    expect_error("data: {shuffle: maybe}\n", "1:17", "expected true or false");
    expect_error("data: {val: [a, b]}\n", "1:13", "expected a string");
    expect_error("data: {batch_size: 0}\n", "1:20", "data.batch_size must be in [1,");
    expect_error("model:\n  extractor: {depth: 20}\n", "2:22",
                 "must be one of 18, 34, 50, 101, 152");
    expect_error("optim: {lr: -0.1}\n", "1:13", "optim.lr must be in (0,");
    expect_error("optim: {lr: 0}\n", "1:13", "optim.lr must be in (0,");
    expect_error("checkpoint:\n  keep: 0\n", "2:9", "checkpoint.keep must be in [1,");
    expect_error("optim: {momentum: 1}\n", "1:19", "optim.momentum must be in [0, 1)");
    expect_error("stop: {max_steps: -5}\n", "1:19", "stop.max_steps must be >= 0");
    expect_error("optim: {name: lion}\n", "1:15", "expected one of sgd, adam, adamw");
    expect_error("optim:\n  schedule: {type: linear}\n", "2:20",
                 "expected one of constant, cosine, step");
    expect_error("optim:\n  schedule: {over: epochs}\n", "2:20", "expected one of steps, time");
    expect_error("distill: {teacher_cache: maybe}\n", "1:26", "expected one of auto, on, off");
    expect_error("distill: {student_init: pretrained}\n", "1:25", "expected one of random, teacher");
    expect_error("distill: {distance: {l3: 1}}\n", "1:22", "unknown distance 'l3'");
    expect_error("distill: {distance: {l1: 0, l2: 0}}\n", "1:21",
                 "at least one weight must be > 0");
    expect_error("distill: {distance: {l1: -1}}\n", "1:26", "must be in [0, 1e6]");
    expect_error("distill: {train: [classifier]}\n", "1:18", "must include extractor");
    expect_error("distill: {train: [extractor, encoder]}\n", "1:18",
                 "the encoder trains only with the classifier");
    expect_error("distill: {train: [extractor, decoder]}\n", "1:30",
                 "expected one of extractor, classifier, encoder, got 'decoder'");
    expect_error("distill: {train: [encoder]}\n", "1:18", "must include extractor");
    expect_error("model:\n  extractor: {depth: 18, blocks: [2, 2, 2, 2]}\n", "2:26", "not both");
    expect_error("model:\n  extractor: {blocks: [2, 2, 2]}\n", "2:23", "list of 4 block counts");
    expect_error("model:\n  extractor: {blocks: [2, 0, 2, 2], block: basic}\n", "2:27",
                 "block counts must be in [1, 100]");
    expect_error("model:\n  extractor: {width: 8, widths: [8, 16, 24, 32]}\n", "2:25",
                 "either width or widths");
    expect_error("model:\n  extractor: {widths: [8, 16, 24]}\n", "2:23", "list of 4 stage widths");
    expect_error("model:\n  extractor: {widths: [8, 0, 24, 32]}\n", "2:27",
                 "stage widths must be in [1, 4096]");
    expect_error("model:\n  extractor: {widths: 8}\n", "2:23", "list of 4 stage widths");
    expect_error("model:\n  extractor: {width: 0}\n", "2:22", "must be in [1, 4096]");
    expect_error("model:\n  extractor: {block: huge}\n", "2:22",
                 "expected one of basic, bottleneck");
    expect_error("data: {train: [a.h5, [b]]}\n", "1:22", "expected a file name");
    expect_error("run: {seed: 1}\nrun: {seed: 2}\n", "2:1", "duplicate key 'run'");
    expect_error("optim: 3\n", "1:8", "expected a mapping");
    expect_error("- a\n- b\n", "1:1", "expected a mapping");
    expect_error("run: {dir: x\nseed: 1\n", "", "YAML syntax error");
    expect_error("run:\n  dir: x\n   seed: 1\n", "3:8", "YAML syntax error");
    expect_error("run:\n\tdir: x\n", "2:1", "YAML syntax error");

    /* a missing file */
    Config c;
    Err err = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/nope.yaml", tmpdir);
    int rc = config_load(&c, path, &err);
    char want[700];
    snprintf(want, sizeof want, "cannot open %s: No such file or directory", path);
    CHECK(rc == EXIT_USAGE && !strcmp(err.msg, want), "missing file: rc %d '%s'", rc, err.msg);
    config_free(&c);
    /* an empty file is all defaults */
    rc = config_load(&c, write_tmp("empty.yaml", "# nothing\n"), &err);
    CHECK(rc == 0 && c.batch_size == 64, "empty file loads as defaults: %s", err.msg);
    config_free(&c);
}

/* Limits: nesting depth (fast even at 100000 levels), one document, 1 MiB. */
static void test_limits(void) {
    enum { DEEP = 100000 };
    char *deep = xmalloc(2 * DEEP + 16);
    strcpy(deep, "run: ");
    memset(deep + 5, '[', DEEP);
    memset(deep + 5 + DEEP, ']', DEEP);
    strcpy(deep + 5 + 2 * DEEP, "\n");
    double t0 = now_seconds();
    expect_error(deep, "1:69", "nested deeper than 64 levels");
    double secs = now_seconds() - t0;
    CHECK(secs < 0.5, "100000 nested lists refused in %.3f s", secs);
    free(deep);
    deep = xmalloc(5 * DEEP + 16); /* run: {a: {a: ... 1}} */
    strcpy(deep, "run: ");
    for (int i = 0; i < DEEP; i++)
        memcpy(deep + 5 + 4 * i, "{a: ", 4);
    deep[5 + 4 * DEEP] = '1';
    memset(deep + 6 + 4 * DEEP, '}', DEEP);
    strcpy(deep + 6 + 5 * DEEP, "\n");
    t0 = now_seconds();
    expect_error(deep, "1:258", "nested deeper than 64 levels");
    secs = now_seconds() - t0;
    CHECK(secs < 0.5, "100000 nested mappings refused in %.3f s", secs);
    free(deep);
    char block[40000] = "";
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(block + n, sizeof block - n, "%*sk%d:\n", i, "", i);
    snprintf(block + n, sizeof block - n, "%*sv: 1\n", 100, "");
    expect_error(block, "65:65", "nested deeper than 64 levels");
    Config c;
    config_defaults(&c);
    Err err = {0};
    char set[128] = "run=";
    memset(set + 4, '[', 70);
    CHECK(config_set(&c, set, &err) == EXIT_USAGE && strstr(err.msg, "--set run: nested deeper"),
          "--set value too deep: %s", err.msg);
    config_free(&c);
    expect_error("run: {seed: 1}\n---\nrun: {seed: 2}\n", "2:1", "a second YAML document");
    size_t big = (1u << 20) + 1;
    char *text = xmalloc(big + 1);
    memset(text, '#', big);
    text[big] = 0;
    const char *path = write_tmp("big.yaml", text);
    free(text);
    int rc = config_load(&c, path, &err);
    CHECK(rc == EXIT_USAGE && strstr(err.msg, path) && strstr(err.msg, "larger than 1048576 bytes"),
          "a config over 1 MiB: %s", err.msg);
    config_free(&c);
}

static void test_set(void) {
    Config c, d;
    Err err = {0};
    config_defaults(&c);
    CHECK(config_set(&c, "optim.lr=3e-4", &err) == 0 && c.optim.lr == 3e-4f, "set lr: %s", err.msg);
    CHECK(config_set(&c, "model.encoder.hidden=128", &err) == 0 && c.enc_hidden == 128,
          "set hidden");
    CHECK(config_set(&c, "data.train=[a.h5, b.h5]", &err) == 0 && c.n_train == 2 &&
              same_str(c.train[1], "b.h5"),
          "set a list: %s", err.msg);
    CHECK(config_set(&c, "data.train=one.h5", &err) == 0 && c.n_train == 1 &&
              same_str(c.train[0], "one.h5"),
          "set one file");
    CHECK(config_set(&c, "distill.distance={cosine: 1, l2: 0.5}", &err) == 0 &&
              c.dist_weight[DIST_COSINE] == 1 && c.dist_weight[DIST_L2] == 0.5f,
          "set a map: %s", err.msg);
    CHECK(config_set(&c, "distill.train=[extractor, classifier]", &err) == 0 && c.train_classifier,
          "set distill.train");
    CHECK(config_set(&c, "distill.train=[extractor, classifier, encoder]", &err) == 0 &&
              c.train_classifier && c.train_encoder,
          "set distill.train with the encoder: %s", err.msg);
    CHECK(config_set(&c, "optim.schedule={type: constant, warmup_steps: 0}", &err) == 0 &&
              c.schedule.kind == SCHED_CONSTANT && c.schedule.warmup_steps == 0,
          "set a section");
    CHECK(config_set(&c, "stop.max_steps=500", &err) == 0 && c.schedule.total_steps == 500,
          "set max_steps fills total_steps");
    CHECK(config_set(&c, "model.init=", &err) == 0 && same_str(c.init, ""), "set empty string");
    CHECK(config_set(&c, "model.alphabet=0123", &err) == 0 && same_str(c.alphabet, "0123"),
          "a number-like string stays text");
    CHECK(config_set(&c, "distill.teacher_cache=on", &err) == 0 &&
              c.teacher_cache == TEACHER_CACHE_ON,
          "set teacher_cache on");
    CHECK(config_set(&c, "model.extractor.blocks=[1,1,1,1]", &err) == 0 && c.depth == 0,
          "set blocks");
    check_round_trip(&c, "after --set");
    CHECK(config_set(&c, "model.extractor.widths=[16, 32, 48, 40]", &err) == 0 &&
              c.widths[0] == 16 && c.widths[2] == 48 && c.widths[3] == 40,
          "set widths: %s", err.msg);
    check_round_trip(&c, "after --set widths");
    {
        ModelArch a;
        CHECK(arch_from_config(&c, 37, &a, &err) == 0 && arch_planes(&a, 0) == 16 &&
                  arch_planes(&a, 3) == 40,
              "widths reach the architecture");
    }
    /* a later width replaces the widths (what `--set model.extractor.width=` means) */
    CHECK(config_set(&c, "model.extractor.width=8", &err) == 0 && c.width == 8 && !c.widths[0],
          "set width clears widths");
    {
        ModelArch a;
        CHECK(arch_from_config(&c, 37, &a, &err) == 0 && arch_planes(&a, 0) == 8 &&
                  arch_planes(&a, 3) == 64,
              "width gives w, 2w, 4w, 8w");
    }
    config_free(&c);

    expect_set_error("optim.lr=abc", "--set optim.lr: optim.lr: expected a number");
    expect_set_error("optim.lr=-1", "--set optim.lr: optim.lr must be in (0,");
    expect_set_error("optim.lrr=1", "--set: unknown key 'optim.lrr'");
    expect_set_error("optim.lr", "expected KEY=VALUE");
    expect_set_error("data.train=[a, b", "--set data.train: YAML syntax error");
    expect_set_error("optim={lrr: 1}", "--set optim: unknown key 'lrr' in optim");
    expect_set_error("data.batch_size=",
                     "--set data.batch_size: data.batch_size: expected an integer");
    expect_set_error("model.extractor.depth=20",
                     "--set model.extractor.depth: model.extractor.depth must be one of");

    /* --set of a key equals the same value from a file */
    config_defaults(&c);
    config_set(&c, "checkpoint.keep=7", &err);
    config_load_string(&d, "checkpoint: {keep: 7}\n", "x", &err);
    CHECK(config_diff(&c, &d) == NULL, "--set and file agree");
    config_free(&c);
    config_free(&d);
}

/* Random floats and doubles survive config_to_yaml -> load bit-exact. */
static void test_float_round_trip(void) {
    Config c;
    config_defaults(&c);
    Rng r;
    rng_seed(&r, 42);
    int bad = 0;
    for (int i = 0; i < 300 && !bad; i++) {
        c.optim.lr = (float)(rng_uniform(&r) * 10.0 + 1e-9);
        c.optim.eps = (float)(rng_uniform(&r) * 1e-6 + 1e-12);
        c.max_minutes = rng_uniform(&r) * 1e4;
        c.converge_rel_tol = rng_uniform(&r) * 0.9 + 1e-12;
        char *y = config_to_yaml(&c);
        Config back;
        Err err = {0};
        bad = config_load_string(&back, y, "rt", &err) != 0 || config_diff(&c, &back) != NULL;
        if (bad)
            printf("lr %.9g eps %.9g minutes %.17g: %s\n", c.optim.lr, c.optim.eps, c.max_minutes,
                   y);
        free(y);
        config_free(&back);
    }
    CHECK(!bad, "random float/double values round-trip exactly");
    config_free(&c);
}

/* optim.schedule.total_steps decouples the schedule from stop.max_steps, so
 * one cosine can span several jobs that each stop early. */
static void test_schedule_length(void) {
    Config c;
    Err err = {0};
    const char *p = write_tmp("sched.yaml", "data: {train: x.h5}\nstop: {max_steps: 10}\n"
                                            "optim: {schedule: {type: cosine, total_steps: 50}}\n");
    CHECK(config_load(&c, p, &err) == 0 && c.schedule.total_steps == 50 && c.max_steps == 10,
          "total_steps wins over max_steps (%ld)", c.schedule.total_steps);
    CHECK(config_set(&c, "stop.max_steps=20", &err) == 0 && c.schedule.total_steps == 50,
          "--set stop.max_steps keeps the schedule length (%ld)", c.schedule.total_steps);
    CHECK(config_set(&c, "optim.schedule.total_steps=0", &err) == 0 &&
              c.schedule.total_steps == 20,
          "total_steps 0 follows stop.max_steps (%ld)", c.schedule.total_steps);
    check_round_trip(&c, "schedule length");
    config_free(&c);
}

static void test_validate(void) {
    Config c;
    Err err = {0};
    config_defaults(&c);
    CHECK(config_validate(&c, "train", &err) == EXIT_USAGE && strstr(err.msg, "data.train"),
          "train needs data.train: %s", err.msg);
    config_set(&c, "data.train=a.h5", &err);
    CHECK(config_validate(&c, "train", &err) == 0, "train ok: %s", err.msg);
    CHECK(config_validate(&c, "distill", &err) == EXIT_USAGE &&
              strstr(err.msg, "teacher.checkpoint"),
          "distill needs teacher.checkpoint: %s", err.msg);
    config_set(&c, "teacher.checkpoint=t.h5", &err);
    CHECK(config_validate(&c, "distill", &err) == 0, "distill ok: %s", err.msg);
    config_set(&c, "stop={max_steps: 0, converge: {window: 0}}", &err);
    config_set(&c, "optim.schedule.type=constant", &err);
    CHECK(config_validate(&c, "train", &err) == EXIT_USAGE && strstr(err.msg, "no stop rule"),
          "no stop rule: %s", err.msg);
    config_set(&c, "stop.max_epochs=3", &err);
    CHECK(config_validate(&c, "train", &err) == 0, "epochs are a stop rule: %s", err.msg);
    config_set(&c, "optim.schedule.type=cosine", &err);
    CHECK(config_validate(&c, "train", &err) == EXIT_USAGE && strstr(err.msg, "cosine"),
          "cosine needs max_steps: %s", err.msg);
    config_set(&c, "optim.schedule.over=time", &err);
    CHECK(config_validate(&c, "train", &err) == EXIT_USAGE && strstr(err.msg, "stop.max_minutes"),
          "a schedule over time needs max_minutes: %s", err.msg);
    config_set(&c, "stop.max_minutes=2.5", &err);
    CHECK(config_validate(&c, "train", &err) == 0 && c.schedule.over_time,
          "cosine over time with max_minutes and no max_steps: %s", err.msg);
    check_round_trip(&c, "schedule over time");
    config_set(&c, "optim.schedule.type=step", &err);
    CHECK(config_validate(&c, "train", &err) == EXIT_USAGE && strstr(err.msg, "needs optim.schedule.type cosine"),
          "a step schedule over time: %s", err.msg);
    CHECK(config_validate(&c, "eval", &err) == EXIT_USAGE, "unknown command");
    config_free(&c);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Every conf/NAME.yaml loads and validates (distill when it names a teacher). */
static void test_shipped_configs(void) {
    DIR *d = opendir("conf");
    CHECK(d != NULL, "conf/ not found: run from the repository root");
    if (!d) return;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, ".yaml")) continue;
        char path[512];
        snprintf(path, sizeof path, "conf/%s", e->d_name);
        Config c;
        Err err = {0};
        int rc = config_load(&c, path, &err);
        const char *cmd = rc == 0 && *c.teacher_checkpoint ? "distill" : "train";
        if (rc == 0) rc = config_validate(&c, cmd, &err);
        CHECK(rc == 0, "%s (%s): %s", path, cmd, err.msg);
        if (rc == 0) printf("  ok %s valid for %s\n", path, cmd);
        if (rc == 0) check_round_trip(&c, path);
        config_free(&c);
        count++;
    }
    closedir(d);
    CHECK(count >= 4, "expected at least 4 configs in conf/, found %d", count);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_spec_example();
    test_all_fields();
    test_errors();
    test_limits();
    test_set();
    test_float_round_trip();
    test_schedule_length();
    test_validate();
    test_shipped_configs();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    TEST_END();
}
