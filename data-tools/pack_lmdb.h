/* pack_lmdb.h - ocrkd-pack --lmdb: reading the LMDB layout that
 * deep-text-recognition-benchmark, PaddleOCR and MMOCR write (keys
 * `num-samples`, `image-%09d` holding PNG/JPEG bytes, `label-%09d`, indices
 * from 1). Only the reading; label checks and packing stay in pack.c. */
#ifndef OCRKD_PACK_LMDB_H
#define OCRKD_PACK_LMDB_H

#include <stddef.h>

#include "ocrkd/common.h"

typedef struct LmdbSamples LmdbSamples;

/* Opens the LMDB at dir (a directory holding data.mdb, or the data file
 * itself) read-only and reads num-samples into *n. EXIT_DATA naming dir when
 * it is not an LMDB or lacks a valid num-samples. */
int lmdb_samples_open(const char *dir, LmdbSamples **s, long *n, Err *err);

/* label-%09d of sample i (1-based) as a malloc'd string; NULL if absent. */
char *lmdb_samples_label(LmdbSamples *s, long i);

/* image-%09d of sample i: *bytes points into the map, valid until close.
 * Returns 0, or -1 if the key is absent. */
int lmdb_samples_image(LmdbSamples *s, long i, const void **bytes, size_t *len);

void lmdb_samples_close(LmdbSamples *s);

#endif
