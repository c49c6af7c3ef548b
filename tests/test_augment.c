/* test_augment.c - the training-time augmentation (src/io/dataset_augment.c):
 * identity when every probability is 0, exact inversion, each operation
 * alone and all together at the extremes of their config ranges (finite,
 * in [0, 1], changes the image, deterministic for a seed), and the
 * horizontal stretch never pushing the end of a line out of the image. */
#include <string.h>

#include "../src/io/dataset_internal.h"
#include "test.h"

enum { H = 32, W = 128 };

/* A text-like line: light background, dark bars (strokes) up to x_end. */
static void make_line(float *img, int x_end) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int ink = y >= 8 && y < 24 && x < x_end && (x / 3) % 3 == 0;
            img[y * W + x] = ink ? 0.1f : 0.9f;
        }
}

static AugmentConf only_none(void) {
    AugmentConf a;
    augment_defaults(&a);
    a.prob = 0;
    a.invert = 0;
    return a;
}

static void run(const AugmentConf *a, uint64_t seed, float *img) {
    float scratch[H * W];
    Rng r;
    rng_seed(&r, seed);
    make_line(img, W - 4);
    ds_augment(img, H, W, scratch, a, &r);
}

static int in_range(const float *img) {
    for (int i = 0; i < H * W; i++)
        if (!(img[i] >= 0 && img[i] <= 1)) return 0;
    return 1;
}

static double diff(const float *a, const float *b) {
    double d = 0;
    for (int i = 0; i < H * W; i++)
        d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

static void test_identity_and_invert(void) {
    static float base[H * W], out[H * W];
    make_line(base, W - 4);
    AugmentConf a = only_none();
    run(&a, 1, out);
    CHECK(diff(out, base) == 0, "prob 0, invert 0: identity (max diff %g)", diff(out, base));
    a.invert = 1;
    run(&a, 1, out);
    double worst = 0;
    for (int i = 0; i < H * W; i++)
        worst = fmax(worst, fabs(out[i] - (1 - base[i])));
    CHECK(worst < 1e-6, "invert 1: 1 - x (max diff %g)", worst);
}

/* Sets one field of a (by name) to v with prob 1. */
static AugmentConf one_op(const char *name, float v) {
    AugmentConf a = only_none();
    a.prob = 1;
    /* every other range 0 (lowres 1 = off) so only `name` acts */
    a.stretch = a.perspective = a.rotate = a.crop = a.blur = a.noise = 0;
    a.contrast = a.brightness = 0;
    a.lowres = 1;
    if (!strcmp(name, "stretch")) a.stretch = v;
    if (!strcmp(name, "perspective")) a.perspective = v;
    if (!strcmp(name, "rotate")) a.rotate = v;
    if (!strcmp(name, "crop")) a.crop = v;
    if (!strcmp(name, "blur")) a.blur = v;
    if (!strcmp(name, "lowres")) a.lowres = v;
    if (!strcmp(name, "noise")) a.noise = v;
    if (!strcmp(name, "contrast")) a.contrast = v;
    if (!strcmp(name, "brightness")) a.brightness = v;
    return a;
}

static void test_each_at_extremes(void) {
    /* the upper ends of the config ranges (config.c) */
    static const struct {
        const char *name;
        float v;
    } ops[] = {{"stretch", 0.9f}, {"perspective", 0.5f}, {"rotate", 30},
               {"crop", 0.3f},    {"blur", 4},           {"lowres", 0.1f},
               {"noise", 0.5f},   {"contrast", 0.9f},    {"brightness", 0.5f}};
    static float base[H * W], out[H * W], again[H * W];
    make_line(base, W - 4);
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        AugmentConf a = one_op(ops[i].name, ops[i].v);
        int changed = 0, ranged = 1, same = 1;
        for (uint64_t seed = 1; seed <= 20; seed++) {
            run(&a, seed, out);
            run(&a, seed, again);
            ranged &= in_range(out);
            same &= diff(out, again) == 0;
            changed += diff(out, base) > 1e-3;
        }
        CHECK(ranged, "%s at %g: values in [0, 1]", ops[i].name, ops[i].v);
        CHECK(same, "%s at %g: deterministic for a seed", ops[i].name, ops[i].v);
        CHECK(changed >= 15, "%s at %g changes the image (%d of 20)", ops[i].name, ops[i].v,
              changed);
    }
    AugmentConf all = {1, 0.9f, 0.5f, 30, 0.3f, 4, 0.1f, 0.5f, 0.9f, 0.5f, 1};
    int ranged = 1;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        run(&all, seed, out);
        ranged &= in_range(out);
    }
    CHECK(ranged, "every operation at its extreme together: values in [0, 1]");
}

/* Dark runs along the middle row. */
static int strokes(const float *img) {
    int n = 0, prev = 0;
    for (int x = 0; x < W; x++) {
        int dark = img[16 * W + x] < 0.5f;
        n += dark && !prev;
        prev = dark;
    }
    return n;
}

/* The stretch only narrows the line as a whole (and moves strip borders):
 * at the default range every stroke of a full-width line survives. */
static void test_stretch_keeps_the_end(void) {
    static float base[H * W], out[H * W];
    make_line(base, W - 4);
    AugmentConf a = one_op("stretch", 0.3f);
    int kept = 1, want = strokes(base);
    for (uint64_t seed = 1; seed <= 50; seed++) {
        run(&a, seed, out);
        kept &= strokes(out) == want;
    }
    CHECK(kept, "stretch 0.3 keeps all %d strokes of a full line in the image", want);
}

int main(void) {
    test_identity_and_invert();
    test_each_at_extremes();
    test_stretch_keeps_the_end();
    TEST_END();
}
