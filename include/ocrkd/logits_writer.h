/* logits_writer.h - the file of `ocrkd predict --dump-logits OUT.h5`:
 * /logits float32 [N,T,K] (log-softmax) and /texts (UTF-8 strings),
 * written a batch of rows at a time (src/io/logits_writer.c). Not for
 * datasets or checkpoints. */
#ifndef OCRKD_LOGITS_WRITER_H
#define OCRKD_LOGITS_WRITER_H

#include "ocrkd/common.h"

typedef struct LogitsWriter LogitsWriter;

/* Creates path for n samples of T frames by K classes. */
int logits_writer_open(LogitsWriter **out, const char *path, long n, int T, int K, Err *err);
/* Writes rows (B,T,K) and texts as samples [at, at+B). */
int logits_writer_rows(LogitsWriter *w, long at, int B, char **texts, const float *rows, Err *err);
/* Closes the file and frees w (also after an error). */
int logits_writer_close(LogitsWriter *w, Err *err);

#endif
