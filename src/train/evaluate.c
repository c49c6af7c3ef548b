/* evaluate.c - metrics (word accuracy, CER, 1-NED) and the evaluation pass
 * shared by `ocrkd eval` and the trainer's periodic validation. Not for
 * printing or file output (the CLI does that). */
#include "ocrkd/evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/nn.h"
#include "ocrkd/utf8.h"

#define MAX_TEXT 1024
#define MAX_STEPS 8192

int edit_distance(const uint32_t *a, int na, const uint32_t *b, int nb) {
    int stack[2 * (MAX_TEXT + 1)];
    int *prev = stack, *cur = stack + MAX_TEXT + 1;
    if (nb > MAX_TEXT) nb = MAX_TEXT; /* labels longer than this are not text lines */
    for (int j = 0; j <= nb; j++)
        prev[j] = j;
    for (int i = 1; i <= na; i++) {
        cur[0] = i;
        for (int j = 1; j <= nb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = MIN(sub, MIN(del, ins));
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    return prev[nb];
}

/* UTF-8 -> code points (a byte that starts no valid sequence counts as one
 * symbol, its own value); fold: Unicode simple case folding of each. */
static int utf8_to_cps(const char *s, uint32_t *out, int cap, int fold) {
    int n = 0, r;
    uint32_t cp;
    while (n < cap && (r = utf8_next(&s, &cp)) != 0) {
        if (r < 0) cp = (unsigned char)*s++;
        out[n++] = fold ? unicode_fold(cp) : cp;
    }
    return n;
}

int eval_add(EvalCounts *c, const char *pred, const char *label, int case_insensitive) {
    uint32_t a[MAX_TEXT], b[MAX_TEXT];
    int na = utf8_to_cps(pred, a, MAX_TEXT, case_insensitive);
    int nb = utf8_to_cps(label, b, MAX_TEXT, case_insensitive);
    int ed = edit_distance(a, na, b, nb);
    int longest = MAX(na, nb);
    c->v[EVAL_N] += 1;
    c->v[EVAL_CORRECT] += ed == 0;
    c->v[EVAL_EDITS] += ed;
    c->v[EVAL_CHARS] += nb;
    c->v[EVAL_NED] += longest ? (double)ed / longest : 0.0;
    return ed == 0;
}

EvalResult eval_result(const EvalCounts *c) {
    EvalResult r = {0};
    double n = c->v[EVAL_N];
    r.n = n;
    r.word_acc = n > 0 ? c->v[EVAL_CORRECT] / n : 0;
    r.cer = c->v[EVAL_CHARS] > 0 ? c->v[EVAL_EDITS] / c->v[EVAL_CHARS] : (c->v[EVAL_EDITS] > 0);
    r.ned = n > 0 ? 1.0 - c->v[EVAL_NED] / n : 0;
    r.img_per_s = c->v[EVAL_SECONDS] > 0 ? n / c->v[EVAL_SECONDS] : 0;
    return r;
}

/* The best path's probability: prod_t max_k p(k | t) over all T frames. */
static double best_path_confidence(const float *logp, int T, int B, int K, int b) {
    double sum = 0;
    for (int t = 0; t < T; t++) {
        const float *lp = logp + ((size_t)t * B + b) * K;
        float best = lp[0];
        for (int k = 1; k < K; k++)
            best = lp[k] > best ? lp[k] : best;
        sum += best;
    }
    double conf = exp(sum);
    return conf > 1 ? 1 : conf;
}

double decode_sample(const Crnn *m, const Alphabet *a, int B, int b, char *out, size_t cap) {
    int ids[MAX_STEPS];
    int T = MIN(m->T, MAX_STEPS); /* wider models: the tail is not decoded */
    int K = m->arch.num_classes;
    int n = ctc_greedy_decode(m->logp, T, B, K, b, ids);
    alphabet_decode(a, ids, n, out, cap);
    return best_path_confidence(m->logp, T, B, K, b);
}

/* TSV field: tab, newline, CR and backslash escaped so a row stays a row. */
void tsv_write_field(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '\t':
            fputs("\\t", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

int evaluate_pass(Crnn *m, Loader *l, int case_insensitive, EvalCounts *c, Err *err) {
    return evaluate_pass_errors(m, l, case_insensitive, c, NULL, NULL, err);
}

int evaluate_pass_errors(Crnn *m, Loader *l, int case_insensitive, EvalCounts *c, FILE *errors,
                         const char *data_name, Err *err) {
    const Alphabet *alpha = loader_alphabet(l);
    char text[4 * MAX_TEXT];
    for (;;) {
        const Batch *batch;
        int rc = loader_next(l, &batch, err);
        if (rc) return rc;
        if (!batch) return 0;
        double t0 = now_seconds();
        crnn_forward(m, batch->images, batch->B, BN_RUNNING_STATS, UPTO_LOGITS);
        c->v[EVAL_SECONDS] += now_seconds() - t0;
        for (int b = 0; b < batch->B; b++) {
            double conf = decode_sample(m, alpha, batch->B, b, text, sizeof text);
            if (eval_add(c, text, batch->texts[b], case_insensitive) || !errors) continue;
            tsv_write_field(errors, data_name);
            fprintf(errors, "\t%ld\t", batch->index[b]);
            tsv_write_field(errors, batch->texts[b]);
            fputc('\t', errors);
            tsv_write_field(errors, text);
            fprintf(errors, "\t%.6f\n", conf);
        }
    }
}
