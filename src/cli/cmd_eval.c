/* cmd_eval.c - `ocrkd eval` (metrics on a labelled dataset, sharded over
 * ranks) and `ocrkd predict` (texts for a dataset or image files, optional
 * log-probability dump). Inference only: BatchNorm uses running stats. */
#include <errno.h>
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
    "usage: ocrkd eval --model CKPT --data FILE.h5 [--data FILE.h5]... [--json] [--batch N]\n"
    "                  [--case-insensitive] [--errors FILE.tsv]\n"
    "\n"
    "Word accuracy (exact match), CER (edit distance / label characters), 1-NED (ICDAR\n"
    "2019) and images/s of a checkpoint on labelled datasets, a row per --data and,\n"
    "for several, a total row over all their images (counts pooled). Under mpirun each\n"
    "set is sharded over ranks.\n"
    "  --json              one JSON object per set (with \"data\":FILE when there are\n"
    "                      several) and then {\"split\":\"total\",...}\n"
    "  --case-insensitive  compare case-folded text (Unicode simple case folding:\n"
    "                      Latin, Greek, Cyrillic, Armenian, fullwidth); nothing dropped\n"
    "  --errors FILE.tsv   the images read wrongly: data, index, truth, prediction,\n"
    "                      confidence (tab-separated, a header row; tabs, newlines and\n"
    "                      backslashes in texts escaped as \\t \\n \\\\)\n"
    "Confidence is the probability of the greedy (best) CTC path: the product over\n"
    "all frames of the largest per-frame probability, in [0, 1].\n";

static const char *predict_help =
    "usage: ocrkd predict --model CKPT (--data FILE.h5 | IMAGE|DIR|@LIST...) [--scores]\n"
    "                     [--dump-logits OUT.h5] [--batch N]\n"
    "\n"
    "Prints INDEX<TAB>TEXT per dataset sample, or PATH<TAB>TEXT per image (PNG/JPEG,\n"
    "resized to height 32 keeping aspect), in input order. A DIR is searched\n"
    "recursively for *.png, *.jpg, *.jpeg (any case), sorted by path; @LIST is a file\n"
    "of paths, one per line (blank lines and lines starting with # skipped). Images are\n"
    "decoded a batch at a time; under mpirun the ranks share them and rank 0 prints.\n"
    "  --scores           a third column: the sequence confidence in [0, 1], the\n"
    "                     probability of the greedy CTC path (product over all frames\n"
    "                     of the largest per-frame probability)\n"
    "  --dump-logits OUT  /logits float32 [N,T,K] (log-softmax) and /texts\n";

typedef struct {
    const char *model, *dump, *errors;
    const char **data;
    int ndata;
    int json, case_insensitive, batch, scores;
    char **images;
    int nimages;
} EvalArgs;

static int parse(int argc, char **argv, int predict, EvalArgs *a) {
    const char *cmd = predict ? "predict" : "eval";
    memset(a, 0, sizeof *a);
    a->batch = 64;
    a->images = calloc((size_t)argc, sizeof(char *));
    a->data = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(predict ? predict_help : eval_help, stdout);
            exit(0);
        } else if (!strcmp(s, "--model") && more) {
            a->model = argv[++i];
        } else if (!strcmp(s, "--data") && more) {
            a->data[a->ndata++] = argv[++i];
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
        } else if (!predict && !strcmp(s, "--errors") && more) {
            a->errors = argv[++i];
        } else if (predict && !strcmp(s, "--dump-logits") && more) {
            a->dump = argv[++i];
        } else if (predict && !strcmp(s, "--scores")) {
            a->scores = 1;
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
    if (!predict && !a->ndata) {
        fprintf(stderr, "ocrkd eval: --data FILE.h5 is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (predict && (a->ndata > 1 || !!a->ndata == !!a->nimages)) {
        fprintf(stderr, "ocrkd predict: give either one --data FILE.h5 or images (see --help)\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* The data must fit the model's input height (checked before anything is
 * sized from the file), then one pass over this rank's shard. eval needs
 * labels (an unlabeled file is refused, exit 3); predict does not. */
static Loader *open_eval_loader(const char *data, const char *alphabet, int batch, int rank,
                                int world, int need_labels) {
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
    lc.allow_unlabeled = !need_labels;
    lc.labels_for = "`ocrkd eval` (it scores predictions against labels)";
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

/* s as a JSON string literal. */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* One result row. data == NULL: the single-set JSON line exactly as before
 * several sets existed (scripts match its prefix). */
static void print_json_row(long step, const char *split, const EvalResult *r, const char *data,
                           int nsets) {
    if (dist_rank() != 0) return;
    printf("{\"step\":%ld,\"split\":", step);
    json_string(stdout, split);
    printf(",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g,\"n\":%.0f,\"img_per_s\":%.1f",
           r->word_acc, r->cer, r->ned, r->n, r->img_per_s);
    if (data) {
        fputs(",\"data\":", stdout);
        json_string(stdout, data);
    }
    if (nsets) printf(",\"sets\":%d", nsets);
    printf("}\n");
}

/* The split name of a data file: its base name without the extension. */
static char *split_name(const char *data) {
    char *copy = xstrdup(data), *base = basename(copy), *dot = strrchr(base, '.');
    if (dot && dot != base) *dot = 0;
    char *name = xstrdup(base);
    free(copy);
    return name;
}

/* Evaluates one set: counts summed over ranks into *c; this rank's wrong
 * rows go to rank 0's errors file. Returns the count of skipped samples. */
static double eval_one_set(const EvalArgs *a, const CkptMeta *meta, const char *data, FILE *errf,
                           EvalCounts *c) {
    Err err = {0};
    Loader *l = open_eval_loader(data, meta->alphabet, a->batch, dist_rank(), dist_world(), 1);
    Crnn *m = load_model(a->model, a->batch, loader_width(l), NULL);
    char *rows = NULL;
    size_t rows_len = 0;
    FILE *mine = a->errors ? open_memstream(&rows, &rows_len) : NULL;
    if (a->errors && !mine) fatal(1, "out of memory collecting the errors of %s", data);
    if (evaluate_pass_errors(m, l, a->case_insensitive, c, mine, data, &err)) fatal_err(&err);
    if (mine) {
        fclose(mine);
        char *all = dist_gather_string(rows, 0);
        if (all && errf) fputs(all, errf);
        free(all);
        free(rows);
    }
    double skipped = (double)loader_skipped(l);
    dist_allreduce_sum_f64(c->v, EVAL_COUNT);
    dist_allreduce_sum_f64(&skipped, 1);
    c->v[EVAL_SECONDS] /= dist_world(); /* ranks ran in parallel */
    loader_close(l);
    crnn_free(m);
    return skipped;
}

static void print_text_block(const char *model, const char *data, const EvalResult *r,
                             double skipped) {
    printf0("%s on %s (%.0f images%s):\n", model, data, r->n,
            skipped > 0 ? ", some skipped: labels outside the model's alphabet" : "");
    printf0("  word accuracy %.4f\n  CER           %.4f\n  1-NED         %.4f\n"
            "  images/s      %.1f\n",
            r->word_acc, r->cer, r->ned, r->img_per_s);
}

static void print_text_row(const char *name, const EvalResult *r) {
    printf0("  %-32s %8.0f %9.4f %8.4f %8.4f %9.1f\n", name, r->n, r->word_acc, r->cer, r->ned,
            r->img_per_s);
}

/* Rank 0 writes the errors to PATH.tmp and renames it at the end, so a
 * failed run leaves no half-written file under the final name. */
static FILE *errors_open(const char *path, char *tmp, size_t cap) {
    if (!path || dist_rank() != 0) return NULL;
    snprintf(tmp, cap, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) fatal(EXIT_USAGE, "cannot create %s: %s", tmp, strerror(errno));
    fputs("data\tindex\ttruth\tprediction\tconfidence\n", f);
    return f;
}

static void errors_close(FILE *f, const char *tmp, const char *path) {
    if (!f) return;
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fatal(EXIT_USAGE, "writing %s: %s", path, strerror(errno));
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
    char tmp[4200];
    FILE *errf = errors_open(a.errors, tmp, sizeof tmp);
    int several = a.ndata > 1;
    if (several && !a.json) {
        printf0("%s on %d sets:\n", a.model, a.ndata);
        printf0("  %-32s %8s %9s %8s %8s %9s\n", "data", "images", "word_acc", "CER", "1-NED",
                "images/s");
    }
    EvalCounts total = {0};
    for (int i = 0; i < a.ndata; i++) {
        EvalCounts c = {0};
        double skipped = eval_one_set(&a, &meta, a.data[i], errf, &c);
        for (int k = 0; k < EVAL_COUNT; k++)
            total.v[k] += c.v[k];
        EvalResult r = eval_result(&c);
        char *split = split_name(a.data[i]);
        if (a.json)
            print_json_row(meta.step, split, &r, several ? a.data[i] : NULL, 0);
        else if (several)
            print_text_row(a.data[i], &r);
        else
            print_text_block(a.model, a.data[i], &r, skipped);
        if (skipped > 0)
            warn0("%s: %.0f samples skipped: labels outside the model's alphabet", a.data[i],
                  skipped);
        free(split);
    }
    if (several) {
        EvalResult r = eval_result(&total);
        if (a.json)
            print_json_row(meta.step, "total", &r, NULL, a.ndata);
        else
            print_text_row("total", &r);
    }
    errors_close(errf, tmp, a.errors);
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

/* Samples [0, B) of the last forward: (T,B,K) -> rows (B,T,K). */
static void rows_from_logits(const Crnn *m, int B, float *rows) {
    int T = m->T, K = m->arch.num_classes;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(rows + ((size_t)b * T + t) * K, m->logp + ((size_t)t * B + b) * K,
                   (size_t)K * sizeof(float));
}

/* Writes rows (B,T,K) and texts as samples [at, at+B). */
static void dump_rows(LogitDump *d, long at, int B, char **texts, const float *rows) {
    int T = d->T, K = d->K;
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
    Loader *l = open_eval_loader(a->data[0], meta->alphabet, a->batch, 0, 1, 0);
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
            double conf = decode_sample(m, alpha, b->B, i, texts[i], TEXT_CAP);
            if (a->scores)
                printf("%ld\t%s\t%.6f\n", b->index[i], texts[i], conf);
            else
                printf("%ld\t%s\n", b->index[i], texts[i]);
        }
        if (a->dump) {
            dataset_hdf5_lock(); /* the loader's prefetch thread reads HDF5 */
            rows_from_logits(m, b->B, rows);
            dump_rows(&d, at, b->B, texts, rows);
            dataset_hdf5_unlock();
        }
        at += b->B;
    }
    if (a->dump) dump_close(&d);
    loader_close(l);
    crnn_free(m);
}

/* This rank's part of a round: the ranks take consecutive batches of B, so
 * gathering in rank order keeps the input order. Returns the count. */
static int round_part(int n, int B, long round, int *from) {
    long start = (round * dist_world() + dist_rank()) * (long)B;
    *from = (int)MIN(start, (long)n);
    return start >= n ? 0 : (int)MIN((long)B, n - start);
}

/* The model is sized for the widest image: from the headers only, the
 * ranks sharing the files. */
static int widest_scaled(char **paths, int n) {
    long W = 4;
    Err err = {0};
    for (int i = dist_rank(); i < n; i += dist_world()) {
        int w, h;
        if (image_probe_size(paths[i], &w, &h, &err)) fatal_err(&err);
        W = MAX(W, image_scaled_width(w, h, IMAGE_H));
    }
    return (int)dist_max_long(W);
}

/* Decodes, fits and scales images [from, from+nb) into img (nb,1,H,W). */
static void load_batch(char **paths, int from, int nb, int W, float *img, uint8_t *fit) {
    Err err = {0};
    for (int i = 0; i < nb; i++) {
        uint8_t *pix;
        int w, h, used;
        if (image_load_grey(paths[from + i], &pix, &w, &h, &err)) fatal_err(&err);
        image_fit(pix, w, h, IMAGE_H, W, fit, &used);
        free(pix);
        for (int p = 0; p < IMAGE_H * W; p++)
            img[(size_t)i * IMAGE_H * W + p] = fit[p] / 255.0f;
    }
}

/* Rank 0 writes the gathered rows and NUL-separated texts of one round. */
static void dump_round(LogitDump *d, long at, const float *rows, int nb, const char *texts,
                       size_t texts_len) {
    size_t row_bytes = (size_t)d->T * d->K * sizeof(float), got = 0, tlen = 0;
    float *all = dist_gather_bytes(rows, (size_t)nb * row_bytes, 0, &got);
    char *tx = dist_gather_bytes(texts, texts_len, 0, &tlen);
    if (dist_rank() == 0 && got > 0) {
        int count = (int)(got / row_bytes);
        char **t = xcalloc((size_t)count, sizeof(char *));
        char *p = tx;
        for (int i = 0; i < count; i++, p += strlen(p) + 1)
            t[i] = p;
        dump_rows(d, at, count, t, all);
        free(t);
    }
    free(all);
    free(tx);
}

static void predict_images(const EvalArgs *a, const CkptMeta *meta) {
    int n;
    char **paths = image_list_expand(a->images, a->nimages, &n);
    int W = widest_scaled(paths, n), B = MIN(a->batch, n);
    Crnn *m = load_model(a->model, B, W, NULL);
    int T = m->T, K = m->arch.num_classes;
    Err err = {0};
    Alphabet alpha;
    if (alphabet_init(&alpha, meta->alphabet, &err)) fatal_err(&err);
    float *img = xalloc_floats((size_t)B * IMAGE_H * W);
    uint8_t *fit = xmalloc((size_t)IMAGE_H * W);
    char text[TEXT_CAP];
    LogitDump d = {0};
    float *rows = NULL;
    if (a->dump) {
        if (dist_rank() == 0) dump_open(&d, a->dump, n, T, K);
        d.T = T;
        d.K = K;
        rows = xalloc_floats((size_t)B * T * K);
    }
    long per_round = (long)B * dist_world(), rounds = (n + per_round - 1) / per_round;
    for (long r = 0; r < rounds; r++) {
        int from, nb = round_part(n, B, r, &from);
        char *out = NULL, *tx = NULL;
        size_t out_len = 0, tx_len = 0;
        FILE *o = open_memstream(&out, &out_len), *t = open_memstream(&tx, &tx_len);
        if (!o || !t) fatal(1, "out of memory formatting predictions");
        if (nb > 0) {
            load_batch(paths, from, nb, W, img, fit);
            crnn_forward(m, img, nb, 0, UPTO_LOGITS);
        }
        for (int i = 0; i < nb; i++) {
            double conf = decode_sample(m, &alpha, nb, i, text, sizeof text);
            fprintf(o, "%s\t%s", paths[from + i], text);
            if (a->scores) fprintf(o, "\t%.6f", conf);
            fputc('\n', o);
            fwrite(text, 1, strlen(text) + 1, t);
        }
        if (a->dump && nb > 0) rows_from_logits(m, nb, rows);
        fclose(o);
        fclose(t);
        char *all = dist_gather_string(out, 0);
        if (dist_rank() == 0) fputs(all, stdout);
        free(all);
        if (a->dump) dump_round(&d, r * per_round, rows, nb, tx, tx_len);
        free(out);
        free(tx);
    }
    if (a->dump && dist_rank() == 0) dump_close(&d);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(img);
    free(fit);
    free(rows);
    crnn_free(m);
}

int cmd_predict(int argc, char **argv) {
    EvalArgs a;
    int rc = parse(argc, argv, 1, &a);
    if (rc) return rc;
    dist_init(&argc, &argv);
    h5_quiet();
    CkptMeta meta;
    Err err = {0};
    if (ckpt_read_meta(a.model, &meta, &err)) fatal_err(&err);
    if (a.ndata) {
        if (dist_rank() == 0) predict_dataset(&a, &meta); /* other ranks stay quiet */
    } else {
        predict_images(&a, &meta); /* the ranks share the images; rank 0 prints */
    }
    fflush(stdout);
    ckpt_meta_free(&meta);
    dist_finalize();
    return 0;
}
