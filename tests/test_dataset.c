/* test_dataset.c - the dataset format and the sharded loader: writer/reader
 * round trip, files written by other means (fixed-length strings, other
 * integer types, contiguous/compressed), sharding over P = 1, 2, 3 ranks,
 * seeded order, tell/seek, prefetch = sync, and every bad input. All files
 * are made here, in a temporary directory. */
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/dataset.h"
#include "test.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static uint8_t pix(long i, int y, int x, int file) {
    return (uint8_t)((i * 7 + y * 3 + x + file * 101) & 255);
}

/* ---- files written with the raw HDF5 API, the way other tools might ---- */

typedef struct {
    const char *format; /* NULL: no format attribute */
    long version;
    int fixed_attrs;   /* fixed-length string attributes, int16 integers */
    int height, width; /* attributes */
    int img_h;         /* actual image height (mismatch test) */
    int img_kind;      /* 0 uint8 chunked+gzip, 1 uint8 contiguous, 2 int16 */
    int label_kind;    /* 0 vlen UTF-8, 1 fixed ASCII nullpad, 2 fixed spacepad, 3 int32 */
    int label_extra;   /* labels count = n + label_extra */
    int widths_kind;   /* 0 none, 1 int16, 2 uint8, 3 float */
    const char *alphabet;
} Raw;

static Raw raw_default(void) {
    return (Raw){DATASET_FORMAT, 1, 0, 8, 12, 8, 0, 0, 0, 0, "0123456789s_"};
}

static void attr_str(hid_t f, const char *name, const char *v, int fixed) {
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, fixed ? strlen(v) : H5T_VARIABLE);
    if (!fixed) H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, fixed ? (const void *)v : (const void *)&v);
    H5Aclose(a), H5Sclose(sp), H5Tclose(t);
}

static void attr_int(hid_t f, const char *name, long v, int small) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a =
        H5Acreate2(f, name, small ? H5T_STD_I16LE : H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    long long x = v;
    H5Awrite(a, H5T_NATIVE_LLONG, &x);
    H5Aclose(a), H5Sclose(sp);
}

static void write_dset(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank,
                       const hsize_t *dims, int chunked, const void *buf) {
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunked) {
        hsize_t c[3] = {5, dims[1], dims[2]};
        H5Pset_chunk(dcpl, rank, c);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(d), H5Pclose(dcpl), H5Sclose(sp);
}

static void write_labels(hid_t f, const Raw *o, long n, char (*labels)[16]) {
    hsize_t dims[1] = {(hsize_t)n};
    if (o->label_kind == 3) {
        int *v = calloc((size_t)n, sizeof *v);
        write_dset(f, "/labels", H5T_STD_I32LE, H5T_NATIVE_INT, 1, dims, 0, v);
        free(v);
        return;
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    if (o->label_kind == 0) {
        const char **p = malloc((size_t)n * sizeof *p);
        for (long i = 0; i < n; i++)
            p[i] = labels[i];
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5T_CSET_UTF8);
        write_dset(f, "/labels", t, t, 1, dims, 0, p);
        free(p);
    } else {
        char *buf = malloc((size_t)n * 15);
        for (long i = 0; i < n; i++) {
            memset(buf + i * 15, o->label_kind == 2 ? ' ' : 0, 15);
            memcpy(buf + i * 15, labels[i], strlen(labels[i]));
        }
        H5Tset_size(t, 15);
        H5Tset_strpad(t, o->label_kind == 2 ? H5T_STR_SPACEPAD : H5T_STR_NULLPAD);
        write_dset(f, "/labels", t, t, 1, dims, 0, buf);
        free(buf);
    }
    H5Tclose(t);
}

static void write_widths(hid_t f, const Raw *o, long n) {
    if (!o->widths_kind) return;
    double *w = malloc((size_t)n * sizeof *w);
    for (long i = 0; i < n; i++)
        w[i] = (double)(i % o->width + 1);
    hid_t ft = o->widths_kind == 1   ? H5T_STD_I16LE
               : o->widths_kind == 2 ? H5T_STD_U8LE
                                     : H5T_IEEE_F32LE;
    hsize_t dims[1] = {(hsize_t)n};
    write_dset(f, "/widths", ft, H5T_NATIVE_DOUBLE, 1, dims, 0, w);
    free(w);
}

/* n samples; labels[i] given; image i of file `file` is pix(i, y, x, file). */
static void write_raw(const char *path, const Raw *o, long n, char (*labels)[16], int file) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (o->format) attr_str(f, "format", o->format, o->fixed_attrs);
    attr_int(f, "version", o->version, o->fixed_attrs);
    attr_str(f, "alphabet", o->alphabet, o->fixed_attrs);
    attr_int(f, "height", o->height, o->fixed_attrs);
    attr_int(f, "width", o->width, o->fixed_attrs);
    hsize_t dims[3] = {(hsize_t)n, (hsize_t)o->img_h, (hsize_t)o->width};
    short *img = malloc((size_t)n * (size_t)o->img_h * (size_t)o->width * sizeof *img);
    for (long i = 0; i < n; i++)
        for (int y = 0; y < o->img_h; y++)
            for (int x = 0; x < o->width; x++)
                img[(i * o->img_h + y) * o->width + x] = pix(i, y, x, file);
    write_dset(f, "/images", o->img_kind == 2 ? H5T_STD_I16LE : H5T_STD_U8LE, H5T_NATIVE_SHORT, 3,
               dims, o->img_kind == 0, img);
    free(img);
    write_labels(f, o, n + o->label_extra, labels);
    write_widths(f, o, n);
    H5Fclose(f);
}

/* Labels "s<file>_<index>", unique, in the default alphabet. */
static char (*make_labels(long n, int file))[16] {
    char(*l)[16] = calloc((size_t)n + 4, 16);
    for (long i = 0; i < n + 4; i++)
        snprintf(l[i], 16, "s%d_%d", file % 10, (int)(i % 1000));
    return l;
}

static Loader *open_loader(const char *const *files, int nfiles, int rank, int world, int batch,
                           int train, int shuffle, int prefetch, uint64_t seed) {
    LoaderConf c = {.files = files,
                    .nfiles = nfiles,
                    .rank = rank,
                    .world = world,
                    .batch_size = batch,
                    .shuffle = shuffle,
                    .seed = seed,
                    .train = train,
                    .prefetch = prefetch};
    Loader *l = NULL;
    Err err = {0};
    if (loader_open(&l, &c, &err)) printf("loader_open: %s\n", err.msg);
    return l;
}

/* ---- alphabet ---- */

static void test_alphabet(void) {
    Alphabet a;
    Err err;
    CHECK(alphabet_init(&a, "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", &err) == 0, "init: %s",
          err.msg);
    CHECK(a.n == 5 && a.cps[2] == 0xE9 && a.cps[3] == 0x20AC && a.cps[4] == 0x1F600, "code points");
    CHECK(alphabet_id(&a, 'b') == 2 && alphabet_id(&a, 0x1F600) == 5 && alphabet_id(&a, 'z') == 0,
          "ids");
    int ids[8];
    uint32_t bad = 0;
    int n = alphabet_encode(&a,
                            "\xf0\x9f\x98\x80"
                            "a\xc3\xa9",
                            ids, 8, &bad);
    CHECK(n == 3 && ids[0] == 5 && ids[1] == 1 && ids[2] == 3, "encode non-ASCII (n=%d)", n);
    char out[32];
    alphabet_decode(&a, ids, n, out, sizeof out);
    CHECK(strcmp(out, "\xf0\x9f\x98\x80"
                      "a\xc3\xa9") == 0,
          "decode round trip '%s'", out);
    CHECK(alphabet_encode(&a, "aQb", ids, 8, &bad) == -1 && bad == 'Q', "missing char reported");
    CHECK(alphabet_encode(&a, "a\xc3", ids, 8, &bad) == -2, "bad UTF-8 reported");
    CHECK(alphabet_encode(&a, "abab", ids, 2, &bad) == 2, "encode truncates at cap");
    alphabet_free(&a);
    CHECK(alphabet_init(&a, "abca", &err) == EXIT_USAGE && strstr(err.msg, "'a'"), "repeat: %s",
          err.msg);
    CHECK(alphabet_init(&a, "", &err) == EXIT_USAGE, "empty alphabet");
    CHECK(alphabet_init(&a, "ab\xff", &err) == EXIT_USAGE, "invalid UTF-8 alphabet");
}

/* ---- writer -> loader round trip ---- */

static void test_round_trip(void) {
    const char *alpha = "abc\xc3\xa9\xe2\x82\xac\xce\xa9 ";
    const char *syms[] = {"a", "b", "c", "\xc3\xa9", "\xe2\x82\xac", "\xce\xa9", " "};
    const int H = 8, W = 16;
    const long N = 300; /* more than one chunk (256 rows) */
    const char *path = tmp_path("round.h5");
    DatasetWriter *w;
    Err err = {0};
    CHECK(dswriter_open(&w, path, H, W, alpha, 1, &err) == 0, "writer open: %s", err.msg);
    char(*labels)[64] = calloc((size_t)N, 64);
    int(*ids)[8] = calloc((size_t)N, sizeof *ids);
    int *lens = calloc((size_t)N, sizeof *lens);
    uint8_t img[8 * 16];
    for (long i = 0; i < N; i++) {
        lens[i] = (int)(i % 6);
        for (int k = 0; k < lens[i]; k++) {
            int s = (int)((i * 3 + k * 5) % 7);
            strcat(labels[i], syms[s]);
            ids[i][k] = s + 1;
        }
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                img[y * W + x] = pix(i, y, x, 0);
        if (dswriter_add(w, img, (int)(i % W) + 1, labels[i], &err)) break;
    }
    CHECK(access(path, F_OK) != 0, "nothing at PATH before close");
    CHECK(dswriter_close(w, &err) == 0, "writer close: %s", err.msg);
    CHECK(access(tmp_path("round.h5.tmp"), F_OK) != 0, "temporary file renamed");

    DatasetMeta m;
    CHECK(dataset_read_meta(path, &m, &err) == 0, "read_meta: %s", err.msg);
    CHECK(m.n == N && m.height == H && m.width == W && m.has_widths && !strcmp(m.alphabet, alpha),
          "meta n=%ld %dx%d", m.n, m.height, m.width);
    dataset_meta_free(&m);

    const char *files[] = {path};
    Loader *l = open_loader(files, 1, 0, 1, 7, 0, 0, 1, 1);
    CHECK(l && loader_steps_per_epoch(l) == (N + 6) / 7, "eval steps");
    CHECK(l && loader_max_label_len(l) == 5, "max label len");
    long seen = 0, bad_img = 0, bad_lab = 0;
    const Batch *b;
    while (l && loader_next(l, &b, &err) == 0 && b) {
        int off = 0;
        for (int k = 0; k < b->B; k++, seen++) {
            long i = b->index[k];
            if (i != seen) bad_lab++;
            for (int j = 0; j < H * W; j++)
                if (b->images[(size_t)k * H * W + j] != pix(i, j / W, j % W, 0) / 255.0f) bad_img++;
            if (strcmp(b->texts[k], labels[i]) || b->label_lens[k] != lens[i] ||
                memcmp(b->labels + off, ids[i], (size_t)lens[i] * sizeof(int)))
                bad_lab++;
            off += b->label_lens[k];
        }
    }
    CHECK(seen == N, "eval pass saw %ld of %ld", seen, N);
    CHECK(bad_img == 0, "%ld pixels differ", bad_img);
    CHECK(bad_lab == 0, "%ld labels/indices differ (UTF-8 labels, ids, order)", bad_lab);
    loader_close(l);

    /* widths are int32, labels UTF-8 vlen, images chunked along N */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "/widths", H5P_DEFAULT), t = H5Dget_type(d);
    int *wv = calloc((size_t)N, sizeof *wv);
    H5Dread(d, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, wv);
    CHECK(H5Tequal(t, H5T_STD_I32LE) > 0, "widths stored as int32");
    long wbad = 0;
    for (long i = 0; i < N; i++)
        wbad += wv[i] != (int)(i % W) + 1;
    CHECK(wbad == 0, "%ld widths differ", wbad);
    H5Tclose(t), H5Dclose(d);
    d = H5Dopen2(f, "/labels", H5P_DEFAULT), t = H5Dget_type(d);
    CHECK(H5Tis_variable_str(t) > 0 && H5Tget_cset(t) == H5T_CSET_UTF8, "labels vlen UTF-8");
    H5Tclose(t), H5Dclose(d);
    H5Fclose(f);
    free(wv), free(labels), free(ids), free(lens);

    const char *empty = tmp_path("empty.h5"); /* zero samples is a valid file */
    CHECK(dswriter_open(&w, empty, H, W, alpha, 0, &err) == 0 && dswriter_close(w, &err) == 0 &&
              dataset_read_meta(empty, &m, &err) == 0 && m.n == 0,
          "empty file: %s", err.msg);
    dataset_meta_free(&m);

    FILE *out = tmpfile();
    CHECK(dataset_describe(path, out, &err) == 0, "describe: %s", err.msg);
    char text[4096] = {0};
    rewind(out);
    size_t got = fread(text, 1, sizeof text - 1, out);
    (void)got;
    fclose(out);
    CHECK(strstr(text, "samples   300") && strstr(text, "length min 0, mean 2.5, max 5") &&
              strstr(text, "widths    min 1"),
          "describe output:\n%s", text);
}

/* ---- files written by other tools ---- */

static void check_foreign(const char *name, Raw o) {
    const long N = 23;
    char(*labels)[16] = make_labels(N, 0);
    const char *path = tmp_path(name);
    write_raw(path, &o, N, labels, 0);
    const char *files[] = {path};
    Loader *l = open_loader(files, 1, 0, 1, 5, 0, 0, 0, 1);
    CHECK(l != NULL, "%s: open", name);
    long seen = 0, bad = 0;
    const Batch *b;
    Err err;
    while (l && loader_next(l, &b, &err) == 0 && b)
        for (int k = 0; k < b->B; k++, seen++) {
            bad += strcmp(b->texts[k], labels[b->index[k]]) != 0;
            for (int j = 0; j < o.height * o.width; j++)
                bad += b->images[(size_t)k * o.height * o.width + j] !=
                       pix(b->index[k], j / o.width, j % o.width, 0) / 255.0f;
        }
    CHECK(seen == N && bad == 0, "%s: read %ld samples, %ld differences", name, seen, bad);
    loader_close(l);
    DatasetMeta m;
    CHECK(dataset_read_meta(path, &m, &err) == 0 && m.has_widths == (o.widths_kind != 0),
          "%s: meta", name);
    dataset_meta_free(&m);
    free(labels);
}

static void test_foreign(void) {
    Raw o = raw_default();
    o.fixed_attrs = 1, o.label_kind = 1, o.widths_kind = 1, o.img_kind = 1;
    check_foreign("fixed_nullpad_int16_contig.h5", o);
    o = raw_default();
    o.label_kind = 2, o.widths_kind = 2, o.img_kind = 0;
    check_foreign("fixed_spacepad_uint8_gzip.h5", o);
    o = raw_default();
    check_foreign("vlen_nowidths.h5", o);
}

/* ---- sharding ---- */

/* Train mode, one epoch on each of P ranks: returns 0 if the invariants
 * hold; visits[file][index] counts visits. */
static void check_epoch(const char *const *files, int nfiles, const long *n, int P, int B,
                        int expect_all) {
    long total = 0, steps0 = -1, want_steps = -1;
    int visits[4][64] = {{0}};
    for (int r = 0; r < P; r++) {
        long size = 0;
        for (int f = 0; f < nfiles; f++)
            size += nfiles == 1 ? n[0] * (r + 1) / P - n[0] * r / P : (f % P == r ? n[f] : 0);
        if (want_steps < 0 || size / B < want_steps) want_steps = size / B;
    }
    int outside = 0, bad_text = 0;
    for (int r = 0; r < P; r++) {
        Loader *l = open_loader(files, nfiles, r, P, B, 1, 1, 1, 42);
        if (!l) return;
        long steps = loader_steps_per_epoch(l);
        if (steps0 < 0) steps0 = steps;
        CHECK(steps == steps0 && steps == want_steps, "P=%d rank %d: %ld steps, want %ld", P, r,
              steps, want_steps);
        const Batch *b;
        Err err;
        for (long s = 0; s < steps && loader_next(l, &b, &err) == 0; s++)
            for (int k = 0; k < b->B; k++, total++) {
                int f = b->file[k];
                long i = b->index[k];
                visits[f][i]++;
                long lo = nfiles == 1 ? n[0] * r / P : 0,
                     hi = nfiles == 1 ? n[0] * (r + 1) / P : n[f];
                outside += (nfiles > 1 && f % P != r) || i < lo || i >= hi;
                char want[48];
                snprintf(want, sizeof want, "s%d_%ld", f, i);
                bad_text += strcmp(want, b->texts[k]) != 0;
            }
        long e, st;
        loader_tell(l, &e, &st);
        CHECK(e == 1 && st == 0, "P=%d: tell after an epoch is (1,0), got (%ld,%ld)", P, e, st);
        loader_close(l);
    }
    int dup = 0, missed = 0;
    for (int f = 0; f < nfiles; f++)
        for (long i = 0; i < n[f]; i++)
            dup += visits[f][i] > 1, missed += visits[f][i] == 0;
    CHECK(outside == 0 && bad_text == 0, "P=%d: %d samples outside the shard, %d wrong labels", P,
          outside, bad_text);
    CHECK(dup == 0 && total == want_steps * B * P, "P=%d: %d duplicates, %ld visits", P, dup,
          total);
    if (expect_all)
        CHECK(missed == 0, "P=%d, %d files: %d samples never visited", P, nfiles, missed);
}

static void test_sharding(void) {
    Raw o = raw_default();
    long n1[1] = {48};
    char(*lab)[16] = make_labels(48, 0);
    const char *one = tmp_path("one.h5");
    write_raw(one, &o, 48, lab, 0);
    free(lab);
    const char *files1[] = {one};
    for (int P = 1; P <= 3; P++)
        check_epoch(files1, 1, n1, P, 4, 1); /* 48 = 4*4*3 */
    long n1b[1] = {47};
    lab = make_labels(47, 0);
    const char *odd = tmp_path("odd.h5");
    write_raw(odd, &o, 47, lab, 0);
    free(lab);
    const char *files1b[] = {odd};
    for (int P = 1; P <= 3; P++)
        check_epoch(files1b, 1, n1b, P, 4, 0);

    /* four shard files: 12, 12, 12, 12 (all visited for P = 1, 2) and uneven */
    long n4[4] = {12, 12, 12, 12}, n4b[4] = {13, 9, 17, 12};
    const char *f4[4], *f4b[4];
    char name[32];
    for (int f = 0; f < 4; f++) {
        snprintf(name, sizeof name, "shard%d.h5", f);
        f4[f] = strdup(tmp_path(name));
        lab = make_labels(n4[f], f);
        write_raw(f4[f], &o, n4[f], lab, f);
        free(lab);
        snprintf(name, sizeof name, "uneven%d.h5", f);
        f4b[f] = strdup(tmp_path(name));
        lab = make_labels(n4b[f], f);
        write_raw(f4b[f], &o, n4b[f], lab, f);
        free(lab);
    }
    for (int P = 1; P <= 3; P++)
        check_epoch(f4, 4, n4, P, 4, P < 3);
    for (int P = 1; P <= 3; P++)
        check_epoch(f4b, 4, n4b, P, 3, 0);
    for (int f = 0; f < 4; f++)
        free((void *)f4[f]), free((void *)f4b[f]);
}

/* data.train_limit: the first `limit` samples of each file and no other,
 * sharded as if the file held only those; a limit above the size is a no-op. */
static void test_limit(void) {
    Raw o = raw_default();
    char(*lab)[16] = make_labels(40, 0);
    const char *path = tmp_path("limit.h5");
    write_raw(path, &o, 40, lab, 0);
    free(lab);
    const char *files[] = {path};
    for (int P = 1; P <= 2; P++) {
        long seen[40] = {0}, total = 0, bad = 0;
        for (int r = 0; r < P; r++) {
            LoaderConf c = {.files = files, .nfiles = 1, .rank = r, .world = P, .batch_size = 2,
                            .seed = 5, .train = 1, .limit = 13};
            Loader *l = NULL;
            Err err = {0};
            CHECK(loader_open(&l, &c, &err) == 0, "limit 13, rank %d of %d: %s", r, P, err.msg);
            if (!l) continue;
            long want = 13L * (r + 1) / P - 13L * r / P;
            CHECK(loader_shard_size(l) == want, "limit 13, rank %d of %d: shard %ld, want %ld", r,
                  P, loader_shard_size(l), want);
            for (long s = 0; s < 3 * loader_steps_per_epoch(l); s++) {
                const Batch *b;
                if (loader_next(l, &b, &err) || !b) break;
                for (int k = 0; k < b->B; k++) {
                    long i = b->index[k];
                    if (i < 0 || i >= 13)
                        bad++;
                    else if (!seen[i]++)
                        total++;
                }
            }
            loader_close(l);
        }
        /* index order, full batches of 2: sample 12 (P = 1) or each shard's
         * last odd one out (P = 2) is never drawn, 12 distinct in all */
        CHECK(bad == 0 && total == 12,
              "limit 13 on %d rank(s): %ld distinct samples below 13 seen (want 12), %ld at "
              "or above it",
              P, total, bad);
    }
    LoaderConf c = {.files = files, .nfiles = 1, .world = 1, .batch_size = 4, .train = 1,
                    .limit = 1000};
    Loader *l = NULL;
    Err err = {0};
    CHECK(loader_open(&l, &c, &err) == 0 && loader_shard_size(l) == 40,
          "a limit above the file's size changes nothing (%ld)", l ? loader_shard_size(l) : -1L);
    loader_close(l);
}

/* ---- order, resume, prefetch ---- */

/* Runs nb train batches from the loader's position, recording the indices
 * and (optionally) the images. */
static void run(Loader *l, long nb, long *idx, float *imgs, size_t img_len, int B) {
    const Batch *b;
    Err err;
    for (long s = 0; s < nb; s++) {
        if (loader_next(l, &b, &err) || !b) {
            printf("loader_next failed: %s\n", err.msg);
            return;
        }
        for (int k = 0; k < B; k++)
            idx[s * B + k] = b->index[k];
        if (imgs) memcpy(imgs + s * img_len, b->images, img_len * sizeof(float));
    }
}

static void test_order_and_resume(void) {
    const char *files[] = {tmp_path("one.h5")};
    const int B = 4, S = 12; /* 48 samples: 12 steps per epoch */
    long a[3 * 48], c[3 * 48], d[3 * 48];
    Loader *l = open_loader(files, 1, 0, 1, B, 1, 1, 1, 7);
    run(l, 3 * S, a, NULL, 0, B);
    loader_close(l);
    CHECK(memcmp(a, a + 48, 48 * sizeof(long)) != 0, "epoch 1 order differs from epoch 0");
    l = open_loader(files, 1, 0, 1, B, 1, 1, 0, 7);
    run(l, 3 * S, c, NULL, 0, B);
    loader_close(l);
    CHECK(memcmp(a, c, sizeof a) == 0, "same seed: same order (prefetch 1 vs 0)");
    l = open_loader(files, 1, 0, 1, B, 1, 1, 0, 8);
    run(l, S, d, NULL, 0, B);
    loader_close(l);
    CHECK(memcmp(a, d, 48 * sizeof(long)) != 0, "another seed: another order");
    l = open_loader(files, 1, 0, 1, B, 1, 0, 1, 7);
    run(l, S, d, NULL, 0, B);
    loader_close(l);
    int in_order = 1;
    for (int i = 0; i < 48; i++)
        in_order &= d[i] == i;
    CHECK(in_order, "shuffle=0 gives index order");

    /* resume at every point in the middle of epoch 1 and compare */
    for (int pf = 0; pf <= 1; pf++) {
        int bad = 0;
        for (long at = S - 1; at <= 2 * S + 1; at += 5) {
            l = open_loader(files, 1, 0, 1, B, 1, 1, pf, 7);
            run(l, 2, d, NULL, 0, B); /* something in flight before the seek */
            Err err;
            loader_seek(l, at / S, at % S, &err);
            long e, s;
            loader_tell(l, &e, &s);
            bad += e != at / S || s != at % S;
            run(l, 3 * S - at, d, NULL, 0, B);
            bad += memcmp(d, a + at * B, (size_t)(3 * S - at) * B * sizeof(long)) != 0;
            loader_tell(l, &e, &s);
            bad += e != 3 || s != 0;
            loader_close(l);
        }
        CHECK(bad == 0, "prefetch=%d: seek/tell resume the exact sequence (%d mismatches)", pf,
              bad);
    }
}

static void test_prefetch_equal(void) {
    const char *files[] = {tmp_path("odd.h5")};
    const int B = 5, H = 8, W = 12;
    size_t len = (size_t)B * H * W;
    long steps = 47 / B, nb = 2 * steps + 3;
    float *x0 = calloc((size_t)nb * len, sizeof(float)),
          *x1 = calloc((size_t)nb * len, sizeof(float));
    long *i0 = calloc((size_t)nb * B, sizeof(long)), *i1 = calloc((size_t)nb * B, sizeof(long));
    for (int pf = 0; pf <= 1; pf++) {
        LoaderConf c = {.files = files,
                        .nfiles = 1,
                        .rank = 0,
                        .world = 1,
                        .batch_size = B,
                        .shuffle = 1,
                        .augment = 1,
                        .seed = 3,
                        .train = 1,
                        .prefetch = pf};
        Loader *l;
        Err err;
        if (loader_open(&l, &c, &err)) {
            CHECK(0, "open: %s", err.msg);
            return;
        }
        run(l, nb, pf ? i1 : i0, pf ? x1 : x0, len, B);
        loader_close(l);
    }
    CHECK(memcmp(i0, i1, (size_t)nb * B * sizeof(long)) == 0, "prefetch: same samples as sync");
    CHECK_CLOSE("prefetch: same augmented images as sync", x1, x0, (size_t)nb * len, 0, 0);
    long changed = 0, out_of_range = 0;
    for (long s = 0; s < nb; s++)
        for (int k = 0; k < B; k++)
            for (int j = 0; j < H * W; j++) {
                float v = x0[s * len + (size_t)k * H * W + j];
                changed += v != pix(i0[s * B + k], j / W, j % W, 0) / 255.0f;
                out_of_range += v < 0 || v > 1;
            }
    /* the same sample in epoch 0 and epoch 1 gets another augmentation */
    long pos0 = -1, pos1 = steps * B;
    for (long j = 0; j < steps * B && pos0 < 0; j++)
        if (i0[j] == i0[pos1]) pos0 = j;
    CHECK(pos0 >= 0 && memcmp(x0 + (size_t)pos0 * H * W, x0 + (size_t)pos1 * H * W,
                              (size_t)H * W * sizeof(float)) != 0,
          "augmentation differs between epochs (sample %ld)", i0[pos1]);
    CHECK(changed > (long)(nb * len / 2) && out_of_range == 0,
          "augmentation changes images (%ld of %ld) and keeps [0,1]", changed, (long)(nb * len));

    /* eval: partial last batch, then NULL, same with and without prefetch */
    int Bs[2] = {0, 0}, nbat[2] = {0, 0};
    for (int pf = 0; pf <= 1; pf++) {
        Loader *l = open_loader(files, 1, 0, 1, B, 0, 1, pf, 1);
        const Batch *b;
        Err err;
        while (l && loader_next(l, &b, &err) == 0 && b)
            nbat[pf]++, Bs[pf] = b->B;
        CHECK(l && loader_next(l, &b, &err) == 0 && b == NULL, "eval stays done");
        loader_seek(l, 0, 0, &err);
        CHECK(loader_next(l, &b, &err) == 0 && b && b->index[0] == 0,
              "eval rewinds with seek(0,0)");
        loader_close(l);
    }
    CHECK(nbat[0] == 10 && nbat[1] == 10 && Bs[0] == 2 && Bs[1] == 2,
          "eval: 10 batches, last of 2 (got %d/%d, %d/%d)", nbat[0], nbat[1], Bs[0], Bs[1]);
    free(x0), free(x1), free(i0), free(i1);
}

/* ---- bad input ---- */

static void expect_data_error(const char *name, Raw o, int label_extra, const char *needle) {
    char(*lab)[16] = make_labels(20, 0);
    if (!strcmp(name, "badchar.h5")) strcpy(lab[3], "s0Q3");
    o.label_extra = label_extra;
    const char *path = tmp_path(name);
    write_raw(path, &o, 10, lab, 0);
    free(lab);
    const char *files[] = {path};
    LoaderConf c = {.files = files, .nfiles = 1, .world = 1, .batch_size = 2, .train = 1};
    Loader *l = NULL;
    Err err = {0};
    int rc = loader_open(&l, &c, &err);
    CHECK(rc == EXIT_DATA && strstr(err.msg, path) && strstr(err.msg, needle),
          "%s: rc %d, message '%s' (want the path and '%s')", name, rc, err.msg, needle);
    if (!strcmp(name, "badchar.h5")) {
        c.skip_bad = 1;
        rc = loader_open(&l, &c, &err);
        CHECK(rc == 0 && l && loader_skipped(l) == 1 && loader_shard_size(l) == 9,
              "skip_bad: 1 skipped, 9 kept");
        loader_close(l);
    }
}

static void test_errors(void) {
    Err err = {0};
    DatasetMeta m;
    const char *missing = tmp_path("missing.h5");
    CHECK(dataset_read_meta(missing, &m, &err) == EXIT_DATA && strstr(err.msg, missing),
          "missing file: %s", err.msg);
    const char *junk = tmp_path("junk.h5");
    FILE *f = fopen(junk, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    CHECK(dataset_read_meta(junk, &m, &err) == EXIT_DATA && strstr(err.msg, junk), "not HDF5: %s",
          err.msg);
    Raw o = raw_default();
    o.format = "ocrkd-checkpoint";
    expect_data_error("format.h5", o, 0, "'format'");
    o = raw_default();
    o.format = NULL;
    expect_data_error("noformat.h5", o, 0, "'format'");
    o = raw_default();
    o.version = 2;
    expect_data_error("version.h5", o, 0, "version 2");
    o = raw_default();
    o.img_kind = 2;
    expect_data_error("int16.h5", o, 0, "/images must be uint8");
    o = raw_default();
    o.img_h = 9;
    expect_data_error("shape.h5", o, 0, "height 8");
    o = raw_default();
    o.label_kind = 3;
    expect_data_error("intlabels.h5", o, 0, "/labels");
    o = raw_default();
    expect_data_error("count.h5", o, 3, "/labels has 13");
    o = raw_default();
    o.widths_kind = 3;
    expect_data_error("floatwidths.h5", o, 0, "/widths");
    o = raw_default();
    expect_data_error("badchar.h5", o, 0, "/labels[3]: character 'Q'");
    const char *one = tmp_path("one.h5"); /* 48 samples: 16 per rank of 3 */
    const char *files[] = {one};
    LoaderConf c = {
        .files = files, .nfiles = 1, .rank = 1, .world = 3, .batch_size = 20, .train = 1};
    Loader *l = NULL;
    int rc = loader_open(&l, &c, &err);
    CHECK(rc == EXIT_DATA && strstr(err.msg, one) && strstr(err.msg, "fewer than data.batch_size"),
          "shard smaller than a batch: %s", err.msg);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/test_dataset_XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_alphabet();
    test_round_trip();
    test_foreign();
    test_sharding();
    test_limit();
    test_order_and_resume();
    test_prefetch_equal();
    test_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) printf("could not remove %s\n", g_dir);
    TEST_END();
}
