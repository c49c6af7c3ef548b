/* evaluate.h - recognition metrics and the evaluation pass.
 * word accuracy (exact match), CER (edit distance / label characters) and
 * 1-NED (ICDAR 2019: 1 - mean of ED / max(|gt|, |pred|)), counted in code
 * points. Counts are plain sums so ranks can add them with one allreduce. */
#ifndef OCRKD_EVALUATE_H
#define OCRKD_EVALUATE_H

#include <stdint.h>

#include "ocrkd/dataset.h"
#include "ocrkd/model.h"

enum { EVAL_N = 0, EVAL_CORRECT, EVAL_EDITS, EVAL_CHARS, EVAL_NED, EVAL_SECONDS, EVAL_COUNT };

typedef struct {
    double v[EVAL_COUNT]; /* sums; EVAL_SECONDS is the forward time */
} EvalCounts;

typedef struct {
    double n, word_acc, cer, ned, img_per_s;
} EvalResult;

/* Levenshtein distance between code-point strings. */
int edit_distance(const uint32_t *a, int na, const uint32_t *b, int nb);
/* Adds one prediction/label pair (UTF-8). case_insensitive: lower-case both
 * and keep only letters and digits before comparing. */
void eval_add(EvalCounts *c, const char *pred, const char *label, int case_insensitive);
EvalResult eval_result(const EvalCounts *c);

/* Greedy-decodes sample b of m's last forward into UTF-8 text. */
void decode_sample(const Crnn *m, const Alphabet *a, int B, int b, char *out, size_t cap);

/* One pass over an eval-mode loader (train = 0) with BN running stats,
 * adding to *c. Local counts only: the caller sums them over ranks. */
int evaluate_pass(Crnn *m, Loader *l, int case_insensitive, EvalCounts *c, Err *err);

#endif
