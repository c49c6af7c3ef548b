/* dataset_internal.h - what the dataset_*.c files share and nobody else
 * needs: the file checks on an open HDF5 file, the block
 * label reader and the augmentation. Not a public interface (see dataset.h). */
#ifndef OCRKD_DATASET_INTERNAL_H
#define OCRKD_DATASET_INTERNAL_H

#include <hdf5.h>

#include "ocrkd/dataset.h"
#include "ocrkd/utf8.h"


/* Printable form of a code point for messages: 'c' (U+0063); returns buf. */
const char *ds_cp_show(uint32_t cp, char *buf, size_t cap);

/* Checks the root attributes and the /images, /labels, /widths datasets of an
 * open file, filling m (m->alphabet malloc'd); /labels may be absent (an
 * unlabeled file, m->labeled = 0). EXIT_DATA naming path. */
int ds_check_open(hid_t f, const char *path, DatasetMeta *m, Err *err);

/* Calls fn(ctx, index, text) for every label in [start, start + count) of
 * /labels, reading blocks of a few thousand (vlen or fixed-length strings).
 * A non-zero return of fn stops the walk and is returned. */
typedef int (*LabelFn)(void *ctx, long index, const char *text, Err *err);
int ds_walk_labels(hid_t f, const char *path, long start, long count, LabelFn fn, void *ctx,
                   Err *err);

/* Seeded augmentation of one image (H,W) floats in [0,1], in place; scratch
 * holds H*W floats. */
void ds_augment(float *img, int H, int W, float *scratch, const AugmentConf *a, Rng *rng);

#endif
