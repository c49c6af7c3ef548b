/* augment.h - the ranges of the training-time augmentation (data.augment,
 * config section `augment`), in the spirit of PaddleOCR's RecAug: each
 * operation is applied to an image with probability `prob` (invert has its
 * own), with its strength drawn uniformly up to the configured maximum.
 * The operations themselves live in src/io/dataset_augment.c. */
#ifndef OCRKD_AUGMENT_H
#define OCRKD_AUGMENT_H

typedef struct {
    float prob;        /* per-operation probability, default 0.4 */
    float stretch;     /* TIA stretch/distort: max relative change of a column strip's width, 0.3 */
    float perspective; /* max shift of a corner, fraction of the height, 0.2 */
    float rotate;      /* max rotation, degrees, 2 */
    float crop;        /* max fraction of the height cut (or padded) at top and at bottom, 0.12 */
    float blur;        /* max Gaussian sigma in pixels, 1.2 */
    float lowres;      /* smallest down-then-up resolution factor, 0.5 (1 = off) */
    float noise;       /* max Gaussian noise sigma (pixel range 0..1), 0.06 */
    float contrast;    /* contrast factor in [1 - c, 1 + c], 0.5 */
    float brightness;  /* brightness shift in [-b, b], 0.15 */
    float invert;      /* probability of inverting polarity, 0.1 */
} AugmentConf;

/* Fills a with the defaults above. */
void augment_defaults(AugmentConf *a);

#endif
