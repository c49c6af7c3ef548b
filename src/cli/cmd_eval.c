/* cmd_eval.c - `ocrkd eval` (metrics on a labelled dataset, sharded over
 * ranks) and `ocrkd predict` (texts for a dataset or image files, optional
 * log-probability dump). Inference only: BatchNorm uses running stats. */
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/checkpoint.h"
#include "ocrkd/dataset.h"
#include "ocrkd/dist.h"
#include "ocrkd/evaluate.h"
#include "ocrkd/h5util.h"
#include "ocrkd/image.h"

static const char *eval_help =
    "usage: ocrkd eval --model CKPT --data FILE.h5 [--json] [--batch N] [--case-insensitive]\n"
    "\n"
    "Word accuracy (exact match), CER (edit distance / label characters), 1-NED (ICDAR\n"
    "2019) and images/s of a checkpoint on a labelled dataset. Under mpirun the data is\n"
    "sharded over ranks. --json prints one JSON object. --case-insensitive compares\n"
    "lower-cased letters and digits only.\n";

static const char *predict_help =
    "usage: ocrkd predict --model CKPT (--data FILE.h5 | IMAGE...) [--dump-logits OUT.h5]\n"
    "                     [--batch N]\n"
    "\n"
    "Prints INDEX<TAB>TEXT per dataset sample, or PATH<TAB>TEXT per image (PNG/JPEG,\n"
    "resized to height 32 keeping aspect). --dump-logits writes /logits float32 [N,T,K]\n"
    "(log-softmax) and /texts.\n";

typedef struct {
    const char *model, *data, *dump;
    int json, case_insensitive, batch;
    char **images;
    int nimages;
} EvalArgs;

static int parse(int argc, char **argv, int predict, EvalArgs *a) {
    const char *cmd = predict ? "predict" : "eval";
    memset(a, 0, sizeof *a);
    a->batch = 64;
    a->images = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(predict ? predict_help : eval_help, stdout);
            exit(0);
        } else if (!strcmp(s, "--model") && more) {
            a->model = argv[++i];
        } else if (!strcmp(s, "--data") && more) {
            a->data = argv[++i];
        } else if (!strcmp(s, "--batch") && more) {
            a->batch = atoi(argv[++i]);
            if (a->batch < 1) {
                fprintf(stderr, "ocrkd %s: --batch wants a positive integer\n", cmd);
                return EXIT_USAGE;
            }
        } else if (!predict && !strcmp(s, "--json")) {
            a->json = 1;
        } else if (!predict && !strcmp(s, "--case-insensitive")) {
            a->case_insensitive = 1;
        } else if (predict && !strcmp(s, "--dump-logits") && more) {
            a->dump = argv[++i];
        } else if (s[0] == '-') {
            fprintf(stderr, "ocrkd %s: unknown or incomplete option '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        } else if (predict) {
            a->images[a->nimages++] = argv[i];
        } else {
            fprintf(stderr, "ocrkd %s: unexpected argument '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        }
    }
    if (!a->model) {
        fprintf(stderr, "ocrkd %s: --model CKPT is required (see --help)\n", cmd);
        return EXIT_USAGE;
    }
    if (!predict && !a->data) {
        fprintf(stderr, "ocrkd eval: --data FILE.h5 is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (predict && !!a->data == !!a->nimages) {
        fprintf(stderr, "ocrkd predict: give either --data FILE.h5 or image files (see --help)\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* The data must fit the model's input height (checked before anything is
 * sized from the file), then one pass over this rank's shard. */
static Loader *open_eval_loader(const char *data, const char *alphabet, int batch, int rank,
                                int world) {
    Err err = {0};
    if (dataset_check_height(data, IMAGE_H, &err)) fatal_err(&err);
    const char *files[1] = {data};
    LoaderConf lc = {0};
    lc.files = files;
    lc.nfiles = 1;
    lc.rank = rank;
    lc.world = world;
    lc.batch_size = batch;
    lc.alphabet = alphabet;
    lc.skip_bad = 1; /* labels outside the model's alphabet cannot be scored */
    lc.prefetch = 1;
    Loader *l;
    if (loader_open(&l, &lc, &err)) fatal_err(&err);
    return l;
}

static Crnn *load_model(const char *path, int batch, int width, CkptMeta *meta) {
    Crnn *m;
    Err err = {0};
    if (ckpt_load_model(path, batch, width, 0, &m, NULL, meta, &err)) fatal_err(&err);
    return m;
}

int cmd_eval(int argc, char **argv) {
    EvalArgs a;
    int rc = parse(argc, argv, 0, &a);
    if (rc) return rc;
    dist_init(&argc, &argv);
    h5_quiet();
    CkptMeta meta;
    Err err = {0};
    if (ckpt_read_meta(a.model, &meta, &err)) fatal_err(&err);
    Loader *l = open_eval_loader(a.data, meta.alphabet, a.batch, dist_rank(), dist_world());
    Crnn *m = load_model(a.model, a.batch, loader_width(l), NULL);
    EvalCounts c = {0};
    if (evaluate_pass(m, l, a.case_insensitive, &c, &err)) fatal_err(&err);
    double skipped = (double)loader_skipped(l);
    dist_allreduce_sum_f64(c.v, EVAL_COUNT);
    dist_allreduce_sum_f64(&skipped, 1);
    c.v[EVAL_SECONDS] /= dist_world(); /* ranks ran in parallel */
    EvalResult r = eval_result(&c);
    char *copy = xstrdup(a.data), *split = basename(copy), *dot = strrchr(split, '.');
    if (dot) *dot = 0;
    if (a.json) {
        printf0("{\"step\":%ld,\"split\":\"%s\",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g,"
                "\"n\":%.0f,\"img_per_s\":%.1f}\n",
                meta.step, split, r.word_acc, r.cer, r.ned, r.n, r.img_per_s);
    } else {
        printf0("%s on %s (%.0f images%s):\n", a.model, a.data, r.n,
                skipped > 0 ? ", some skipped: labels outside the model's alphabet" : "");
        printf0("  word accuracy %.4f\n  CER           %.4f\n  1-NED         %.4f\n"
                "  images/s      %.1f\n",
                r.word_acc, r.cer, r.ned, r.img_per_s);
    }
    if (skipped > 0) warn0("%.0f samples skipped: labels outside the model's alphabet", skipped);
    free(copy);
    loader_close(l);
    crnn_free(m);
    ckpt_meta_free(&meta);
    dist_finalize();
    return 0;
}

/* ---- predict ---- */
typedef struct {
    hid_t file, logits, texts;
    long n;
    int T, K;
} LogitDump;

static void dump_open(LogitDump *d, const char *path, long n, int T, int K) {
    d->n = n;
    d->T = T;
    d->K = K;
    d->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (d->file < 0) fatal(EXIT_USAGE, "cannot create %s: %s", path, h5_last_error());
    hsize_t dims[3] = {(hsize_t)n, (hsize_t)T, (hsize_t)K};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    d->logits = H5Dcreate2(d->file, "logits", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT);
    H5Sclose(sp);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    hsize_t nd[1] = {(hsize_t)n};
    sp = H5Screate_simple(1, nd, NULL);
    d->texts = H5Dcreate2(d->file, "texts", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    H5Tclose(st);
    if (d->logits < 0 || d->texts < 0) fatal(EXIT_USAGE, "cannot write %s: %s", path, h5_last_error());
}

/* Writes samples [at, at+B) of the last forward: (T,B,K) -> rows (B,T,K). */
static void dump_batch(LogitDump *d, const Crnn *m, long at, int B, char **texts, float *rows) {
    int T = d->T, K = d->K;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(rows + ((size_t)b * T + t) * K, m->logp + ((size_t)t * B + b) * K,
                   (size_t)K * sizeof(float));
    hsize_t start[3] = {(hsize_t)at, 0, 0}, count[3] = {(hsize_t)B, (hsize_t)T, (hsize_t)K};
    hid_t fs = H5Dget_space(d->logits);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(3, count, NULL);
    herr_t e1 = H5Dwrite(d->logits, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, rows);
    H5Sclose(ms);
    H5Sclose(fs);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    fs = H5Dget_space(d->texts);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    ms = H5Screate_simple(1, count, NULL);
    herr_t e2 = H5Dwrite(d->texts, st, ms, fs, H5P_DEFAULT, texts);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(st);
    if (e1 < 0 || e2 < 0) fatal(EXIT_USAGE, "writing logits: %s", h5_last_error());
}

static void dump_close(LogitDump *d) {
    H5Dclose(d->logits);
    H5Dclose(d->texts);
    if (H5Fclose(d->file) < 0) fatal(EXIT_USAGE, "closing the logits file: %s", h5_last_error());
}

#define TEXT_CAP 4096

static char **alloc_texts(int n) {
    char **t = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) t[i] = xcalloc(TEXT_CAP, 1);
    return t;
}

static void predict_dataset(const EvalArgs *a, const CkptMeta *meta) {
    Loader *l = open_eval_loader(a->data, meta->alphabet, a->batch, 0, 1);
    Crnn *m = load_model(a->model, a->batch, loader_width(l), NULL);
    const Alphabet *alpha = loader_alphabet(l);
    LogitDump d = {0};
    float *rows = NULL;
    if (a->dump) {
        dump_open(&d, a->dump, loader_shard_size(l), m->T, m->arch.num_classes);
        rows = xalloc_floats((size_t)a->batch * m->T * m->arch.num_classes);
    }
    char **texts = alloc_texts(a->batch);
    long at = 0;
    Err err = {0};
    for (;;) {
        const Batch *b;
        if (loader_next(l, &b, &err)) fatal_err(&err);
        if (!b) break;
        crnn_forward(m, b->images, b->B, 0, UPTO_LOGITS);
        for (int i = 0; i < b->B; i++) {
            decode_sample(m, alpha, b->B, i, texts[i], TEXT_CAP);
            printf("%ld\t%s\n", b->index[i], texts[i]);
        }
        if (a->dump) {
            dataset_hdf5_lock(); /* the loader's prefetch thread reads HDF5 */
            dump_batch(&d, m, at, b->B, texts, rows);
            dataset_hdf5_unlock();
        }
        at += b->B;
    }
    if (a->dump) dump_close(&d);
    loader_close(l);
    crnn_free(m);
}

static void predict_images(const EvalArgs *a, const CkptMeta *meta) {
    int n = a->nimages, W = 4;
    Err err = {0};
    /* decode everything first: the model is sized for the widest image */
    uint8_t **pix = xcalloc((size_t)n, sizeof(uint8_t *));
    int *w = xcalloc((size_t)n, sizeof(int)), *h = xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        if (image_load_grey(a->images[i], &pix[i], &w[i], &h[i], &err)) fatal_err(&err);
        W = MAX(W, image_scaled_width(w[i], h[i], IMAGE_H));
    }
    int B = MIN(a->batch, n);
    Crnn *m = load_model(a->model, B, W, NULL);
    Alphabet alpha;
    if (alphabet_init(&alpha, meta->alphabet, &err)) fatal_err(&err);
    float *img = xalloc_floats((size_t)B * IMAGE_H * W);
    uint8_t *fit = xmalloc((size_t)IMAGE_H * W);
    char **texts = alloc_texts(B);
    LogitDump d = {0};
    float *rows = NULL;
    if (a->dump) {
        dump_open(&d, a->dump, n, m->T, m->arch.num_classes);
        rows = xalloc_floats((size_t)B * m->T * m->arch.num_classes);
    }
    for (int at = 0; at < n; at += B) {
        int nb = MIN(B, n - at);
        for (int i = 0; i < nb; i++) {
            int used;
            image_fit(pix[at + i], w[at + i], h[at + i], IMAGE_H, W, fit, &used);
            for (int p = 0; p < IMAGE_H * W; p++)
                img[(size_t)i * IMAGE_H * W + p] = fit[p] / 255.0f;
        }
        crnn_forward(m, img, nb, 0, UPTO_LOGITS);
        for (int i = 0; i < nb; i++) {
            decode_sample(m, &alpha, nb, i, texts[i], TEXT_CAP);
            printf("%s\t%s\n", a->images[at + i], texts[i]);
        }
        if (a->dump) dump_batch(&d, m, at, nb, texts, rows);
    }
    if (a->dump) dump_close(&d);
    crnn_free(m);
}

int cmd_predict(int argc, char **argv) {
    EvalArgs a;
    int rc = parse(argc, argv, 1, &a);
    if (rc) return rc;
    dist_init(&argc, &argv);
    h5_quiet();
    if (dist_rank() == 0) { /* rank 0 does the work; other ranks stay quiet */
        CkptMeta meta;
        Err err = {0};
        if (ckpt_read_meta(a.model, &meta, &err)) fatal_err(&err);
        if (a.data)
            predict_dataset(&a, &meta);
        else
            predict_images(&a, &meta);
        fflush(stdout);
        ckpt_meta_free(&meta);
    }
    dist_finalize();
    return 0;
}
