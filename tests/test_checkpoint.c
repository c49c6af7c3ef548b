/* test_checkpoint.c - the checkpoint file: bit-exact round trip of params,
 * buffers and blobs; meta; ckpt_load_model; shape mismatch, missing and
 * extra tensors named; wrong format and version; flipped bytes in the
 * alphabet and config caught by the attribute checksums, absurd attribute
 * values refused, files without checksums accepted; truncation and a flipped
 * data byte caught by ckpt_verify; the run directory: prune only this run's
 * files (never the one just written), resume fallback and refusal, setting
 * an earlier run aside. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ocrkd/checkpoint.h"
#include "ocrkd/h5util.h"
#include "test.h"

static char tmpdir[] = "/tmp/ocrkd-test-ckpt-XXXXXX";
static const char *ALPHABET = "a\xc3\xa4"
                              "b"; /* "aäb": 3 code points, 4 bytes -> K = 4 */

static const char *tmp_path(const char *name) {
    static char bufs[4][600];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 600, "%s/%s", tmpdir, name);
    return b;
}

static ModelArch small_arch(int enc_layers, int classes) {
    ModelArch a = {{1, 1, 1, 1}, 0, 2, 4, enc_layers, 3, classes, {0, 0, 0, 0}};
    return a;
}

/* A model with every float (parameters and BN buffers) random. */
static Crnn *random_model(const ModelArch *a, uint64_t seed) {
    Crnn *m = crnn_create(a, 2, 16, 0);
    Rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < m->nparams; i++)
        m->params[i] = rng_normal(&r);
    return m;
}

/* The config text stored with the model: the effective YAML of its arch. */
static char *config_text(const ModelArch *a) {
    Config c;
    config_defaults(&c);
    char set[128];
    Err err;
    snprintf(set, sizeof set,
             "model={extractor: {blocks: [1, 1, 1, 1], block: basic, width: %d}, "
             "feature_dim: %d, encoder: {layers: %d, hidden: %d}}",
             a->width, a->feature_dim, a->enc_layers, a->enc_hidden);
    if (config_set(&c, set, &err)) printf("config_set: %s\n", err.msg);
    char *y = config_to_yaml(&c);
    config_free(&c);
    return y;
}

/* Blob contents; values exercise sign bits and the full 64-bit range. */
static float b_m[37], b_v[37];
static int64_t b_i[5] = {0, -1, 123456789012345LL, INT64_MIN, INT64_MAX};
static double b_d[3] = {3.141592653589793, -0.0, 1e-300};
static uint64_t b_u[4] = {0, 1, 0xDEADBEEFCAFEF00DULL, UINT64_MAX};

/* The run id write_model stores ("" = none). */
static const char *g_run_id = "0123456789abcdef";

static int write_model(const char *path, const Crnn *m, long step) {
    for (int i = 0; i < 37; i++)
        b_m[i] = (float)i / 7.0f, b_v[i] = -(float)i * 1e-9f;
    CkptBlob blobs[] = {
        {"optim/m", BLOB_F32, b_m, 37},       {"optim/v", BLOB_F32, b_v, 37},
        {"state/counters", BLOB_I64, b_i, 5}, {"state/values", BLOB_F64, b_d, 3},
        {"state/rng", BLOB_U64, b_u, 4},      {"state/empty", BLOB_F32, NULL, 0},
    };
    char *cfg = config_text(&m->arch);
    CkptMeta meta = {"student", cfg, (char *)ALPHABET, step, 7, 4, 0, (char *)g_run_id};
    Err err = {0};
    int rc = ckpt_write(path, m, &meta, blobs, (int)ARRAY_LEN(blobs), &err);
    CHECK(rc == 0, "ckpt_write %s: %s", path, err.msg);
    free(cfg);
    return rc;
}

static void test_round_trip(void) {
    ModelArch a = small_arch(2, 4);
    Crnn *m = random_model(&a, 1), *back = crnn_create(&a, 2, 16, 0);
    const char *path = tmp_path("a.h5");
    write_model(path, m, 1200);
    CHECK(access(tmp_path("a.h5.tmp"), F_OK) != 0, "no .tmp file left behind");
    Err err = {0};
    int rc = ckpt_read_params(path, back, PART_ALL, 1, &err);
    CHECK(rc == 0, "read params: %s", err.msg);
    CHECK(m->n_buffers > 0 && !memcmp(m->params, back->params, m->nparams * sizeof(float)),
          "params and BN buffers bit-exact (%zu floats, %zu buffers)", m->nparams, m->n_buffers);

    float m2[37], v2[37];
    int64_t i2[5];
    double d2[3];
    uint64_t u2[4];
    CHECK(ckpt_read_blob(path, "optim/m", BLOB_F32, m2, 37, &err) == 0 &&
              !memcmp(m2, b_m, sizeof m2),
          "blob optim/m: %s", err.msg);
    CHECK(ckpt_read_blob(path, "optim/v", BLOB_F32, v2, 37, &err) == 0 &&
              !memcmp(v2, b_v, sizeof v2),
          "blob optim/v");
    CHECK(ckpt_read_blob(path, "state/counters", BLOB_I64, i2, 5, &err) == 0 &&
              !memcmp(i2, b_i, sizeof i2),
          "blob int64");
    CHECK(ckpt_read_blob(path, "state/values", BLOB_F64, d2, 3, &err) == 0 &&
              !memcmp(d2, b_d, sizeof d2),
          "blob float64 (incl. -0.0)");
    CHECK(ckpt_read_blob(path, "state/rng", BLOB_U64, u2, 4, &err) == 0 &&
              !memcmp(u2, b_u, sizeof u2),
          "blob uint64");
    CHECK(ckpt_read_blob(path, "state/empty", BLOB_F32, NULL, 0, &err) == 0, "empty blob: %s",
          err.msg);
    CHECK(ckpt_has_blob(path, "optim/v") && !ckpt_has_blob(path, "optim/w") &&
              !ckpt_has_blob(path, "nope/x"),
          "ckpt_has_blob");
    rc = ckpt_read_blob(path, "optim/m", BLOB_F32, m2, 36, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "optim/m") && strstr(err.msg, "37"),
          "blob length mismatch named: %s", err.msg);
    rc = ckpt_read_blob(path, "state/missing", BLOB_F32, m2, 1, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "state/missing"), "missing blob named: %s", err.msg);
    CHECK(ckpt_verify(path, &err) == 0, "a whole file verifies: %s", err.msg);

    CkptMeta meta;
    rc = ckpt_read_meta(path, &meta, &err);
    CHECK(rc == 0, "read meta: %s", err.msg);
    if (!rc) {
        CHECK(!strcmp(meta.kind, "student") && !strcmp(meta.alphabet, ALPHABET), "meta strings");
        CHECK(meta.step == 1200 && meta.epoch == 7 && meta.world_size == 4 &&
                  meta.version == CKPT_VERSION,
              "meta numbers");
        CHECK(strstr(meta.config, "feature_dim: 4") != NULL, "meta config text");
        CHECK(!strcmp(meta.run_id, g_run_id), "run id read back: %s", meta.run_id);
        ckpt_meta_free(&meta);
    }
    crnn_free(m);
    crnn_free(back);
}

static void test_load_model(void) {
    ModelArch a = small_arch(2, 4);
    Crnn *m = random_model(&a, 2), *got = NULL;
    const char *path = tmp_path("load.h5");
    write_model(path, m, 5);
    Config cfg;
    CkptMeta meta;
    Err err = {0};
    int rc = ckpt_load_model(path, 3, 24, 1, &got, &cfg, &meta, &err);
    CHECK(rc == 0 && got, "ckpt_load_model: %s", err.msg);
    if (!rc) {
        CHECK(got->arch.num_classes == 4, "K = code points + 1 (got %d)", got->arch.num_classes);
        CHECK(got->arch.enc_layers == 2 && got->arch.feature_dim == 4 && got->max_batch == 3 &&
                  got->width == 24 && got->train,
              "arch and sizes from the stored config");
        CHECK(!memcmp(m->params, got->params, m->nparams * sizeof(float)), "loaded params exact");
        CHECK(!strcmp(cfg.alphabet, ALPHABET) && meta.step == 5, "cfg_out alphabet and meta_out");
        config_free(&cfg);
        ckpt_meta_free(&meta);
        crnn_free(got);
    }
    crnn_free(m);
}

static void test_mismatches(void) {
    ModelArch a2 = small_arch(2, 4), a1 = small_arch(1, 4), a5 = small_arch(2, 5);
    Crnn *m2 = random_model(&a2, 3), *m1 = random_model(&a1, 4), *m5 = random_model(&a5, 5);
    const char *p2 = tmp_path("enc2.h5"), *p1 = tmp_path("enc1.h5");
    write_model(p2, m2, 1);
    write_model(p1, m1, 1);
    Err err = {0};
    int rc = ckpt_read_params(p2, m5, PART_ALL, 1, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "classifier.weight") && strstr(err.msg, "[4, 6]") &&
              strstr(err.msg, "[5, 6]") && strstr(err.msg, p2),
          "shape mismatch names file, tensor and shapes: %s", err.msg);
    rc = ckpt_read_params(p1, m2, PART_ALL, 1, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "encoder.weight_ih_l1") && strstr(err.msg, "missing"),
          "missing tensor named: %s", err.msg);
    rc = ckpt_read_params(p1, m2, PART_EXTRACTOR | PART_CLASSIFIER, 1, &err);
    CHECK(rc == 0, "parts without the missing tensors load: %s", err.msg);
    rc = ckpt_read_params(p1, m2, PART_ALL, 0, &err);
    CHECK(rc == 0, "non-strict skips missing tensors: %s", err.msg);
    rc = ckpt_read_params(p2, m1, PART_ALL, 1, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "/params/encoder.") &&
              strstr(err.msg, "_l1 is not a tensor"),
          "strict: an extra tensor in the file is named: %s", err.msg);
    rc = ckpt_read_params(p2, m1, PART_ALL, 0, &err);
    Crnn *ref = random_model(&a2, 3); /* what p2 holds */
    CHECK(rc == 0 && !memcmp(m1->params, ref->params, m1->count[PART_EXTRACTOR] * sizeof(float)),
          "non-strict ignores extra tensors and loads the rest: %s", err.msg);
    crnn_free(ref);
    crnn_free(m1);
    crnn_free(m2);
    crnn_free(m5);
}

/* Copies src to dst, optionally truncated to `len` bytes (-1: whole). */
static long copy_file(const char *src, const char *dst, long len) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    if (!in || !out) return -1;
    char buf[65536];
    long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (len >= 0 && total + (long)n > len) n = (size_t)(len - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (len >= 0 && total >= len) break;
    }
    fclose(in);
    fclose(out);
    return total;
}

static void set_root_attr(const char *path, const char *name, const char *s, long v) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    int rc = f < 0 ? -1 : s ? h5_attr_write_string(f, name, s) : h5_attr_write_long(f, name, v);
    CHECK(rc == 0, "rewriting attribute %s of %s", name, path);
    if (f >= 0) H5Fclose(f);
}

static void test_format_checks(void) {
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 6);
    const char *good = tmp_path("good.h5"), *bad = tmp_path("bad.h5");
    write_model(good, m, 1);
    Err err = {0};
    CkptMeta meta;
    copy_file(good, bad, -1);
    set_root_attr(bad, "format", "ocrkd-dataset", 0);
    int rc = ckpt_read_meta(bad, &meta, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "not an ocrkd checkpoint") && strstr(err.msg, bad),
          "wrong format attr: %s", err.msg);
    CHECK(ckpt_read_params(bad, m, PART_ALL, 1, &err) == EXIT_CKPT, "params refuse a wrong format");
    copy_file(good, bad, -1);
    set_root_attr(bad, "version", NULL, 2);
    rc = ckpt_read_meta(bad, &meta, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "version 2"), "newer version refused: %s", err.msg);
    FILE *f = fopen(bad, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    rc = ckpt_read_meta(bad, &meta, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "not a readable HDF5 file"), "text file: %s", err.msg);
    rc = ckpt_read_meta(tmp_path("missing.h5"), &meta, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "No such file"), "missing file: %s", err.msg);
    crnn_free(m);
}

/* Offset of the first occurrence of pat in file, or -1. */
static long find_bytes(const char *path, const void *pat, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    char *buf = xmalloc((size_t)size);
    long at = -1;
    if (fread(buf, 1, (size_t)size, f) == (size_t)size)
        for (long i = 0; i + (long)n <= size && at < 0; i++)
            if (!memcmp(buf + i, pat, n)) at = i;
    free(buf);
    fclose(f);
    return at;
}

static void flip_byte(const char *path, long at) {
    FILE *f = fopen(path, "r+b");
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

/* Writes a checkpoint whose classifier.weight starts with a byte pattern
 * found nowhere else, and returns the file offset of that pattern. */
static long write_marked(const char *path, Crnn *m, long step) {
    TensorInfo *t = crnn_find(m, "classifier.weight");
    float *w = crnn_tensor(m, t);
    for (size_t i = 0; i < t->numel; i++)
        w[i] = 1234.5f + 0.25f * (float)i;
    write_model(path, m, step);
    return find_bytes(path, w, 4 * sizeof(float));
}

static void test_corruption(void) {
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 7);
    const char *good = tmp_path("whole.h5"), *bad = tmp_path("broken.h5");
    long at = write_marked(good, m, 1);
    CHECK(at > 0, "tensor bytes found in the file");
    Err err = {0};
    CHECK(ckpt_verify(good, &err) == 0, "untouched file verifies: %s", err.msg);
    copy_file(good, bad, -1);
    flip_byte(bad, at + 5);
    int rc = ckpt_verify(bad, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "/params/classifier.weight") && strstr(err.msg, bad),
          "flipped data byte caught by Fletcher-32: %s", err.msg);
    CHECK(ckpt_read_params(bad, m, PART_ALL, 1, &err) == EXIT_CKPT, "reading params also fails");
    struct stat st;
    stat(good, &st);
    long cuts[] = {(long)st.st_size / 2, (long)st.st_size - 64, 100};
    for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
        copy_file(good, bad, cuts[i]);
        rc = ckpt_verify(bad, &err);
        CHECK(rc == EXIT_CKPT && strstr(err.msg, bad), "truncated to %ld of %ld bytes caught: %s",
              cuts[i], (long)st.st_size, err.msg);
    }
    crnn_free(m);
}

/* ---- attribute checksums and values ---- */

static void delete_root_attr(const char *path, const char *name) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    int rc = f < 0 ? -1 : H5Adelete(f, name);
    CHECK(rc >= 0, "deleting attribute %s of %s", name, path);
    if (f >= 0) H5Fclose(f);
}

/* ckpt_read_meta of path fails with EXIT_CKPT and a message holding the
 * file and every one of the (up to two) texts. */
static void expect_meta_error(const char *path, const char *t1, const char *t2, const char *what) {
    CkptMeta meta;
    Err err = {0};
    int rc = ckpt_read_meta(path, &meta, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, path) && strstr(err.msg, t1) &&
              (!t2 || strstr(err.msg, t2)),
          "%s: rc %d: %s", what, rc, err.msg);
    if (!rc) ckpt_meta_free(&meta);
}

static void test_attr_checksums(void) {
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 9);
    const char *good = tmp_path("sums.h5"), *bad = tmp_path("sums-bad.h5");
    write_model(good, m, 3);
    /* a flipped byte of the alphabet: the global heap has no checksum of its own */
    copy_file(good, bad, -1);
    long at = find_bytes(bad, ALPHABET, strlen(ALPHABET));
    CHECK(at > 0, "alphabet bytes found in the file");
    flip_byte(bad, at + 3); /* 'b' -> 'r': still valid UTF-8 */
    expect_meta_error(bad, "attribute 'alphabet'", "checksum", "flipped alphabet byte");
    Err err = {0};
    Crnn *got = NULL;
    CHECK(ckpt_load_model(bad, 1, 16, 0, &got, NULL, NULL, &err) == EXIT_CKPT && !got,
          "ckpt_load_model refuses it: %s", err.msg);
    CHECK(ckpt_verify(bad, &err) == EXIT_CKPT && strstr(err.msg, "alphabet"),
          "ckpt_verify refuses it: %s", err.msg);
    CHECK(ckpt_read_params(bad, m, PART_ALL, 0, &err) == EXIT_CKPT && strstr(err.msg, "alphabet"),
          "ckpt_read_params (model.init) refuses it: %s", err.msg);
    /* and of the config */
    copy_file(good, bad, -1);
    at = find_bytes(bad, "feature_dim: 4", 14);
    CHECK(at > 0, "config text found in the file");
    flip_byte(bad, at + 13); /* "4" -> "$" */
    expect_meta_error(bad, "attribute 'config'", "checksum", "flipped config byte");
    /* an attribute rewritten without its checksum */
    const char *names[] = {"kind", "alphabet", "run_id"};
    const char *values[] = {"teacher", "ab", "fedcba9876543210"};
    for (int i = 0; i < 3; i++) {
        copy_file(good, bad, -1);
        set_root_attr(bad, names[i], values[i], 0);
        char want[64];
        snprintf(want, sizeof want, "attribute '%s'", names[i]);
        expect_meta_error(bad, want, "checksum", names[i]);
    }
    copy_file(good, bad, -1);
    set_root_attr(bad, "step", NULL, 4);
    expect_meta_error(bad, "attribute 'step'", "checksum", "step rewritten");
    copy_file(good, bad, -1);
    set_root_attr(bad, CKPT_CHECKSUMS_ATTR, "fnv1a64 kind=0000000000000000", 0);
    expect_meta_error(bad, "attribute 'kind'", "checksum", "a wrong checksum");
    copy_file(good, bad, -1);
    set_root_attr(bad, CKPT_CHECKSUMS_ATTR, "crc32 kind=00000000", 0);
    expect_meta_error(bad, CKPT_CHECKSUMS_ATTR, "unknown kind", "unknown checksum kind");
    /* a file from before the checksums (version 1 files exist): accepted */
    copy_file(good, bad, -1);
    delete_root_attr(bad, CKPT_CHECKSUMS_ATTR);
    delete_root_attr(bad, "run_id");
    CkptMeta meta;
    printf("  (a warning about a file without attr_checksums is expected here)\n");
    int rc = ckpt_read_meta(bad, &meta, &err);
    CHECK(rc == 0 && !strcmp(meta.alphabet, ALPHABET) && !strcmp(meta.run_id, ""),
          "a file without checksums or run id loads: %s", err.msg);
    if (!rc) ckpt_meta_free(&meta);
    crnn_free(m);
}

static void test_attr_values(void) {
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 10);
    const char *good = tmp_path("values.h5"), *bad = tmp_path("values-bad.h5");
    write_model(good, m, 3);
    /* without checksums (an old or foreign file) the values are still checked */
    struct {
        const char *name, *s;
        long v;
        const char *want;
    } cases[] = {
        {"kind", "xyz", 0, "expected \"teacher\" or \"student\""},
        {"step", NULL, -1, "outside 0.."},
        {"step", NULL, 2000000000000000L, "outside 0.."},
        {"epoch", NULL, -3, "outside 0.."},
        {"world_size", NULL, 0, "outside 1..1000000"},
        {"world_size", NULL, -5, "outside 1..1000000"},
        {"world_size", NULL, 4294967297L, "outside 1..1000000"},
        {"alphabet", "", 0, "alphabet is empty"},
        {"alphabet", "abca", 0, "repeats"},
        {"alphabet", "a\xff", 0, "not valid UTF-8"},
        {"run_id", "xyz", 0, "not 16 hex digits"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        copy_file(good, bad, -1);
        delete_root_attr(bad, CKPT_CHECKSUMS_ATTR);
        set_root_attr(bad, cases[i].name, cases[i].s, cases[i].v);
        char what[96];
        snprintf(what, sizeof what, "%s = %s%ld refused", cases[i].name,
                 cases[i].s ? cases[i].s : "", cases[i].s ? 0L : cases[i].v);
        expect_meta_error(bad, cases[i].name, cases[i].want, what);
    }
    /* a writer that checksums absurd values is refused all the same */
    CkptMeta meta = {"xyz", "model: {}\n", "ab", 1, 0, 1, 0, ""};
    Err err = {0};
    CHECK(ckpt_write(bad, m, &meta, NULL, 0, &err) == 0, "write: %s", err.msg);
    expect_meta_error(bad, "attribute 'kind'", "\"xyz\"", "kind xyz with a valid checksum");
    crnn_free(m);
}

/* ---- run directory ---- */

static int exists_in(const char *dir, const char *name) {
    char p[1500];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void touch(const char *dir, const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}

/* A real checkpoint of run run_id at step in dir; its path into buf. */
static void write_step(const char *dir, long step, const char *run_id, const Crnn *m, char *buf,
                       size_t cap) {
    ckpt_path_for_step(dir, step, buf, cap);
    g_run_id = run_id;
    write_model(buf, m, step);
    g_run_id = "0123456789abcdef";
}

static void test_prune(void) {
    char buf[700];
    ckpt_path_for_step("runs/x", 1200, buf, sizeof buf);
    CHECK(!strcmp(buf, "runs/x/ckpt-00001200.h5"), "ckpt_path_for_step: %s", buf);
    char id1[32], id2[32];
    ckpt_new_run_id(id1, sizeof id1);
    ckpt_new_run_id(id2, sizeof id2);
    CHECK(strlen(id1) == CKPT_RUN_ID_LEN && strspn(id1, "0123456789abcdef") == CKPT_RUN_ID_LEN &&
              strcmp(id1, id2) != 0,
          "run ids are 16 hex digits and differ: %s %s", id1, id2);

    const char *dir = tmp_path("prune");
    mkdir(dir, 0777);
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 11);
    const char *mine = "1111111111111111", *other = "2222222222222222";
    long steps[] = {5, 20, 100, 3000};
    for (size_t i = 0; i < ARRAY_LEN(steps); i++)
        write_step(dir, steps[i], mine, m, buf, sizeof buf);
    write_step(dir, 123456789, other, m, buf, sizeof buf); /* an older run's, higher step */
    touch(dir, "ckpt-00000007.h5");                        /* unreadable */
    touch(dir, "ckpt-99999999.h5");                        /* unreadable, highest step */
    touch(dir, "best.h5");
    touch(dir, "ckpt-00000001.h5.tmp");
    touch(dir, "ckpt-notes.h5");
    char names[300];
    int n = ckpt_list(dir, names, sizeof names);
    CHECK(n == 7 && !strncmp(names, "ckpt-123456789.h5, ckpt-99999999.h5, ckpt-00003000.h5", 52),
          "ckpt_list: %d: %s", n, names);
    Err err = {0};
    char written[700];
    ckpt_path_for_step(dir, 100, written, sizeof written);
    CHECK(ckpt_prune(dir, 2, mine, written, &err) == 0, "prune: %s", err.msg);
    CHECK(exists_in(dir, "ckpt-00000100.h5") && exists_in(dir, "ckpt-00003000.h5"),
          "the file just written and this run's newest other one stay");
    CHECK(!exists_in(dir, "ckpt-00000020.h5") && !exists_in(dir, "ckpt-00000005.h5"),
          "this run's older ones go");
    CHECK(exists_in(dir, "ckpt-123456789.h5") && exists_in(dir, "ckpt-00000007.h5") &&
              exists_in(dir, "ckpt-99999999.h5"),
          "another run's file and unreadable files are never touched");
    CHECK(exists_in(dir, "best.h5") && exists_in(dir, "ckpt-00000001.h5.tmp") &&
              exists_in(dir, "ckpt-notes.h5"),
          "best.h5 and other files untouched");
    CHECK(ckpt_prune(dir, 1, mine, written, &err) == 0 && exists_in(dir, "ckpt-00000100.h5") &&
              !exists_in(dir, "ckpt-00003000.h5"),
          "keep: 1 keeps the file just written, even below a higher step of the run");
    CHECK(ckpt_prune(dir, 1, "", written, &err) == 0 && exists_in(dir, "ckpt-123456789.h5"),
          "no run id: nothing pruned");
    CHECK(ckpt_prune(tmp_path("no-such-dir"), 2, mine, written, &err) == EXIT_CKPT &&
              strstr(err.msg, "no-such-dir"),
          "prune of a missing dir: %s", err.msg);
    CHECK(ckpt_list(tmp_path("no-such-dir"), names, sizeof names) == 0, "list of a missing dir");
    crnn_free(m);
}

static void test_find_resume(void) {
    /* 10 and 20 good, 30 corrupt -> 20 with a warning */
    const char *rdir = tmp_path("resume");
    mkdir(rdir, 0777);
    ModelArch a = small_arch(1, 4);
    Crnn *m = random_model(&a, 8);
    char buf[700], p10[700], p20[700], p30[700];
    ckpt_path_for_step(rdir, 10, p10, sizeof p10);
    ckpt_path_for_step(rdir, 20, p20, sizeof p20);
    ckpt_path_for_step(rdir, 30, p30, sizeof p30);
    write_model(p10, m, 10);
    write_model(p20, m, 20);
    long at = write_marked(p30, m, 30);
    Err err = {0};
    CHECK(ckpt_find_resume(rdir, buf, sizeof buf, &err) == 0 && !strcmp(buf, p30),
          "newest when whole: %s", buf);
    flip_byte(p30, at + 2);
    printf("  (warnings naming ckpt-00000030.h5, then all three files, are expected here)\n");
    CHECK(ckpt_find_resume(rdir, buf, sizeof buf, &err) == 0 && !strcmp(buf, p20),
          "falls back past a corrupt newest file: %s", buf);
    copy_file(p30, p20, 1000);
    copy_file(p30, p10, -1);
    int rc = ckpt_find_resume(rdir, buf, sizeof buf, &err);
    CHECK(rc == EXIT_CKPT && strstr(err.msg, "none of the 3") && strstr(err.msg, rdir) &&
              strstr(err.msg, "ckpt-00000030.h5, ckpt-00000020.h5, ckpt-00000010.h5"),
          "none verifies -> EXIT_CKPT naming the files: %d %s", rc, err.msg);
    const char *empty = tmp_path("empty");
    mkdir(empty, 0777);
    touch(empty, "best.h5");
    CHECK(ckpt_find_resume(empty, buf, sizeof buf, &err) == -1, "no ckpt-*.h5 -> -1");
    CHECK(ckpt_find_resume(tmp_path("no-such-dir"), buf, sizeof buf, &err) == -1,
          "missing dir -> -1");
    crnn_free(m);
}

static void test_set_aside(void) {
    const char *dir = tmp_path("aside");
    mkdir(dir, 0777);
    const char *run_files[] = {"ckpt-00000010.h5", "ckpt-00000020.h5", "ckpt-00000030.h5.tmp",
                               "best.h5", "metrics.jsonl"};
    for (size_t i = 0; i < ARRAY_LEN(run_files); i++)
        touch(dir, run_files[i]);
    touch(dir, "notes.txt");
    char to[700], want[700];
    int moved = -1;
    Err err = {0};
    snprintf(want, sizeof want, "%s/previous-1", dir);
    CHECK(ckpt_set_aside(dir, to, sizeof to, &moved, &err) == 0 && moved == 5 && !strcmp(to, want),
          "set aside: %d files to %s: %s", moved, to, err.msg);
    int all = 1;
    for (size_t i = 0; i < ARRAY_LEN(run_files); i++)
        all = all && exists_in(to, run_files[i]) && !exists_in(dir, run_files[i]);
    CHECK(all && exists_in(dir, "notes.txt"), "the run's files moved, others stay");
    CHECK(ckpt_set_aside(dir, to, sizeof to, &moved, &err) == 0 && moved == 0 &&
              !exists_in(dir, "previous-2"),
          "nothing to move: no directory made");
    touch(dir, "ckpt-00000005.h5");
    snprintf(want, sizeof want, "%s/previous-2", dir);
    CHECK(ckpt_set_aside(dir, to, sizeof to, &moved, &err) == 0 && moved == 1 && !strcmp(to, want),
          "a second start-over goes to previous-2: %s", to);
    CHECK(ckpt_set_aside(tmp_path("no-such-dir"), to, sizeof to, &moved, &err) == 0 && moved == 0,
          "missing dir: nothing to move");
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_load_model();
    test_mismatches();
    test_format_checks();
    test_attr_checksums();
    test_attr_values();
    test_corruption();
    test_prune();
    test_find_resume();
    test_set_aside();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmpdir);
    TEST_END();
}
