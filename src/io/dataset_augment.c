/* dataset_augment.c - the optional on-the-fly augmentation of training
 * images (data.augment, ranges in the config's `augment` section), in the
 * spirit of PaddleOCR's RecAug: a geometric warp (TIA-like stretch of column
 * strips, perspective, rotation, crop/pad of top and bottom) applied as one
 * inverse map with bilinear sampling, then low resolution, Gaussian blur,
 * contrast and brightness, inverted polarity and Gaussian noise. Each
 * operation happens with probability `prob` (inversion with its own), its
 * strength uniform up to the configured maximum.
 *
 * Deterministic given the RNG, so a resumed run sees the same images. Not
 * for resizing or decoding (image.c) or for synthetic rendering
 * (data-tools/synth.c). */
#include <math.h>
#include <string.h>

#include "dataset_internal.h"

#define STRIPS 4 /* column strips of the TIA-like stretch */

void augment_defaults(AugmentConf *a) {
    *a = (AugmentConf){.prob = 0.4f,
                       .stretch = 0.3f,
                       .perspective = 0.2f,
                       .rotate = 2.0f,
                       .crop = 0.12f,
                       .blur = 1.2f,
                       .lowres = 0.5f,
                       .noise = 0.06f,
                       .contrast = 0.5f,
                       .brightness = 0.15f,
                       .invert = 0.1f};
}

static float uniform(Rng *r, float lo, float hi) {
    return lo + (hi - lo) * (float)rng_uniform(r);
}

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

/* The inverse map of the geometric warp: output pixel -> source pixel. */
typedef struct {
    float cos_a, sin_a;    /* rotation about the centre */
    float dst[STRIPS + 1]; /* strip boundaries in the output (x) */
    float src[STRIPS + 1]; /* the same boundaries in the source */
    float top[2], bot[2];  /* source rows of the output's top/bottom edge, left and right */
} Warp;

static int draw_warp(const AugmentConf *a, int H, int W, Rng *r, Warp *w) {
    int any = 0;
    float ang = 0;
    if (a->rotate > 0 && rng_uniform(r) < a->prob)
        ang = uniform(r, -a->rotate, a->rotate) * (float)M_PI / 180.0f, any = 1;
    w->cos_a = cosf(ang);
    w->sin_a = sinf(ang);
    float width[STRIPS], total = 0, scale = 1;
    int stretch = a->stretch > 0 && rng_uniform(r) < a->prob;
    for (int i = 0; i < STRIPS; i++) {
        width[i] = stretch ? 1 + uniform(r, -a->stretch, a->stretch) : 1;
        total += width[i];
    }
    /* the whole line only narrows (scale <= 1 reads past W, which is padding):
     * widening it could push the end of a long text out of the image */
    if (stretch) scale = 1 - uniform(r, 0, a->stretch) / 2, any = 1;
    w->dst[0] = w->src[0] = 0;
    for (int i = 0; i < STRIPS; i++) {
        w->dst[i + 1] = w->dst[i] + width[i] / total * (float)W;
        w->src[i + 1] = (float)(i + 1) * (float)W / STRIPS / scale;
    }
    float p = a->perspective * (float)H, c = a->crop * (float)H;
    for (int s = 0; s < 2; s++)
        w->top[s] = 0, w->bot[s] = (float)(H - 1);
    if (p > 0 && rng_uniform(r) < a->prob) {
        for (int s = 0; s < 2; s++) {
            w->top[s] += uniform(r, -p, p) * 0.5f;
            w->bot[s] += uniform(r, -p, p) * 0.5f;
        }
        any = 1;
    }
    if (c > 0 && rng_uniform(r) < a->prob) { /* > 0 cuts, < 0 pads */
        float ct = uniform(r, -c, c), cb = uniform(r, -c, c);
        for (int s = 0; s < 2; s++)
            w->top[s] += ct, w->bot[s] -= cb;
        any = 1;
    }
    return any;
}

static float warp_x(const Warp *w, float x) {
    int i = 0;
    while (i < STRIPS - 1 && x > w->dst[i + 1])
        i++;
    float f = (x - w->dst[i]) / fmaxf(w->dst[i + 1] - w->dst[i], 1e-6f);
    return w->src[i] + f * (w->src[i + 1] - w->src[i]);
}

/* img (H,W) -> img through the warp; scratch (H,W). */
static void apply_warp(float *img, int H, int W, float *scratch, const Warp *w) {
    memcpy(scratch, img, (size_t)H * (size_t)W * sizeof *img);
    float cx = 0.5f * (float)(W - 1), cy = 0.5f * (float)(H - 1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            float dx = (float)x - cx, dy = (float)y - cy;
            float rx = cx + w->cos_a * dx + w->sin_a * dy;
            float ry = cy - w->sin_a * dx + w->cos_a * dy;
            float f = fminf(fmaxf(rx / (float)MAX(W - 1, 1), 0.0f), 1.0f);
            float top = w->top[0] + f * (w->top[1] - w->top[0]);
            float bot = w->bot[0] + f * (w->bot[1] - w->bot[0]);
            float sy = top + ry / (float)MAX(H - 1, 1) * (bot - top);
            img[y * W + x] = sample_bilinear(scratch, H, W, sy, warp_x(w, rx));
        }
}

/* Down to (H*f, W*f) by bilinear sampling, then back up: a low-resolution
 * scan or photo. scratch (H,W). */
static void low_resolution(float *img, int H, int W, float *scratch, float f) {
    int h = MAX(2, (int)lroundf((float)H * f)), w = MAX(2, (int)lroundf((float)W * f));
    float sy = (float)H / (float)h, sx = (float)W / (float)w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            scratch[y * w + x] = sample_bilinear(img, H, W, ((float)y + 0.5f) * sy - 0.5f,
                                                 ((float)x + 0.5f) * sx - 0.5f);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            img[y * W + x] = sample_bilinear(scratch, h, w, ((float)y + 0.5f) / sy - 0.5f,
                                             ((float)x + 0.5f) / sx - 0.5f);
}

/* Separable Gaussian blur of img (H,W) with sigma in pixels; scratch (H,W). */
static void gaussian_blur(float *img, int H, int W, float *scratch, float sigma) {
    enum { R_MAX = 8 };
    float k[R_MAX + 1], sum = 0;
    int R = MIN(R_MAX, (int)ceilf(2.5f * sigma));
    for (int i = 0; i <= R; i++) {
        k[i] = expf(-(float)(i * i) / (2 * sigma * sigma));
        sum += i ? 2 * k[i] : k[i];
    }
    for (int i = 0; i <= R; i++)
        k[i] /= sum;
    for (int y = 0; y < H; y++) /* rows into scratch */
        for (int x = 0; x < W; x++) {
            const float *row = img + (size_t)y * W;
            float v = k[0] * row[x];
            for (int i = 1; i <= R; i++)
                v += k[i] * (row[MAX(x - i, 0)] + row[MIN(x + i, W - 1)]);
            scratch[y * W + x] = v;
        }
    for (int y = 0; y < H; y++) /* columns back into img */
        for (int x = 0; x < W; x++) {
            float v = k[0] * scratch[y * W + x];
            for (int i = 1; i <= R; i++)
                v += k[i] * (scratch[MAX(y - i, 0) * W + x] + scratch[MIN(y + i, H - 1) * W + x]);
            img[y * W + x] = v;
        }
}

/* Contrast c about the mean, brightness shift b, inversion, noise sigma;
 * clamps to [0, 1]. */
static void tone(float *img, int H, int W, float c, float b, int invert, float sigma, Rng *r) {
    size_t n = (size_t)H * (size_t)W;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += img[i];
    float mean = (float)(sum / (double)n);
    for (size_t i = 0; i < n; i++) {
        float v = mean + (img[i] - mean) * c + b;
        if (invert) v = 1 - v;
        if (sigma > 0) v += sigma * rng_normal(r);
        img[i] = fminf(fmaxf(v, 0.0f), 1.0f);
    }
}

void ds_augment(float *img, int H, int W, float *scratch, const AugmentConf *a, Rng *r) {
    Warp w;
    if (draw_warp(a, H, W, r, &w)) apply_warp(img, H, W, scratch, &w);
    if (a->lowres < 1 && rng_uniform(r) < a->prob)
        low_resolution(img, H, W, scratch, uniform(r, a->lowres, 1));
    if (a->blur > 0 && rng_uniform(r) < a->prob)
        gaussian_blur(img, H, W, scratch, uniform(r, 0.3f, fmaxf(a->blur, 0.3f)));
    float c = 1, b = 0, sigma = 0;
    if (rng_uniform(r) < a->prob)
        c = fmaxf(uniform(r, 1 - a->contrast, 1 + a->contrast), 0.2f),
        b = uniform(r, -a->brightness, a->brightness);
    int invert = rng_uniform(r) < a->invert;
    if (a->noise > 0 && rng_uniform(r) < a->prob) sigma = uniform(r, 0, a->noise);
    if (c != 1 || b != 0 || invert || sigma > 0) tone(img, H, W, c, b, invert, sigma, r);
}
