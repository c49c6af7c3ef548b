/* cmd_eval.c - `ocrkd eval`: word accuracy, CER, 1-NED and images/s of a
 * checkpoint on labelled datasets (each sharded over ranks), as text or
 * JSON, and the misread images as TSV. Inference only: BatchNorm uses
 * running stats. Not for the metrics themselves (train/evaluate.c) or for
 * `ocrkd predict` (cmd_predict.c). */
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
    CkptMeta meta;
    int rc = eval_start(&argc, &argv, 0, &a, &meta);
    if (rc) return rc;
    char tmp[OCRKD_PATH_MAX];
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
