/* dataset.h - the HDF5 dataset format (SPEC "Dataset file"): writer, reader,
 * the sharded loader with a prefetching thread, label encoding, augmentation.
 *
 * Errors return EXIT_DATA through Err with a message naming the file and the
 * dataset ("data/train.h5: /labels[17]: character 'Q' is not in the
 * alphabet"). Not for image decoding (image.h) or MPI (the loader takes rank
 * and world size as numbers and never communicates). */
#ifndef OCRKD_DATASET_H
#define OCRKD_DATASET_H

#include <stdint.h>

#include "ocrkd/augment.h"
#include "ocrkd/common.h"

#define DATASET_FORMAT "ocrkd-dataset"
#define DATASET_VERSION 1

/* ---- alphabet: UTF-8 string of distinct code points; class id = index + 1 ---- */
typedef struct {
    char *utf8;       /* the alphabet text */
    uint32_t *cps;    /* its code points */
    int n;            /* number of symbols; K = n + 1 classes */
    uint64_t *lookup; /* internal: sorted (cp << 32 | id), for alphabet_id */
} Alphabet;
/* Fails (EXIT_USAGE) on invalid UTF-8, empty or repeated symbols. */
int alphabet_init(Alphabet *a, const char *utf8, Err *err);
void alphabet_free(Alphabet *a);
/* Class id (1..n) of code point cp, or 0 if not in the alphabet. */
int alphabet_id(const Alphabet *a, uint32_t cp);
/* Encodes a UTF-8 label into ids (at most cap); returns the count, or -1 if
 * a character is missing (its code point in *bad_cp), or -2 on bad UTF-8. */
int alphabet_encode(const Alphabet *a, const char *label, int *ids, int cap, uint32_t *bad_cp);
/* Decodes ids (1..n) into UTF-8 text in out (size cap, NUL-terminated). */
void alphabet_decode(const Alphabet *a, const int *ids, int n, char *out, size_t cap);

/* Debian's HDF5 is built thread-safe (libhdf5.settings: "Threadsafety: yes"),
 * but ocrkd also builds against HDF5s that are not (a cluster's module, a
 * --disable-threadsafe build). While a prefetching loader is open its thread
 * makes HDF5 calls, so every other HDF5 call in the process holds this lock.
 * The functions of this header, the ckpt_* functions and the logits writer
 * take it themselves; hold it around your own HDF5 work. Recursive. */
void dataset_hdf5_lock(void);
void dataset_hdf5_unlock(void);

/* ---- file-level metadata ---- */
typedef struct {
    long n; /* number of samples */
    int height, width;
    char *alphabet; /* the file's alphabet attribute (malloc'd) */
    int has_widths;
    int labeled; /* 1: /labels present; 0: an unlabeled file (only distill's data.train) */
} DatasetMeta;
/* Opens read-only (file locking off), checks format, version, dtypes and
 * shapes. /labels may be absent (m->labeled = 0). */
int dataset_read_meta(const char *path, DatasetMeta *m, Err *err);
void dataset_meta_free(DatasetMeta *m);
/* EXIT_DATA, naming the file and both heights, unless path's images are
 * `height` pixels high: consumers of a model refuse other heights rather
 * than read the pixels as if they fitted (doc/data.md). */
int dataset_check_height(const char *path, int height, Err *err);
/* `ocrkd info FILE.h5`: count, image size, alphabet, label length stats,
 * a few example labels, printed to out. */
int dataset_describe(const char *path, FILE *out, Err *err);

/* ---- writer (synth, pack, tests): UTF-8 vlen labels, int32 widths ---- */
typedef struct DatasetWriter DatasetWriter;
/* Writes to "PATH.tmp" (chunked along N, gzip level `gzip` 0..9, 0 = off);
 * dswriter_close flushes, fsyncs and renames to PATH. */
int dswriter_open(DatasetWriter **w, const char *path, int height, int width, const char *alphabet,
                  int gzip, Err *err);
/* img (height,width) uint8; used_width <= width. */
/* An unlabeled file: no /labels; dswriter_add then takes label NULL. The
 * alphabet attribute is still written (SPEC), for the record only. */
int dswriter_open_unlabeled(DatasetWriter **w, const char *path, int height, int width,
                            const char *alphabet, int gzip, Err *err);
int dswriter_add(DatasetWriter *w, const uint8_t *img, int used_width, const char *label, Err *err);
int dswriter_close(DatasetWriter *w, Err *err);
void dswriter_abort(DatasetWriter *w); /* removes the temporary file */

/* ---- batches ---- */
typedef struct {
    int B; /* samples in this batch (may be < capacity at the end of eval) */
    int H, W;
    float *images;   /* (B,1,H,W) floats in [0,1] */
    int *labels;     /* concatenated class ids */
    int *label_lens; /* (B) */
    long *index;     /* (B) sample index within its file */
    int *file;       /* (B) index of the file in the loader's list */
    char **texts;    /* (B) the UTF-8 labels as stored ("" when unlabeled) */
    unsigned char *labeled; /* (B) 1: the sample has a label; NULL: all have */
    int n_labeled;          /* samples with a label (B when labeled is NULL) */
} Batch;

/* ---- loader: SPEC "Data sharding" ---- */
typedef struct {
    const char *const *files; /* one file (contiguous shards) or a list of shard files */
    int nfiles;
    int rank, world; /* this rank's shard; world = 1 for eval/predict on one rank */
    int batch_size;
    int shuffle; /* per-epoch seeded permutation; 0 = index order */
    int augment; /* seeded RecAug-style augmentation (dataset_augment.c) */
    const AugmentConf *aug; /* its ranges; NULL = augment_defaults */
    uint64_t seed;
    const char *alphabet;     /* NULL or "" = the first file's */
    int skip_bad;             /* skip labels with characters outside the alphabet (counted) */
    long limit;               /* > 0: only the first `limit` samples of each file exist (0 = all) */
    int train;                /* 1: full batches only, equal steps on all ranks, epochs wrap;
                                 0: one pass over the shard in index order, last batch partial */
    int prefetch;             /* 1: a background reader thread (HDF5 only on that thread) */
    size_t chunk_cache_bytes; /* 0 = a sensible default */
    /* Unlabeled files (no /labels): 0 refuses them (EXIT_DATA naming the file
     * and labels_for, what the caller needs labels for); 1 accepts them, their
     * samples with label_len 0 and labeled[k] = 0. */
    int allow_unlabeled;
    const char *labels_for;
} LoaderConf;

/* How many samples of a file of n the loader reads with LoaderConf.limit
 * (data.train_limit): the one rule the teacher cache sizes its slots by too. */
static inline long dataset_limited(long n, long limit) { return limit > 0 && n > limit ? limit : n; }

typedef struct Loader Loader;
/* Opens every file of the list (metadata of all of them, so steps per epoch
 * is the same on every rank without communication). All files must agree on
 * height, width and alphabet (unless the alphabet is given). */
int loader_open(Loader **out, const LoaderConf *c, Err *err);
void loader_close(Loader *l);
/* Steps per epoch: train: the smallest shard's count of full batches
 * (identical on every rank); eval: ceil(shard / batch). */
long loader_steps_per_epoch(const Loader *l);
long loader_shard_size(const Loader *l); /* samples this rank owns */
long loader_skipped(const Loader *l);    /* labels skipped so far (skip_bad) */
long loader_unlabeled(const Loader *l);  /* samples of this rank's shard without a label */
int loader_width(const Loader *l);
const Alphabet *loader_alphabet(const Loader *l);
int loader_max_label_len(const Loader *l); /* upper bound of label length over all files */
/* The next batch. train: wraps to the next epoch (new permutation) after
 * steps_per_epoch batches. eval: *out = NULL when the pass is done.
 * The batch stays valid until the next loader_next call. */
int loader_next(Loader *l, const Batch **out, Err *err);
/* Position for exact resume: the epoch and the number of batches of it
 * already returned. loader_seek discards any prefetched batch. */
void loader_tell(const Loader *l, long *epoch, long *step_in_epoch);
int loader_seek(Loader *l, long epoch, long step_in_epoch, Err *err);

#endif
