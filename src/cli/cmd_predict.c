/* cmd_predict.c - `ocrkd predict`: texts (and optionally confidences and a
 * log-probability dump) for a dataset or for image files, in input order;
 * under mpirun the ranks share the images and rank 0 prints. Inference
 * only: BatchNorm uses running stats. Not for scoring against labels
 * (cmd_eval.c) or the dump file's format (io/logits_writer.c). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/dist.h"
#include "ocrkd/evaluate.h"
#include "ocrkd/h5util.h"
#include "ocrkd/image.h"
#include "ocrkd/logits_writer.h"

/* Samples [0, B) of the last forward: (T,B,K) -> rows (B,T,K). */
static void rows_from_logits(const Crnn *m, int B, float *rows) {
    int T = m->T, K = m->arch.num_classes;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(rows + ((size_t)b * T + t) * K, m->logp + ((size_t)t * B + b) * K,
                   (size_t)K * sizeof(float));
}

#define TEXT_CAP 4096

static char **alloc_texts(int n) {
    char **t = xcalloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++)
        t[i] = xcalloc(TEXT_CAP, 1);
    return t;
}

static void predict_dataset(const EvalArgs *a, const CkptMeta *meta) {
    Loader *l = open_eval_loader(a->data[0], meta->alphabet, a->batch, 0, 1, 0);
    Crnn *m = load_model(a->model, a->batch, loader_width(l), NULL);
    const Alphabet *alpha = loader_alphabet(l);
    LogitsWriter *d = NULL;
    Err err = {0};
    float *rows = NULL;
    if (a->dump) {
        if (logits_writer_open(&d, a->dump, loader_shard_size(l), m->T, m->arch.num_classes, &err))
            fatal_err(&err);
        rows = xalloc_floats((size_t)a->batch * m->T * m->arch.num_classes);
    }
    char **texts = alloc_texts(a->batch);
    long at = 0;
    for (;;) {
        const Batch *b;
        if (loader_next(l, &b, &err)) fatal_err(&err);
        if (!b) break;
        crnn_forward(m, b->images, b->B, BN_RUNNING_STATS, UPTO_LOGITS);
        for (int i = 0; i < b->B; i++) {
            double conf = decode_sample(m, alpha, b->B, i, texts[i], TEXT_CAP);
            if (a->scores)
                printf("%ld\t%s\t%.6f\n", b->index[i], texts[i], conf);
            else
                printf("%ld\t%s\n", b->index[i], texts[i]);
        }
        if (a->dump) {
            rows_from_logits(m, b->B, rows); /* the writer takes the HDF5 lock */
            if (logits_writer_rows(d, at, b->B, texts, rows, &err)) fatal_err(&err);
        }
        at += b->B;
    }
    if (a->dump && logits_writer_close(d, &err)) fatal_err(&err);
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
static void dump_round(LogitsWriter *d, int T, int K, long at, const float *rows, int nb,
                       const char *texts, size_t texts_len) {
    size_t row_bytes = (size_t)T * K * sizeof(float), got = 0, tlen = 0;
    float *all = dist_gather_bytes(rows, (size_t)nb * row_bytes, 0, &got);
    char *tx = dist_gather_bytes(texts, texts_len, 0, &tlen);
    if (dist_rank() == 0 && got > 0) {
        int count = (int)(got / row_bytes);
        char **t = xcalloc((size_t)count, sizeof(char *));
        char *p = tx;
        for (int i = 0; i < count; i++, p += strlen(p) + 1)
            t[i] = p;
        Err err = {0};
        if (logits_writer_rows(d, at, count, t, all, &err)) fatal_err(&err);
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
    LogitsWriter *d = NULL;
    float *rows = NULL;
    if (a->dump) {
        if (dist_rank() == 0 && logits_writer_open(&d, a->dump, n, T, K, &err)) fatal_err(&err);
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
            crnn_forward(m, img, nb, BN_RUNNING_STATS, UPTO_LOGITS);
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
        if (a->dump) dump_round(d, T, K, r * per_round, rows, nb, tx, tx_len);
        free(out);
        free(tx);
    }
    if (a->dump && dist_rank() == 0 && logits_writer_close(d, &err)) fatal_err(&err);
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
    CkptMeta meta;
    int rc = eval_start(&argc, &argv, 1, &a, &meta);
    if (rc) return rc;
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
