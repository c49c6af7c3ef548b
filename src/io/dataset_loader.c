/* dataset_loader.c - the sharded batch loader (SPEC "Data sharding"): which
 * samples this rank owns, the per-epoch seeded order, equal step counts on
 * every rank without communication, exact resume (tell/seek), and a
 * prefetching thread with double buffering.
 *
 * Threading: once loader_open returns, only the producer (the background
 * thread, or the caller when prefetch = 0) reads images, and it does so
 * holding dataset_hdf5_lock(), so that it works with an HDF5 built without
 * thread safety too (Debian's is built thread-safe; see dataset.h).
 * Labels are read once at open (that is how skip_bad can drop samples) and
 * kept in memory, so a batch is one HDF5 read of its images. A file without
 * /labels (unlabeled, only when allow_unlabeled) gives samples with label
 * length 0 and labeled[k] = 0.
 * Not for the file format checks (dataset.c) or MPI (the loader never
 * communicates). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"
#include "ocrkd/h5util.h"

#define DEFAULT_CACHE_BYTES ((size_t)256 << 20)

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    Batch b;
    int state, end, rc; /* end: the eval pass is over; rc: the error of this read */
    long epoch, step;
    Err err;
} Slot;

typedef struct {
    long pos; /* position in the shard arrays */
    int k;    /* slot in the batch */
    int row;  /* row of the staging buffer holding its image */
} Pick;

struct Loader {
    LoaderConf c;
    char **paths;
    int H, W;
    Alphabet alpha;
    hid_t *file, *images, *space; /* (nfiles); -1 for files this rank does not read */
    unsigned char *file_labeled;  /* (nfiles) 1: the file has /labels */
    /* the shard in (file, index) order, bad labels dropped */
    long M, raw, skipped, steps, unlabeled;
    int max_len;
    int *s_file;
    long *s_index;
    size_t *s_text; /* offsets into pool */
    char *pool;
    size_t pool_used, pool_cap;
    /* producer-only buffers */
    long *perm, perm_epoch;
    Pick *picks;
    uint8_t *staging;
    float *scratch;
    AugmentConf aug; /* a copy: the caller's may not outlive the open */
    Slot slots[2];
    /* consumer position: batches returned */
    long c_epoch, c_step;
    /* prefetch thread and what it shares with the caller (under mu) */
    int threaded, quit, stopped, held, cs, ps;
    unsigned gen;
    long p_epoch, p_step;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* ---- seeds ---- */

/* A seed for (seed, a, b, c) that differs whenever any of them does. */
static uint64_t seed_of(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t z = rng_mix64(seed + 0x9e3779b97f4a7c15ULL);
    z = rng_mix64(z ^ (a + 0x632be59bd9b4e019ULL));
    z = rng_mix64(z ^ (b + 0x85157af5ULL));
    return rng_mix64(z ^ (c + 0x2545f4914f6cdd1dULL));
}

/* ---- which samples a rank owns ---- */

/* Samples rank r owns before skipping, from the files' sizes alone. */
static long raw_shard_size(const long *n, int nfiles, int r, int P) {
    if (nfiles == 1) return n[0] * (r + 1) / P - n[0] * r / P;
    long s = 0;
    for (int i = r; i < nfiles; i += P)
        s += n[i];
    return s;
}

static int owns_file(const Loader *l, int i) {
    return l->c.nfiles == 1 || i % l->c.world == l->c.rank;
}

/* ---- open: metadata, alphabet, labels ---- */

static int check_same(const Loader *l, int i, const DatasetMeta *m, const DatasetMeta *m0,
                      Err *err) {
    if (m->height != m0->height || m->width != m0->width)
        return err_set(err, EXIT_DATA, "%s: images are %dx%d but %s's are %dx%d", l->paths[i],
                       m->height, m->width, l->paths[0], m0->height, m0->width);
    if (!(l->c.alphabet && l->c.alphabet[0]) && strcmp(m->alphabet, m0->alphabet) != 0)
        return err_set(err, EXIT_DATA, "%s: alphabet \"%.200s\" differs from %s's \"%.200s\"",
                       l->paths[i], m->alphabet, l->paths[0], m0->alphabet);
    return 0;
}

static int check_labeled(const Loader *l, int i, Err *err) {
    if (l->file_labeled[i] || l->c.allow_unlabeled) return 0;
    return err_set(err, EXIT_DATA,
                   "%s: an unlabeled file (no /labels): %s needs labels; only `ocrkd distill` "
                   "reads unlabeled files, in data.train",
                   l->paths[i], l->c.labels_for ? l->c.labels_for : "this command");
}

static int init_alphabet(Loader *l, const DatasetMeta *m0, Err *err) {
    Err e;
    if (l->c.alphabet && l->c.alphabet[0]) {
        if (alphabet_init(&l->alpha, l->c.alphabet, &e))
            return err_set(err, EXIT_USAGE, "model.alphabet: %s", e.msg);
        return 0;
    }
    if (alphabet_init(&l->alpha, m0->alphabet, &e))
        return err_set(err, EXIT_DATA, "%s: root attribute 'alphabet': %s", l->paths[0], e.msg);
    return 0;
}

/* Opens every file, checks it, keeps open those this rank reads; n gets the
 * sample counts. */
static int open_files(Loader *l, long *n, Err *err) {
    DatasetMeta m0 = {0}, m;
    int rc = 0;
    for (int i = 0; i < l->c.nfiles && !rc; i++) {
        hid_t f = h5_open_ro(l->paths[i]);
        if (f < 0) {
            FILE *probe = fopen(l->paths[i], "rb");
            rc = err_set(err, EXIT_DATA, "%s: %s", l->paths[i],
                         probe ? "not an HDF5 file"
                               : "cannot open dataset file (missing or "
                                 "unreadable)");
            if (probe) fclose(probe);
            break;
        }
        rc = ds_check_open(f, l->paths[i], i == 0 ? &m0 : &m, err);
        if (!rc) {
            const DatasetMeta *mi = i == 0 ? &m0 : &m;
            n[i] = dataset_limited(mi->n, l->c.limit);
            l->file_labeled[i] = (unsigned char)mi->labeled;
            rc = check_labeled(l, i, err);
        }
        if (!rc && i > 0) rc = check_same(l, i, &m, &m0, err);
        if (i > 0) dataset_meta_free(&m);
        if (!rc && owns_file(l, i))
            l->file[i] = f;
        else
            H5Fclose(f);
    }
    if (!rc) {
        l->H = m0.height, l->W = m0.width;
        rc = init_alphabet(l, &m0, err);
    }
    dataset_meta_free(&m0);
    return rc;
}

typedef struct {
    Loader *l;
    int file;
} ScanCtx;

static void shard_append(Loader *l, int file, long index, const char *text) {
    size_t len = strlen(text) + 1;
    if (l->pool_used + len > l->pool_cap) {
        l->pool_cap = 2 * (l->pool_used + len);
        l->pool = xrealloc(l->pool, l->pool_cap);
    }
    memcpy(l->pool + l->pool_used, text, len);
    l->s_file[l->M] = file;
    l->s_index[l->M] = index;
    l->s_text[l->M] = l->pool_used;
    l->pool_used += len;
    l->M++;
}

/* One label at open: check it against the alphabet, keep or skip it. */
static int scan_label(void *ctx, long index, const char *text, Err *err) {
    ScanCtx *sc = ctx;
    Loader *l = sc->l;
    uint32_t bad = 0;
    int r = alphabet_encode(&l->alpha, text, NULL, 0, &bad);
    if (r < 0 && l->c.skip_bad) {
        l->skipped++;
        return 0;
    }
    if (r == -1) {
        char b[32];
        return err_set(err, EXIT_DATA,
                       "%s: /labels[%ld]: character %s is not in the alphabet (label \"%.200s\"; "
                       "data.skip_bad_labels: true skips such samples)",
                       l->paths[sc->file], index, ds_cp_show(bad, b, sizeof b), text);
    }
    if (r == -2)
        return err_set(err, EXIT_DATA, "%s: /labels[%ld]: not valid UTF-8", l->paths[sc->file],
                       index);
    long len = utf8_count(text); /* valid: alphabet_encode passed */
    if (len > l->max_len) l->max_len = (int)len;
    shard_append(l, sc->file, index, text);
    return 0;
}

static int scan_shard(Loader *l, const long *n, Err *err) {
    l->s_file = xmalloc((size_t)MAX(l->raw, 1) * sizeof *l->s_file);
    l->s_index = xmalloc((size_t)MAX(l->raw, 1) * sizeof *l->s_index);
    l->s_text = xmalloc((size_t)MAX(l->raw, 1) * sizeof *l->s_text);
    l->pool_cap = (size_t)MAX(l->raw, 1) * 16;
    l->pool = xmalloc(l->pool_cap);
    int rc = 0;
    for (int i = 0; i < l->c.nfiles && !rc; i++) {
        if (l->file[i] < 0) continue;
        long lo = 0, hi = n[i];
        if (l->c.nfiles == 1) {
            lo = n[0] * l->c.rank / l->c.world;
            hi = n[0] * (l->c.rank + 1) / l->c.world;
        }
        if (!l->file_labeled[i]) {
            for (long k = lo; k < hi; k++)
                shard_append(l, i, k, "");
            l->unlabeled += hi - lo;
            continue;
        }
        ScanCtx sc = {l, i};
        rc = ds_walk_labels(l->file[i], l->paths[i], lo, hi - lo, scan_label, &sc, err);
    }
    if (l->max_len < 1) l->max_len = 1;
    return rc;
}

/* ---- open: image datasets with a sized chunk cache ---- */

static size_t next_prime(size_t n) {
    for (;; n++) {
        int prime = n > 1;
        for (size_t d = 2; d * d <= n && prime; d++)
            prime = n % d != 0;
        if (prime) return n;
    }
}

/* Bytes of one chunk of /images (0 if contiguous); *filtered: compressed. */
static size_t chunk_bytes(hid_t d, int *filtered) {
    hid_t p = H5Dget_create_plist(d);
    size_t bytes = 0;
    *filtered = 0;
    if (p >= 0 && H5Pget_layout(p) == H5D_CHUNKED) {
        hsize_t c[3] = {1, 1, 1};
        if (H5Pget_chunk(p, 3, c) == 3) bytes = (size_t)(c[0] * c[1] * c[2]);
        *filtered = H5Pget_nfilters(p) > 0;
    }
    if (p >= 0) H5Pclose(p);
    return bytes;
}

/* Opens /images of file i. Uncompressed chunks get no cache, so HDF5 reads
 * just the selected images; compressed chunks get a cache of `budget` bytes
 * (at least 4 chunks) so a chunk is decompressed once while it stays hot. */
static int open_images(Loader *l, int i, size_t budget, Err *err) {
    hid_t d = H5Dopen2(l->file[i], "/images", H5P_DEFAULT);
    if (d < 0)
        return err_set(err, EXIT_DATA, "%s: cannot open /images: %s", l->paths[i], h5_last_error());
    int filtered;
    size_t cb = chunk_bytes(d, &filtered);
    if (cb > 0) {
        H5Dclose(d);
        size_t bytes = filtered ? MAX(budget, 4 * cb) : 0;
        size_t slots = next_prime(MIN((size_t)1 << 20, MAX((size_t)521, 100 * (bytes / cb))));
        hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
        d = -1;
        if (dapl >= 0 && H5Pset_chunk_cache(dapl, slots, bytes, 0.75) >= 0)
            d = H5Dopen2(l->file[i], "/images", dapl);
        if (dapl >= 0) H5Pclose(dapl);
        if (d < 0)
            return err_set(err, EXIT_DATA, "%s: opening /images with a %zu-byte chunk cache: %s",
                           l->paths[i], bytes, h5_last_error());
    }
    l->images[i] = d;
    l->space[i] = H5Dget_space(d);
    if (l->space[i] < 0)
        return err_set(err, EXIT_DATA, "%s: /images: %s", l->paths[i], h5_last_error());
    return 0;
}

static int open_all_images(Loader *l, Err *err) {
    int nopen = 0;
    for (int i = 0; i < l->c.nfiles; i++)
        nopen += l->file[i] >= 0;
    size_t total = l->c.chunk_cache_bytes ? l->c.chunk_cache_bytes : DEFAULT_CACHE_BYTES;
    size_t budget = total / (size_t)MAX(nopen, 1);
    for (int i = 0; i < l->c.nfiles; i++)
        if (l->file[i] >= 0 && open_images(l, i, budget, err)) return EXIT_DATA;
    return 0;
}

/* ---- batches ---- */

static void batch_alloc(Batch *b, int cap, int H, int W, int max_len) {
    b->H = H, b->W = W, b->B = 0;
    b->images = xalloc_floats((size_t)cap * (size_t)H * (size_t)W);
    b->labels = xcalloc((size_t)cap * (size_t)max_len, sizeof *b->labels);
    b->label_lens = xcalloc((size_t)cap, sizeof *b->label_lens);
    b->index = xcalloc((size_t)cap, sizeof *b->index);
    b->file = xcalloc((size_t)cap, sizeof *b->file);
    b->texts = xcalloc((size_t)cap, sizeof *b->texts);
    b->labeled = xcalloc((size_t)cap, sizeof *b->labeled);
}

static void batch_free(Batch *b) {
    free(b->images);
    free(b->labels);
    free(b->label_lens);
    free(b->index);
    free(b->file);
    free(b->texts);
    free(b->labeled);
}

/* The epoch's order of shard positions: seeded Fisher-Yates, or identity. */
static void make_perm(Loader *l, long epoch) {
    for (long i = 0; i < l->M; i++)
        l->perm[i] = i;
    if (l->c.shuffle) {
        Rng r;
        rng_seed(&r, seed_of(l->c.seed, 1, (uint64_t)epoch, (uint64_t)l->c.rank));
        for (long i = l->M - 1; i > 0; i--) {
            long j = (long)rng_below(&r, (uint64_t)(i + 1));
            long t = l->perm[i];
            l->perm[i] = l->perm[j];
            l->perm[j] = t;
        }
    }
    l->perm_epoch = epoch;
}

/* Sorts picks by shard position (= file, then index). Insertion sort: a
 * batch is small and glibc's qsort may malloc, which the step loop avoids. */
static void sort_picks(Pick *p, int n) {
    for (int i = 1; i < n; i++) {
        Pick x = p[i];
        int j = i;
        for (; j > 0 && p[j - 1].pos > x.pos; j--)
            p[j] = p[j - 1];
        p[j] = x;
    }
}

/* The run of consecutive indices starting at picks[i] (one file, sorted;
 * a repeated pick shares the row of the previous one): its length in rows;
 * *end gets the first pick after it. */
static int run_length(const Loader *l, const Pick *p, int n, int i, int *end) {
    long start = l->s_index[p[i].pos];
    int j = i + 1, len = 1;
    while (j < n && (p[j].pos == p[j - 1].pos || l->s_index[p[j].pos] == start + len)) {
        if (p[j].pos != p[j - 1].pos) len++;
        j++;
    }
    *end = j;
    return len;
}

/* Images [start, start+len) of file f into dst: one regular hyperslab per
 * read, because HDF5 maps an irregular union of hyperslabs to chunks one
 * element at a time (measured 10x slower). */
static int read_run(Loader *l, int f, long start, int len, uint8_t *dst) {
    hsize_t off[3] = {(hsize_t)start, 0, 0};
    hsize_t cnt[3] = {(hsize_t)len, (hsize_t)l->H, (hsize_t)l->W};
    if (H5Sselect_hyperslab(l->space[f], H5S_SELECT_SET, off, NULL, cnt, NULL) < 0) return -1;
    hid_t ms = H5Screate_simple(3, cnt, NULL);
    int bad =
        ms < 0 || H5Dread(l->images[f], H5T_NATIVE_UINT8, ms, l->space[f], H5P_DEFAULT, dst) < 0;
    if (ms >= 0) H5Sclose(ms);
    return bad ? -1 : 0;
}

/* Reads the images of picks[0..n), all of file f, into staging rows from
 * row0 on, run by run; sets each pick's row and *used to the rows taken. */
static int read_file_images(Loader *l, int f, Pick *p, int n, int row0, int *used, Err *err) {
    size_t hw = (size_t)l->H * (size_t)l->W;
    int row = row0;
    for (int i = 0, end; i < n; i = end) {
        int len = run_length(l, p, n, i, &end);
        long start = l->s_index[p[i].pos];
        if (read_run(l, f, start, len, l->staging + (size_t)row * hw) < 0)
            return err_set(err, EXIT_DATA, "%s: reading /images[%ld..%ld]: %s", l->paths[f], start,
                           start + len - 1, h5_last_error());
        for (int k = i; k < end; k++)
            p[k].row = row + (int)(l->s_index[p[k].pos] - start);
        row += len;
    }
    *used = row - row0;
    return 0;
}

/* Reads the images of the sorted picks, grouped by file, under the HDF5 lock. */
static int read_images(Loader *l, Pick *p, int n, Err *err) {
    int rc = 0, row = 0;
    dataset_hdf5_lock();
    for (int i = 0; i < n && !rc;) {
        int f = l->s_file[p[i].pos], j = i, used = 0;
        while (j < n && l->s_file[p[j].pos] == f)
            j++;
        rc = read_file_images(l, f, p + i, j - i, row, &used, err);
        row += used;
        i = j;
    }
    dataset_hdf5_unlock();
    return rc;
}

/* Fills b from the picks (sorted, rows set): floats, labels, augmentation. */
static void fill_batch(Loader *l, Batch *b, const Pick *p, int n, long epoch, long step) {
    size_t hw = (size_t)l->H * (size_t)l->W;
    for (int i = 0; i < n; i++) {
        const uint8_t *src = l->staging + (size_t)p[i].row * hw;
        float *dst = b->images + (size_t)p[i].k * hw;
        for (size_t j = 0; j < hw; j++)
            dst[j] = (float)src[j] / 255.0f;
        b->index[p[i].k] = l->s_index[p[i].pos];
        b->file[p[i].k] = l->s_file[p[i].pos];
        b->texts[p[i].k] = l->pool + l->s_text[p[i].pos];
    }
    int off = 0;
    b->n_labeled = 0;
    for (int k = 0; k < n; k++) {
        b->labeled[k] = l->file_labeled[b->file[k]];
        b->n_labeled += b->labeled[k];
        int len = alphabet_encode(&l->alpha, b->texts[k], b->labels + off, l->max_len, NULL);
        b->label_lens[k] = MAX(len, 0); /* checked at open, so never negative; "" if unlabeled */
        off += b->label_lens[k];
    }
    if (l->c.augment && l->c.train) {
        Rng r;
        rng_seed(&r, seed_of(l->c.seed, 2, (uint64_t)epoch,
                             (uint64_t)step * (uint64_t)l->c.world + (uint64_t)l->c.rank));
        for (int k = 0; k < n; k++)
            ds_augment(b->images + (size_t)k * hw, l->H, l->W, l->scratch, &l->aug, &r);
    }
    b->B = n;
}

/* Batch `step` of `epoch` into s->b: the whole read, deterministic in
 * (epoch, step), so prefetching, seeking and prefetch = 0 agree. */
static int produce(Loader *l, Batch *b, long epoch, long step, Err *err) {
    int B = l->c.batch_size, n;
    if (l->c.train) {
        if (l->perm_epoch != epoch) make_perm(l, epoch);
        n = B;
        for (int k = 0; k < n; k++) /* % M: a shard shrunk by skip_bad repeats samples */
            l->picks[k] = (Pick){l->perm[((long)step * B + k) % l->M], k, 0};
    } else {
        n = (int)MIN((long)B, l->M - step * B);
        for (int k = 0; k < n; k++)
            l->picks[k] = (Pick){step * B + k, k, 0};
    }
    sort_picks(l->picks, n);
    int rc = read_images(l, l->picks, n, err);
    if (!rc) fill_batch(l, b, l->picks, n, epoch, step);
    return rc;
}

/* ---- positions ---- */

static void advance(const Loader *l, long *epoch, long *step) {
    (*step)++;
    if (l->c.train && *step >= l->steps) {
        (*epoch)++;
        *step = 0;
    }
}

/* ---- the prefetch thread ---- */

static void *producer_main(void *arg) {
    Loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->stopped || l->slots[l->ps].state != SLOT_FREE))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        Slot *s = &l->slots[l->ps];
        unsigned gen = l->gen;
        long epoch = l->p_epoch, step = l->p_step;
        int end = !l->c.train && step >= l->steps;
        s->state = SLOT_FILLING;
        pthread_mutex_unlock(&l->mu);
        int rc = end ? 0 : produce(l, &s->b, epoch, step, &s->err);
        pthread_mutex_lock(&l->mu);
        if (gen != l->gen) { /* a seek happened meanwhile: throw it away */
            s->state = SLOT_FREE;
            continue;
        }
        s->rc = rc, s->end = end, s->epoch = epoch, s->step = step;
        s->state = SLOT_READY;
        l->ps ^= 1;
        if (rc || end)
            l->stopped = 1;
        else
            advance(l, &l->p_epoch, &l->p_step);
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static int next_threaded(Loader *l, const Batch **out, Err *err) {
    pthread_mutex_lock(&l->mu);
    if (l->held >= 0) { /* the caller is done with the previous batch */
        l->slots[l->held].state = SLOT_FREE;
        l->held = -1;
        pthread_cond_broadcast(&l->cv);
    }
    while (l->slots[l->cs].state != SLOT_READY)
        pthread_cond_wait(&l->cv, &l->mu);
    Slot *s = &l->slots[l->cs];
    int rc = s->rc;
    if (rc) {
        if (err) *err = s->err;
    } else if (s->end) {
        *out = NULL;
    } else {
        s->state = SLOT_HELD;
        l->held = l->cs;
        l->cs ^= 1;
        l->c_epoch = s->epoch, l->c_step = s->step;
        advance(l, &l->c_epoch, &l->c_step);
        *out = &s->b;
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

static int next_sync(Loader *l, const Batch **out, Err *err) {
    if (!l->c.train && l->c_step >= l->steps) {
        *out = NULL;
        return 0;
    }
    int rc = produce(l, &l->slots[0].b, l->c_epoch, l->c_step, err);
    if (rc) return rc;
    advance(l, &l->c_epoch, &l->c_step);
    *out = &l->slots[0].b;
    return 0;
}

int loader_next(Loader *l, const Batch **out, Err *err) {
    *out = NULL;
    return l->threaded ? next_threaded(l, out, err) : next_sync(l, out, err);
}

void loader_tell(const Loader *l, long *epoch, long *step_in_epoch) {
    *epoch = l->c_epoch;
    *step_in_epoch = l->c_step;
}

int loader_seek(Loader *l, long epoch, long step, Err *err) {
    if (epoch < 0 || step < 0 || step > l->steps)
        return err_set(err, EXIT_USAGE,
                       "%s: cannot seek to epoch %ld, step %ld (%ld steps per "
                       "epoch)",
                       l->paths[0], epoch, step, l->steps);
    if (l->c.train && step == l->steps) epoch++, step = 0;
    if (!l->threaded) {
        l->c_epoch = epoch, l->c_step = step;
        return 0;
    }
    pthread_mutex_lock(&l->mu);
    l->gen++;
    l->c_epoch = l->p_epoch = epoch;
    l->c_step = l->p_step = step;
    l->ps = l->cs = 0;
    l->held = -1;
    l->stopped = 0;
    for (int i = 0; i < 2; i++)
        if (l->slots[i].state != SLOT_FILLING) l->slots[i].state = SLOT_FREE;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

/* ---- open / close ---- */

static int check_conf(const LoaderConf *c, Err *err) {
    if (!c->files || c->nfiles < 1) return err_set(err, EXIT_USAGE, "no data files given");
    if (c->batch_size < 1) return err_set(err, EXIT_USAGE, "batch size %d < 1", c->batch_size);
    if (c->world < 1 || c->rank < 0 || c->rank >= c->world)
        return err_set(err, EXIT_USAGE, "bad rank %d of %d", c->rank, c->world);
    return 0;
}

/* Steps per epoch: train: the smallest raw shard's full batches. */
static int plan_steps(Loader *l, const long *n, Err *err) {
    int B = l->c.batch_size;
    if (!l->c.train) {
        l->steps = (l->M + B - 1) / B;
        return 0;
    }
    l->steps = -1;
    for (int r = 0; r < l->c.world; r++) {
        long size = raw_shard_size(n, l->c.nfiles, r, l->c.world);
        if (size / B == 0)
            return err_set(err, EXIT_DATA,
                           "%s%s: rank %d of %d gets %ld samples, fewer than "
                           "data.batch_size %d",
                           l->paths[0], l->c.nfiles > 1 ? " (and the other shard files)" : "", r,
                           l->c.world, size, B);
        if (l->steps < 0 || size / B < l->steps) l->steps = size / B;
    }
    if (l->M == 0)
        return err_set(err, EXIT_DATA, "%s: rank %d has no usable sample (%ld skipped)",
                       l->paths[0], l->c.rank, l->skipped);
    return 0;
}

static void alloc_buffers(Loader *l) {
    int B = l->c.batch_size;
    l->perm = xmalloc((size_t)MAX(l->M, 1) * sizeof *l->perm);
    l->perm_epoch = -1;
    l->picks = xmalloc((size_t)B * sizeof *l->picks);
    l->staging = xmalloc((size_t)B * (size_t)l->H * (size_t)l->W);
    l->scratch = xalloc_floats((size_t)l->H * (size_t)l->W);
    for (int i = 0; i < 2; i++)
        batch_alloc(&l->slots[i].b, B, l->H, l->W, l->max_len);
}

static Loader *loader_new(const LoaderConf *c) {
    Loader *l = xcalloc(1, sizeof *l);
    l->c = *c;
    if (c->aug)
        l->aug = *c->aug;
    else
        augment_defaults(&l->aug);
    l->c.aug = &l->aug;
    l->paths = xcalloc((size_t)c->nfiles, sizeof *l->paths);
    l->file = xmalloc((size_t)c->nfiles * sizeof *l->file);
    l->images = xmalloc((size_t)c->nfiles * sizeof *l->images);
    l->space = xmalloc((size_t)c->nfiles * sizeof *l->space);
    l->file_labeled = xcalloc((size_t)c->nfiles, 1);
    for (int i = 0; i < c->nfiles; i++) {
        l->paths[i] = xstrdup(c->files[i]);
        l->file[i] = l->images[i] = l->space[i] = -1;
    }
    l->c.files = (const char *const *)l->paths;
    l->c.alphabet = c->alphabet ? xstrdup(c->alphabet) : NULL;
    l->held = -1;
    return l;
}

int loader_open(Loader **out, const LoaderConf *c, Err *err) {
    *out = NULL;
    int rc = check_conf(c, err);
    if (rc) return rc;
    Loader *l = loader_new(c);
    long *n = xcalloc((size_t)c->nfiles, sizeof *n);
    dataset_hdf5_lock();
    h5_quiet();
    rc = open_files(l, n, err);
    if (!rc) {
        l->raw = raw_shard_size(n, c->nfiles, c->rank, c->world);
        rc = scan_shard(l, n, err);
    }
    if (!rc) rc = open_all_images(l, err);
    dataset_hdf5_unlock();
    if (!rc) rc = plan_steps(l, n, err);
    free(n);
    if (rc) {
        loader_close(l);
        return rc;
    }
    alloc_buffers(l);
    if (c->prefetch) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (pthread_create(&l->thread, NULL, producer_main, l) != 0) {
            loader_close(l);
            return err_set(err, EXIT_DATA, "%s: cannot start the prefetch thread", c->files[0]);
        }
        l->threaded = 1;
    }
    *out = l;
    return 0;
}

static void close_hdf5(Loader *l) {
    dataset_hdf5_lock();
    for (int i = 0; i < l->c.nfiles; i++) {
        if (l->space[i] >= 0) H5Sclose(l->space[i]);
        if (l->images[i] >= 0) H5Dclose(l->images[i]);
        if (l->file[i] >= 0) H5Fclose(l->file[i]);
    }
    dataset_hdf5_unlock();
}

void loader_close(Loader *l) {
    if (!l) return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    close_hdf5(l);
    for (int i = 0; i < 2; i++)
        batch_free(&l->slots[i].b);
    for (int i = 0; i < l->c.nfiles; i++)
        free(l->paths[i]);
    free(l->paths);
    free((char *)l->c.alphabet);
    free(l->file);
    free(l->images);
    free(l->space);
    free(l->file_labeled);
    free(l->s_file);
    free(l->s_index);
    free(l->s_text);
    free(l->pool);
    free(l->perm);
    free(l->picks);
    free(l->staging);
    free(l->scratch);
    alphabet_free(&l->alpha);
    free(l);
}

/* ---- queries ---- */

long loader_steps_per_epoch(const Loader *l) {
    return l->steps;
}
long loader_shard_size(const Loader *l) {
    return l->M;
}
long loader_skipped(const Loader *l) {
    return l->skipped;
}
long loader_unlabeled(const Loader *l) {
    return l->unlabeled;
}
int loader_width(const Loader *l) {
    return l->W;
}
const Alphabet *loader_alphabet(const Loader *l) {
    return &l->alpha;
}
int loader_max_label_len(const Loader *l) {
    return l->max_len;
}
