/* dataset.c - the dataset file format (SPEC "Dataset file"): the alphabet and
 * UTF-8 label encoding, the checks a file must pass (and the height check of
 * its consumers), the block label reader and `ocrkd info FILE.h5`. Not for
 * writing files (dataset_writer.c), for batches and shards
 * (dataset_loader.c) or for augmentation (dataset_augment.c). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"
#include "ocrkd/h5util.h"
#include "ocrkd/model.h"

/* ---- the process-wide HDF5 lock (see dataset.h) ---- */

/* Recursive: the ckpt_* functions take it and may call each other, and
 * callers that still hold it around them keep working. */
static pthread_mutex_t g_hdf5_mutex;
static pthread_once_t g_hdf5_once = PTHREAD_ONCE_INIT;
static void hdf5_mutex_init(void) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_hdf5_mutex, &a);
    pthread_mutexattr_destroy(&a);
}
void dataset_hdf5_lock(void) {
    pthread_once(&g_hdf5_once, hdf5_mutex_init);
    pthread_mutex_lock(&g_hdf5_mutex);
}
void dataset_hdf5_unlock(void) {
    pthread_mutex_unlock(&g_hdf5_mutex);
}

/* ---- alphabet ---- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

const char *ds_cp_show(uint32_t cp, char *buf, size_t cap) {
    char u[5] = {0};
    if (cp >= 0x20 && cp != 0x7F) utf8_put(cp, u);
    snprintf(buf, cap, "'%s' (U+%04X)", u, (unsigned)cp);
    return buf;
}

int alphabet_init(Alphabet *a, const char *utf8, Err *err) {
    memset(a, 0, sizeof *a);
    size_t len = strlen(utf8);
    if (len == 0) return err_set(err, EXIT_USAGE, "alphabet is empty");
    a->cps = xmalloc(len * sizeof *a->cps);
    a->lookup = xmalloc(len * sizeof *a->lookup);
    const char *p = utf8;
    uint32_t cp;
    int r;
    while ((r = utf8_next(&p, &cp)) == 1) {
        a->cps[a->n] = cp;
        a->lookup[a->n] = ((uint64_t)cp << 32) | (uint64_t)(a->n + 1);
        a->n++;
    }
    if (r < 0) {
        alphabet_free(a);
        return err_set(err, EXIT_USAGE, "alphabet is not valid UTF-8 (at byte %ld)",
                       (long)(p - utf8));
    }
    qsort(a->lookup, (size_t)a->n, sizeof *a->lookup, cmp_u64);
    for (int i = 1; i < a->n; i++) {
        if ((a->lookup[i] >> 32) == (a->lookup[i - 1] >> 32)) {
            char b[32];
            ds_cp_show((uint32_t)(a->lookup[i] >> 32), b, sizeof b);
            alphabet_free(a);
            return err_set(err, EXIT_USAGE, "alphabet repeats the character %s", b);
        }
    }
    a->utf8 = xstrdup(utf8);
    return 0;
}

void alphabet_free(Alphabet *a) {
    free(a->utf8);
    free(a->cps);
    free(a->lookup);
    memset(a, 0, sizeof *a);
}

int alphabet_id(const Alphabet *a, uint32_t cp) {
    long lo = 0, hi = a->n - 1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        uint32_t c = (uint32_t)(a->lookup[mid] >> 32);
        if (c == cp) return (int)(a->lookup[mid] & 0xFFFFFFFFu);
        if (c < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return 0;
}

/* Validates the whole label even past cap, so a bad character is never
 * hidden by truncation; returns the ids written (min(length, cap)). */
int alphabet_encode(const Alphabet *a, const char *label, int *ids, int cap, uint32_t *bad_cp) {
    int n = 0, r;
    uint32_t cp;
    while ((r = utf8_next(&label, &cp)) == 1) {
        int id = alphabet_id(a, cp);
        if (id == 0) {
            if (bad_cp) *bad_cp = cp;
            return -1;
        }
        if (n < cap) ids[n] = id;
        n++;
    }
    if (r < 0) return -2;
    return MIN(n, cap);
}

void alphabet_decode(const Alphabet *a, const int *ids, int n, char *out, size_t cap) {
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 1 || ids[i] > a->n) continue;
        char u[4];
        int k = utf8_put(a->cps[ids[i] - 1], u);
        if (used + (size_t)k + 1 > cap) break; /* never split a character */
        memcpy(out + used, u, (size_t)k);
        used += (size_t)k;
    }
    if (cap) out[used] = 0;
}

/* ---- the checks every dataset file must pass ---- */

static int check_attrs(hid_t f, const char *path, DatasetMeta *m, Err *err) {
    char *fmt = NULL;
    if (h5_attr_read_string(f, "format", &fmt) != 0)
        return err_set(err, EXIT_DATA,
                       "%s: root attribute 'format' is missing or not a string (not an ocrkd "
                       "dataset?)",
                       path);
    int bad = strcmp(fmt, DATASET_FORMAT) != 0;
    if (bad)
        err_set(err, EXIT_DATA, "%s: root attribute 'format' is '%.64s', expected '%s'", path, fmt,
                DATASET_FORMAT);
    free(fmt);
    if (bad) return EXIT_DATA;
    long version, h, w;
    if (h5_attr_read_long(f, "version", &version) != 0)
        return err_set(err, EXIT_DATA, "%s: root attribute 'version' is missing or not an integer",
                       path);
    if (version != DATASET_VERSION)
        return err_set(err, EXIT_DATA, "%s: dataset version %ld is not supported (this is %d)",
                       path, version, DATASET_VERSION);
    if (h5_attr_read_long(f, "height", &h) != 0 || h < 1 || h > 65535)
        return err_set(err, EXIT_DATA,
                       "%s: root attribute 'height' is missing or not a positive "
                       "integer",
                       path);
    if (h5_attr_read_long(f, "width", &w) != 0 || w < 1 || w > 1 << 20)
        return err_set(err, EXIT_DATA,
                       "%s: root attribute 'width' is missing or not a positive "
                       "integer",
                       path);
    if (h5_attr_read_string(f, "alphabet", &m->alphabet) != 0)
        return err_set(err, EXIT_DATA, "%s: root attribute 'alphabet' is missing or not a string",
                       path);
    m->height = (int)h;
    m->width = (int)w;
    return 0;
}

/* Opens dataset name and checks its class and rank; dims gets the shape. */
static hid_t open_checked(hid_t f, const char *path, const char *name, H5T_class_t cls, int rank,
                          hsize_t *dims, hid_t *type_out, Err *err) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) {
        err_set(err, EXIT_DATA, "%s: dataset %s is missing", path, name);
        return -1;
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) {
        err_set(err, EXIT_DATA, "%s: cannot open dataset %s: %s", path, name, h5_last_error());
        return -1;
    }
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int ok = t >= 0 && H5Tget_class(t) == cls && nd == rank;
    if (ok) H5Sget_simple_extent_dims(sp, dims, NULL);
    if (sp >= 0) H5Sclose(sp);
    if (!ok) {
        const char *what = cls == H5T_STRING ? "strings" : "integers";
        err_set(err, EXIT_DATA,
                "%s: dataset %s must be %d-D %s (found a %d-D dataset of another "
                "type or shape)",
                path, name, rank, what, nd);
        if (t >= 0) H5Tclose(t);
        H5Dclose(d);
        return -1;
    }
    if (type_out)
        *type_out = t;
    else
        H5Tclose(t);
    return d;
}

static int check_images(hid_t f, const char *path, DatasetMeta *m, Err *err) {
    hsize_t dims[3];
    hid_t t;
    hid_t d = open_checked(f, path, "/images", H5T_INTEGER, 3, dims, &t, err);
    if (d < 0) return EXIT_DATA;
    int u8 = H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE;
    H5Tclose(t);
    H5Dclose(d);
    if (!u8) return err_set(err, EXIT_DATA, "%s: dataset /images must be uint8", path);
    if ((long)dims[1] != m->height || (long)dims[2] != m->width)
        return err_set(err, EXIT_DATA,
                       "%s: dataset /images is [%llu, %llu, %llu] but the attributes say height "
                       "%d, width %d",
                       path, (unsigned long long)dims[0], (unsigned long long)dims[1],
                       (unsigned long long)dims[2], m->height, m->width);
    m->n = (long)dims[0];
    return 0;
}

static int check_vector(hid_t f, const char *path, const char *name, H5T_class_t cls, long n,
                        Err *err) {
    hsize_t dims[1];
    hid_t d = open_checked(f, path, name, cls, 1, dims, NULL, err);
    if (d < 0) return EXIT_DATA;
    H5Dclose(d);
    if ((long)dims[0] != n)
        return err_set(err, EXIT_DATA, "%s: dataset %s has %llu entries but /images has %ld", path,
                       name, (unsigned long long)dims[0], n);
    return 0;
}

int ds_check_open(hid_t f, const char *path, DatasetMeta *m, Err *err) {
    memset(m, 0, sizeof *m);
    int rc = check_attrs(f, path, m, err);
    if (!rc) rc = check_images(f, path, m, err);
    m->labeled = !rc && H5Lexists(f, "/labels", H5P_DEFAULT) > 0; /* absent: unlabeled */
    if (!rc && m->labeled) rc = check_vector(f, path, "/labels", H5T_STRING, m->n, err);
    if (!rc && H5Lexists(f, "/widths", H5P_DEFAULT) > 0) {
        rc = check_vector(f, path, "/widths", H5T_INTEGER, m->n, err);
        m->has_widths = 1;
    }
    if (rc) dataset_meta_free(m);
    return rc;
}

static hid_t open_file(const char *path, Err *err) {
    h5_quiet();
    hid_t f = h5_open_ro(path);
    if (f < 0) {
        FILE *probe = fopen(path, "rb");
        if (!probe)
            err_set(err, EXIT_DATA, "%s: cannot open dataset file (missing or unreadable)", path);
        else
            err_set(err, EXIT_DATA, "%s: not an HDF5 file (%s)", path, h5_last_error());
        if (probe) fclose(probe);
    }
    return f;
}

int dataset_read_meta(const char *path, DatasetMeta *m, Err *err) {
    memset(m, 0, sizeof *m);
    dataset_hdf5_lock();
    hid_t f = open_file(path, err);
    int rc = f < 0 ? EXIT_DATA : ds_check_open(f, path, m, err);
    if (f >= 0) H5Fclose(f);
    dataset_hdf5_unlock();
    return rc;
}

void dataset_meta_free(DatasetMeta *m) {
    free(m->alphabet);
    memset(m, 0, sizeof *m);
}

int dataset_check_height(const char *path, int height, Err *err) {
    DatasetMeta m;
    int rc = dataset_read_meta(path, &m, err);
    if (!rc && m.height != height)
        rc = err_set(err, EXIT_DATA,
                     "%s: images are %d pixels high but the model's input is %d: refused rather "
                     "than read as if they were (re-pack the images with ocrkd-pack --height %d)",
                     path, m.height, height, height);
    dataset_meta_free(&m);
    return rc;
}

/* ---- labels, in blocks ---- */

enum { LABEL_BLOCK = 4096 };

/* Reads labels [start, start+n) of d into texts (vlen: pointers owned by
 * HDF5, reclaimed by the caller; fixed: into fixbuf, size+1 bytes each). */
static int read_label_block(hid_t d, hid_t ft, long start, long n, char **texts, char *fixbuf,
                            hid_t *mt_out) {
    hid_t fs = H5Dget_space(d);
    hsize_t off[1] = {(hsize_t)start}, cnt[1] = {(hsize_t)n};
    hid_t ms = H5Screate_simple(1, cnt, NULL);
    hid_t mt = H5Tcopy(H5T_C_S1);
    int vlen = H5Tis_variable_str(ft) > 0;
    size_t size = vlen ? 0 : H5Tget_size(ft);
    H5Tset_cset(mt, H5Tget_cset(ft));
    if (vlen) {
        H5Tset_size(mt, H5T_VARIABLE);
    } else {
        H5Tset_size(mt, size + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
    }
    int rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0) {
        memset(texts, 0, (size_t)n * sizeof *texts);
        rc =
            H5Dread(d, mt, ms, fs, H5P_DEFAULT, vlen ? (void *)texts : (void *)fixbuf) < 0 ? -1 : 0;
        if (!rc && !vlen) {
            int spaced = H5Tget_strpad(ft) == H5T_STR_SPACEPAD;
            for (long i = 0; i < n; i++) {
                char *s = fixbuf + (size_t)i * (size + 1);
                size_t len = strlen(s);
                while (spaced && len > 0 && s[len - 1] == ' ')
                    s[--len] = 0;
                texts[i] = s;
            }
        }
    }
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (rc == 0 && vlen) {
        *mt_out = mt; /* needed to reclaim the strings */
    } else {
        *mt_out = -1;
        H5Tclose(mt);
    }
    return rc;
}

static void reclaim_vlen(hid_t mt, long n, char **texts) {
    hsize_t cnt[1] = {(hsize_t)n};
    hid_t ms = H5Screate_simple(1, cnt, NULL);
#if H5_VERSION_GE(1, 12, 0)
    H5Treclaim(mt, ms, H5P_DEFAULT, texts);
#else
    H5Dvlen_reclaim(mt, ms, H5P_DEFAULT, texts);
#endif
    H5Sclose(ms);
    H5Tclose(mt);
}

int ds_walk_labels(hid_t f, const char *path, long start, long count, LabelFn fn, void *ctx,
                   Err *err) {
    hid_t d = H5Dopen2(f, "/labels", H5P_DEFAULT);
    hid_t ft = d >= 0 ? H5Dget_type(d) : -1;
    if (ft < 0) {
        if (d >= 0) H5Dclose(d);
        return err_set(err, EXIT_DATA, "%s: cannot open /labels: %s", path, h5_last_error());
    }
    size_t fixed = H5Tis_variable_str(ft) > 0 ? 0 : H5Tget_size(ft) + 1;
    long block = MIN(count, (long)LABEL_BLOCK);
    char **texts = xmalloc((size_t)MAX(block, 1) * sizeof *texts);
    char *fixbuf = fixed ? xmalloc((size_t)MAX(block, 1) * fixed) : NULL;
    int rc = 0;
    for (long b = 0; b < count && !rc; b += block) {
        long n = MIN(block, count - b);
        hid_t mt;
        if (read_label_block(d, ft, start + b, n, texts, fixbuf, &mt) != 0) {
            rc = err_set(err, EXIT_DATA, "%s: reading /labels[%ld..%ld]: %s", path, start + b,
                         start + b + n - 1, h5_last_error());
            break;
        }
        for (long i = 0; i < n && !rc; i++)
            rc = fn(ctx, start + b + i, texts[i] ? texts[i] : "", err);
        if (mt >= 0) reclaim_vlen(mt, n, texts);
    }
    free(texts);
    free(fixbuf);
    H5Tclose(ft);
    H5Dclose(d);
    return rc;
}

/* ---- `ocrkd info FILE.h5` ---- */

enum { SHOW_LABELS = 5 };

typedef struct {
    long n, len_min, len_max, bad_utf8;
    double len_sum;
    char *first[SHOW_LABELS];
} LabelStats;

static int stats_label(void *ctx, long index, const char *text, Err *err) {
    (void)err;
    LabelStats *s = ctx;
    if (index < SHOW_LABELS) s->first[index] = xstrdup(text);
    long len = utf8_count(text);
    if (len < 0) {
        s->bad_utf8++;
        return 0;
    }
    if (s->n == 0 || len < s->len_min) s->len_min = len;
    if (len > s->len_max) s->len_max = len;
    s->len_sum += (double)len;
    s->n++;
    return 0;
}

static void print_label_stats(LabelStats *s, FILE *out) {
    if (s->n > 0)
        fprintf(out, "  labels    length min %ld, mean %.1f, max %ld (characters)\n", s->len_min,
                s->len_sum / (double)s->n, s->len_max);
    if (s->bad_utf8) fprintf(out, "  warning   %ld labels are not valid UTF-8\n", s->bad_utf8);
    for (int i = 0; i < SHOW_LABELS; i++) {
        if (s->first[i]) fprintf(out, "  [%d]       \"%s\"\n", i, s->first[i]);
        free(s->first[i]);
    }
}

/* Prints the storage layout of /images: chunk shape and filters. */
static void describe_layout(hid_t f, FILE *out) {
    hid_t d = H5Dopen2(f, "/images", H5P_DEFAULT);
    hid_t p = d >= 0 ? H5Dget_create_plist(d) : -1;
    if (p >= 0 && H5Pget_layout(p) == H5D_CHUNKED) {
        hsize_t c[3] = {0, 0, 0};
        H5Pget_chunk(p, 3, c);
        int gzip =
            H5Pget_filter_by_id2(p, H5Z_FILTER_DEFLATE, NULL, NULL, NULL, 0, NULL, NULL) >= 0;
        fprintf(out, "  storage   chunks of %llu images%s\n", (unsigned long long)c[0],
                gzip                     ? ", gzip"
                : H5Pget_nfilters(p) > 0 ? ", filtered"
                                         : "");
    } else if (p >= 0) {
        fprintf(out, "  storage   contiguous\n");
    }
    if (p >= 0) H5Pclose(p);
    if (d >= 0) H5Dclose(d);
}

static int describe_widths(hid_t f, const char *path, long n, FILE *out, Err *err) {
    if (n == 0) return 0;
    long long *w = xmalloc((size_t)n * sizeof *w);
    hid_t d = H5Dopen2(f, "/widths", H5P_DEFAULT);
    int rc = d < 0 || H5Dread(d, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, w) < 0;
    if (d >= 0) H5Dclose(d);
    if (rc) {
        free(w);
        return err_set(err, EXIT_DATA, "%s: reading /widths: %s", path, h5_last_error());
    }
    long long lo = w[0], hi = w[0];
    double sum = 0;
    for (long i = 0; i < n; i++) {
        lo = MIN(lo, w[i]);
        hi = MAX(hi, w[i]);
        sum += (double)w[i];
    }
    fprintf(out, "  widths    min %lld, mean %.1f, max %lld\n", lo, sum / (double)n, hi);
    free(w);
    return 0;
}

static int describe_open(hid_t f, const char *path, FILE *out, Err *err) {
    DatasetMeta m;
    int rc = ds_check_open(f, path, &m, err);
    if (rc) return rc;
    fprintf(out, "%s: %s version %d%s\n", path, DATASET_FORMAT, DATASET_VERSION,
            m.labeled ? "" : ", unlabeled");
    fprintf(out, "  samples   %ld\n", m.n);
    fprintf(out, "  images    %d x %d uint8 (height x width)\n", m.height, m.width);
    if (m.height != IMAGE_H)
        fprintf(out,
                "  note      height %d is not the model's input height %d: train, distill, "
                "eval and predict refuse this file\n",
                m.height, IMAGE_H);
    describe_layout(f, out);
    fprintf(out, "  alphabet  %ld symbols: \"%s\"\n", utf8_count(m.alphabet), m.alphabet);
    if (m.has_widths) rc = describe_widths(f, path, m.n, out, err);
    if (!m.labeled) {
        fprintf(out, "  labels    none: unlabeled (only `ocrkd distill` reads it, in data.train; "
                     "the alphabet is not used)\n");
    } else {
        LabelStats s = {0};
        if (!rc) rc = ds_walk_labels(f, path, 0, m.n, stats_label, &s, err);
        print_label_stats(&s, out);
    }
    dataset_meta_free(&m);
    return rc;
}

int dataset_describe(const char *path, FILE *out, Err *err) {
    dataset_hdf5_lock();
    hid_t f = open_file(path, err);
    int rc = f < 0 ? EXIT_DATA : describe_open(f, path, out, err);
    if (f >= 0) H5Fclose(f);
    dataset_hdf5_unlock();
    return rc;
}
