/* dataset_augment.c - the optional on-the-fly augmentation of training
 * images (data.augment): a small affine warp (shear, scale about the left
 * middle), contrast and brightness, Gaussian noise. Deterministic given the
 * RNG, so a resumed run sees the same images. Not for resizing or decoding
 * (image.c). */
#include <math.h>
#include <string.h>

#include "dataset_internal.h"

/* Bilinear sample of img (H,W) at (y,x), coordinates clamped to the edges
 * (text lines are padded by edge replication, so this extends the
 * background). */
static float sample_bilinear(const float *img, int H, int W, float y, float x) {
    y = fminf(fmaxf(y, 0.0f), (float)(H - 1));
    x = fminf(fmaxf(x, 0.0f), (float)(W - 1));
    int y0 = (int)y, x0 = (int)x;
    int y1 = MIN(y0 + 1, H - 1), x1 = MIN(x0 + 1, W - 1);
    float fy = y - (float)y0, fx = x - (float)x0;
    float top = img[y0 * W + x0] * (1 - fx) + img[y0 * W + x1] * fx;
    float bot = img[y1 * W + x0] * (1 - fx) + img[y1 * W + x1] * fx;
    return top * (1 - fy) + bot * fy;
}

/* img (H,W) -> img: dst(y,x) = src(cy + (y-cy)/scale, (x + shear*(y-cy))/scale). */
static void warp_affine(float *img, int H, int W, float *scratch, float shear, float scale) {
    memcpy(scratch, img, (size_t)H * (size_t)W * sizeof *img);
    float cy = 0.5f * (float)(H - 1);
    for (int y = 0; y < H; y++) {
        float dy = (float)y - cy;
        for (int x = 0; x < W; x++)
            img[y * W + x] =
                sample_bilinear(scratch, H, W, cy + dy / scale, ((float)x + shear * dy) / scale);
    }
}

/* img (H,W): contrast c about the mean, brightness shift b, noise sigma. */
static void tone_and_noise(float *img, int H, int W, float c, float b, float sigma, Rng *rng) {
    size_t n = (size_t)H * (size_t)W;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += img[i];
    float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++) {
        float v = mean + (img[i] - mean) * c + b;
        if (sigma > 0) v += sigma * rng_normal(rng);
        img[i] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
}

void ds_augment(float *img, int H, int W, float *scratch, Rng *rng) {
    float shear = (float)(rng_uniform(rng) * 0.4 - 0.2);  /* +-0.2 px per row */
    float scale = (float)(0.9 + rng_uniform(rng) * 0.15); /* 0.90 .. 1.05 */
    float contrast = (float)(0.6 + rng_uniform(rng) * 0.8);
    float bright = (float)(rng_uniform(rng) * 0.2 - 0.1);
    float sigma = (float)(rng_uniform(rng) * 0.05);
    warp_affine(img, H, W, scratch, shear, scale);
    tone_and_noise(img, H, W, contrast, bright, sigma, rng);
}
