/* evaluate.h - recognition metrics and the evaluation pass.
 * word accuracy (exact match), CER (edit distance / label characters) and
 * 1-NED (ICDAR 2019: 1 - mean of ED / max(|gt|, |pred|)), counted in code
 * points. Counts are plain sums so ranks can add them with one allreduce. */
#ifndef OCRKD_EVALUATE_H
#define OCRKD_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

#include "ocrkd/casefold.h"
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
/* Adds one prediction/label pair (UTF-8); returns 1 if they match.
 * case_insensitive: both are case-folded code point by code point
 * (unicode_fold) before comparing; nothing is dropped. */
int eval_add(EvalCounts *c, const char *pred, const char *label, int case_insensitive);
EvalResult eval_result(const EvalCounts *c);

/* Greedy-decodes sample b of m's last forward into UTF-8 text. Returns the
 * sequence confidence in [0, 1]: the probability of the best path, i.e. the
 * product over all T frames of the largest per-frame probability
 * (exp of the sum of max log-softmax values). */
double decode_sample(const Crnn *m, const Alphabet *a, int B, int b, char *out, size_t cap);
/* Writes s as one TSV field (\t \n \r \\ escaped as backslash sequences). */
void tsv_write_field(FILE *f, const char *s);

/* One pass over an eval-mode loader (train = 0) with BN running stats,
 * adding to *c. Local counts only: the caller sums them over ranks. */
int evaluate_pass(Crnn *m, Loader *l, int case_insensitive, EvalCounts *c, Err *err);
/* The same; errors (if not NULL) gets a TSV row per wrongly read sample:
 * data_name, index, truth, prediction, confidence. */
int evaluate_pass_errors(Crnn *m, Loader *l, int case_insensitive, EvalCounts *c, FILE *errors,
                         const char *data_name, Err *err);

#endif
