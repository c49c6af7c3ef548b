/* conv_bench.c - the Winograd F(2x2,3x3) path (src/nn/winograd.c) against
 * im2col + GEMM (src/nn/conv.c) on the 3x3 stride-1 convolutions of ocrkd's
 * ResNets, one thread: the numbers behind OCRKD_WINOGRAD=auto's thresholds.
 *
 *   make bench-conv                       (builds bin/bench_conv)
 *   bin/bench_conv [--batch B] [--reps N] [small|full]...
 * small: the w16 ResNets of bench/small.yaml and the demo (16 channels on
 * 16x64 maps, 32 on 8x32, 64 on 4x32, 128 on 2x32), batch 32; full: w64
 * (64 .. 512 channels on the same maps), batch 64. Per shape, the best of
 * --reps runs (default 10) of: the training forward (conv2d_forward), the
 * inference forward with BatchNorm folded (conv2d_bias_forward, Winograd
 * with its transformed weights kept, as resnet.c does), and the backward
 * (dinp and dw, conv2d_backward). Ratios above 1: Winograd faster.
 * Timings only; correctness is tests/test_conv.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ocrkd/common.h"
#include "ocrkd/nn.h"

typedef struct {
    int C, H, W;
} Map;

static const Map k_small[] = {{16, 16, 64}, {32, 8, 32}, {64, 4, 32}, {128, 2, 32}};
static const Map k_full[] = {{64, 16, 64}, {128, 8, 32}, {256, 4, 32}, {512, 2, 32}};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill(float *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

typedef struct {
    const ConvShape *s;
    const float *x, *w, *wt, *bias, *dy;
    float *y, *dx, *dw, *ws;
} Bufs;

enum { FWD, INFER, BWD, NPASS };

static void run_pass(const Bufs *b, int pass) {
    if (pass == FWD)
        conv2d_forward(b->s, b->x, b->w, b->y, b->ws);
    else if (pass == INFER)
        conv2d_bias_forward(b->s, b->x, b->w, b->wt, b->bias, NULL, 1, b->y, b->ws);
    else
        conv2d_backward(b->s, b->x, b->w, b->dy, b->dx, b->dw, b->ws);
}

/* best of reps, in ms */
static double time_pass(const Bufs *b, int pass, int reps) {
    run_pass(b, pass); /* warm-up: page faults, packing buffers */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        run_pass(b, pass);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    return 1e3 * best;
}

static void bench_map(const Map *m, int B, int reps) {
    ConvShape s = conv_shape(B, m->C, m->H, m->W, m->C, 3, 3, 1, 1, 1, 1);
    const size_t nx = (size_t)B * m->C * m->H * m->W, nw = (size_t)m->C * m->C * 9;
    conv_set_winograd(WINO_ON);
    size_t nws = conv_workspace_floats(&s), nt = conv_transformed_weights_floats(&s);
    conv_set_winograd(WINO_OFF);
    size_t n0 = conv_workspace_floats(&s);
    if (n0 > nws) nws = n0;
    float *x = xmalloc(nx * sizeof *x), *y = xmalloc(nx * sizeof *y),
          *dy = xmalloc(nx * sizeof *dy), *dx = xcalloc(nx, sizeof *dx),
          *w = xmalloc(nw * sizeof *w), *dw = xcalloc(nw, sizeof *dw),
          *bias = xcalloc((size_t)m->C, sizeof *bias), *wt = xmalloc(nt * sizeof *wt),
          *ws = xmalloc(nws * sizeof *ws);
    fill(x, nx, 1);
    fill(dy, nx, 2);
    fill(w, nw, 3);
    double ms[2][NPASS];
    for (int wino = 0; wino < 2; wino++) {
        conv_set_winograd(wino ? WINO_ON : WINO_OFF);
        if (wino) conv_transform_weights(&s, w, wt);
        Bufs b = {&s, x, w, wino ? wt : NULL, bias, dy, y, dx, dw, ws};
        for (int p = 0; p < NPASS; p++)
            ms[wino][p] = time_pass(&b, p, reps);
    }
    printf("  %4d ch %2dx%-3d", m->C, m->H, m->W);
    for (int p = 0; p < NPASS; p++)
        printf("  %8.3f %8.3f %5.2fx", ms[0][p], ms[1][p], ms[0][p] / ms[1][p]);
    printf("\n");
    float *bufs[] = {x, y, dy, dx, w, dw, bias, wt, ws};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        free(bufs[i]);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_conv [--batch B] [--reps N] [small|full]...\n");
    exit(EXIT_USAGE);
}

int main(int argc, char **argv) {
    int batch = 0, reps = 10, nmodels = 0;
    const char *models[4];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "small") || !strcmp(argv[i], "full")) && nmodels < 4)
            models[nmodels++] = argv[i];
        else
            usage();
    }
    if (batch < 0 || reps < 1) usage();
    if (!nmodels) models[nmodels++] = "small";
    for (int k = 0; k < nmodels; k++) {
        const int full = !strcmp(models[k], "full");
        const int B = batch ? batch : full ? 64 : 32;
        printf(
            "%s model, batch %d, 3x3 stride-1 convs C -> C, 1 thread; ms im2col, Winograd, ratio\n",
            models[k], B);
        printf("  %-16s  %-24s  %-24s  %-24s\n", "map", "forward (train)", "forward (inference)",
               "backward (dinp + dw)");
        for (int i = 0; i < 4; i++)
            bench_map(full ? &k_full[i] : &k_small[i], B, reps);
    }
    return 0;
}
