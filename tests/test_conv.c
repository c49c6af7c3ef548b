/* test_conv.c - conv2d_forward/backward against a direct-loop reference and
 * central finite differences of L = sum(out * R) for a fixed random R.
 * Shapes cover 3x3 stride (1,1), (2,2), (2,1) with padding, 1x1 stride 1
 * (the direct GEMM path) and 1x1 strided (the gather), batch 1 and 3, odd
 * widths and a non-square kernel. Also: backward accumulates, NULL skips. */
#include <math.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

static void fill_normal(Rng *r, float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal(r);
}

static size_t inp_n(const ConvShape *s) {
    return (size_t)s->B * s->C * s->H * s->W;
}
static size_t w_n(const ConvShape *s) {
    return (size_t)s->OC * s->C * s->KH * s->KW;
}
static size_t out_n(const ConvShape *s) {
    return (size_t)s->B * s->OC * s->OH * s->OW;
}

/* Calls f(b, oc, oh, ow, c, ih, iw, kh, kw) for every in-range tap: the
 * definition of the convolution, shared by the reference forward and backward. */
#define FOR_EACH_TAP(s, BODY)                                                                      \
    for (int b = 0; b < (s)->B; b++)                                                               \
        for (int oc = 0; oc < (s)->OC; oc++)                                                       \
            for (int oh = 0; oh < (s)->OH; oh++)                                                   \
                for (int ow = 0; ow < (s)->OW; ow++)                                               \
                    for (int c = 0; c < (s)->C; c++)                                               \
                        for (int kh = 0; kh < (s)->KH; kh++)                                       \
                            for (int kw = 0; kw < (s)->KW; kw++) {                                 \
                                int ih = oh * (s)->SH - (s)->PH + kh;                              \
                                int iw = ow * (s)->SW - (s)->PW + kw;                              \
                                if (ih < 0 || ih >= (s)->H || iw < 0 || iw >= (s)->W) continue;    \
                                size_t io =                                                        \
                                    (((size_t)b * (s)->OC + oc) * (s)->OH + oh) * (s)->OW + ow;    \
                                size_t ii =                                                        \
                                    (((size_t)b * (s)->C + c) * (s)->H + ih) * (s)->W + iw;        \
                                size_t iw_ =                                                       \
                                    (((size_t)oc * (s)->C + c) * (s)->KH + kh) * (s)->KW + kw;     \
                                BODY;                                                              \
                            }

static void naive_forward(const ConvShape *s, const float *inp, const float *w, float *out) {
    double *acc = xcalloc(out_n(s), sizeof(double));
    FOR_EACH_TAP(s, acc[io] += (double)inp[ii] * w[iw_]);
    for (size_t i = 0; i < out_n(s); i++)
        out[i] = (float)acc[i];
    free(acc);
}

static void naive_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                           float *dinp, float *dw) {
    double *gi = xcalloc(inp_n(s), sizeof(double)), *gw = xcalloc(w_n(s), sizeof(double));
    FOR_EACH_TAP(s, {
        gi[ii] += (double)dout[io] * w[iw_];
        gw[iw_] += (double)dout[io] * inp[ii];
    });
    for (size_t i = 0; i < inp_n(s); i++)
        dinp[i] = (float)gi[i];
    for (size_t i = 0; i < w_n(s); i++)
        dw[i] = (float)gw[i];
    free(gi);
    free(gw);
}

typedef struct {
    const ConvShape *s;
    float *inp, *w, *out, *ws;
    const float *R;
} Ctx;

static double loss(Ctx *c) {
    conv2d_forward(c->s, c->inp, c->w, c->out, c->ws);
    double L = 0;
    for (size_t i = 0; i < out_n(c->s); i++)
        L += (double)c->out[i] * c->R[i];
    return L;
}

static double loss_of(void *c) { return loss(c); }
static void fd_grad(Ctx *c, float *x, size_t n, float eps, float *num) {
    fd_central(loss_of, c, x, n, eps, num);
}

static void scale(float *x, size_t n, float k) {
    for (size_t i = 0; i < n; i++)
        x[i] *= k;
}

/* fd: also run finite differences (small shapes only). */
static void check_shape(Rng *r, ConvShape s, int fd) {
    char name[160];
    snprintf(name, sizeof name, "B%d C%d %dx%d OC%d k%dx%d s(%d,%d) p(%d,%d)", s.B, s.C, s.H, s.W,
             s.OC, s.KH, s.KW, s.SH, s.SW, s.PH, s.PW);
    printf("%s -> %dx%d\n", name, s.OH, s.OW);
    size_t ni = inp_n(&s), nw = w_n(&s), no = out_n(&s), nws = conv_workspace_floats(&s);
    float *inp = xalloc_floats(ni), *w = xalloc_floats(nw), *out = xalloc_floats(no),
          *ref = xalloc_floats(no), *R = xalloc_floats(no), *ws = nws ? xalloc_floats(nws) : NULL,
          *di = xalloc_floats(ni), *dw = xalloc_floats(nw), *di_ref = xalloc_floats(ni),
          *dw_ref = xalloc_floats(nw), *num_i = xalloc_floats(ni), *num_w = xalloc_floats(nw);
    fill_normal(r, inp, ni);
    fill_normal(r, w, nw);
    fill_normal(r, R, no);

    /* forward against the direct loops; out is overwritten, not accumulated */
    for (size_t i = 0; i < no; i++)
        out[i] = 1e6f;
    conv2d_forward(&s, inp, w, out, ws);
    naive_forward(&s, inp, w, ref);
    CHECK_CLOSE("forward vs direct loops", out, ref, no, 1e-4, 1e-4);

    /* backward against the direct loops */
    conv2d_backward(&s, inp, w, R, di, dw, ws);
    naive_backward(&s, inp, w, R, di_ref, dw_ref);
    CHECK_CLOSE("dinp vs direct loops", di, di_ref, ni, 1e-4, 1e-4);
    CHECK_CLOSE("dw vs direct loops", dw, dw_ref, nw, 1e-4, 1e-4);

    if (fd) {
        Ctx c = {&s, inp, w, out, ws, R};
        fd_grad(&c, inp, ni, 1e-2f, num_i);
        fd_grad(&c, w, nw, 1e-2f, num_w);
        CHECK_CLOSE("dinp vs finite differences", di, num_i, ni, 2e-3, 1e-2);
        CHECK_CLOSE("dw vs finite differences", dw, num_w, nw, 2e-3, 1e-2);
    }

    /* a second call accumulates: gradients double */
    conv2d_backward(&s, inp, w, R, di, dw, ws);
    scale(di_ref, ni, 2.0f);
    scale(dw_ref, nw, 2.0f);
    CHECK_CLOSE("dinp accumulates (x2)", di, di_ref, ni, 2e-4, 1e-4);
    CHECK_CLOSE("dw accumulates (x2)", dw, dw_ref, nw, 2e-4, 1e-4);

    /* NULL gradients are skipped; the other is still right */
    scale(di_ref, ni, 0.5f);
    scale(dw_ref, nw, 0.5f);
    memset(di, 0, ni * sizeof(float));
    memset(dw, 0, nw * sizeof(float));
    conv2d_backward(&s, inp, w, R, NULL, dw, ws);
    CHECK_CLOSE("dw alone (dinp NULL)", dw, dw_ref, nw, 1e-4, 1e-4);
    conv2d_backward(&s, inp, w, R, di, NULL, ws);
    CHECK_CLOSE("dinp alone (dw NULL)", di, di_ref, ni, 1e-4, 1e-4);
    conv2d_backward(&s, inp, w, R, NULL, NULL, ws); /* must not crash */

    float *bufs[] = {inp, w, out, ref, R, ws, di, dw, di_ref, dw_ref, num_i, num_w};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

/* forward, the folded-BN forward (bias + residual + ReLU), dinp and dw of
 * s into fresh buffers got[0..3] */
static void run_paths(const ConvShape *s, const float *inp, const float *w, const float *bias,
                      const float *R, float *ws, float *got[4]) {
    got[0] = xalloc_floats(out_n(s));
    got[1] = xalloc_floats(out_n(s));
    got[2] = xalloc_floats(inp_n(s));
    got[3] = xalloc_floats(w_n(s));
    conv2d_forward(s, inp, w, got[0], ws);
    conv2d_bias_forward(s, inp, w, NULL, bias, R, 1, got[1], ws);
    conv2d_backward(s, inp, w, R, got[2], got[3], ws);
}

/* The stem's shape (C = 1, 3x3, stride 1, pad 1) runs directly on the AVX
 * GEMM paths: its forward and folded-BN forward (bias + residual + ReLU)
 * give the bits of im2col + GEMM, on widths with and without a partial
 * vector; its backward stays im2col's. */
static void check_stem(Rng *r, ConvShape s) {
    size_t ni = inp_n(&s), no = out_n(&s), nw = w_n(&s), nws = conv_workspace_floats(&s);
    float *inp = xalloc_floats(ni), *w = xalloc_floats(nw), *R = xalloc_floats(no),
          *bias = xalloc_floats((size_t)s.OC), *ws = xalloc_floats(nws ? nws : 1);
    fill_normal(r, inp, ni);
    fill_normal(r, w, nw);
    fill_normal(r, R, no);
    fill_normal(r, bias, (size_t)s.OC);
    float *got[2][4];
    for (int direct = 0; direct < 2; direct++) {
        conv_set_stem_direct(direct);
        run_paths(&s, inp, w, bias, R, ws, got[direct]);
    }
    conv_set_stem_direct(1);
    const size_t n[4] = {no, no, ni, nw};
    const char *what[4] = {"forward", "bias+residual+relu forward", "dinp", "dw"};
    for (int k = 0; k < 4; k++) {
        CHECK(!memcmp(got[0][k], got[1][k], n[k] * sizeof(float)),
              "stem B%d %dx%d OC%d (%s): %s direct = im2col bit for bit", s.B, s.H, s.W, s.OC,
              gemm_path_name(gemm_path()), what[k]);
        free(got[0][k]);
        free(got[1][k]);
    }
    float *bufs[] = {inp, w, R, bias, ws};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

/* pool.h threads: forward, the folded-BN forward (bias + residual + ReLU)
 * and backward give the same bits with 1 and 3 threads. */
static void check_threads(Rng *r, ConvShape s) {
    size_t ni = inp_n(&s), nw = w_n(&s), no = out_n(&s), nws = conv_workspace_floats(&s);
    float *inp = xalloc_floats(ni), *w = xalloc_floats(nw), *R = xalloc_floats(no),
          *bias = xalloc_floats((size_t)s.OC), *ws = xalloc_floats(nws ? nws : 1);
    fill_normal(r, inp, ni);
    fill_normal(r, w, nw);
    fill_normal(r, R, no);
    fill_normal(r, bias, (size_t)s.OC);
    float *got[2][4];
    const int threads[2] = {1, 3};
    for (int t = 0; t < 2; t++) {
        pool_set_threads(threads[t]);
        run_paths(&s, inp, w, bias, R, ws, got[t]);
    }
    pool_set_threads(1);
    const size_t n[4] = {no, no, ni, nw};
    const char *what[4] = {"forward", "bias+residual+relu forward", "dinp", "dw"};
    for (int k = 0; k < 4; k++) {
        CHECK(!memcmp(got[0][k], got[1][k], n[k] * sizeof(float)),
              "B%d C%d %dx%d OC%d s(%d,%d): %s bit-identical with 1 and 3 threads", s.B, s.C, s.H,
              s.W, s.OC, s.SH, s.SW, what[k]);
        free(got[0][k]);
        free(got[1][k]);
    }
    float *bufs[] = {inp, w, R, bias, ws};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

/* Winograd F(2x2,3x3) (3x3 stride 1 pad 1, >= 16 channels each way) against
 * the im2col path on the same data: forward, the folded-BN forward,
 * dinp and dw. The tolerance is the direct-loop one of check_shape: the
 * transforms add and halve, which keeps the error within a few ulps of the
 * products' sum (measured max differences are printed). */
static void check_winograd(Rng *r, ConvShape s) {
    size_t ni = inp_n(&s), nw = w_n(&s), no = out_n(&s), nws = conv_workspace_floats(&s);
    conv_set_winograd(WINO_OFF); /* room for both paths: the im2col run below */
    if (conv_workspace_floats(&s) > nws) nws = conv_workspace_floats(&s);
    float *inp = xalloc_floats(ni), *w = xalloc_floats(nw), *R = xalloc_floats(no),
          *bias = xalloc_floats((size_t)s.OC), *ws = xalloc_floats(nws);
    fill_normal(r, inp, ni);
    fill_normal(r, w, nw);
    fill_normal(r, R, no);
    fill_normal(r, bias, (size_t)s.OC);
    float *got[2][4];
    for (int on = 1; on >= 0; on--) {
        conv_set_winograd(on);
        run_paths(&s, inp, w, bias, R, ws, got[on]);
    }
    conv_set_winograd(1);
    const size_t n[4] = {no, no, ni, nw};
    const char *what[4] = {"forward", "bias+residual+relu forward", "dinp", "dw"};
    /* F(2x2)'s transforms at 4 and at 8 lanes (AVX2): the same bits */
    if (conv_set_winograd_lanes(8) == 8) {
        float *lanes[2][4];
        run_paths(&s, inp, w, bias, R, ws, lanes[1]);
        conv_set_winograd_lanes(4);
        run_paths(&s, inp, w, bias, R, ws, lanes[0]);
        for (int k = 0; k < 4; k++) {
            CHECK(!memcmp(lanes[0][k], lanes[1][k], n[k] * sizeof(float)),
                  "B%d C%d %dx%d OC%d winograd %s: 8 lanes == 4 lanes, bit for bit", s.B, s.C,
                  s.H, s.W, s.OC, what[k]);
            free(lanes[0][k]);
            free(lanes[1][k]);
        }
    }
    conv_set_winograd_lanes(0);
    /* inference keeps the transformed weights: with the F(2x2) tile of the
     * training path, the same bits as transforming per call (F(4x4) kept
     * weights: check_winograd4) */
    conv_set_winograd_tile(2);
    size_t nt = conv_transformed_weights_floats(&s);
    CHECK(nt == 16 * (size_t)s.OC * s.C, "B%d C%d OC%d: %zu transformed weight floats", s.B, s.C,
          s.OC, nt);
    float *wt = xalloc_floats(nt), *pre = xalloc_floats(no);
    conv_transform_weights(&s, w, wt);
    conv2d_bias_forward(&s, inp, w, wt, bias, R, 1, pre, ws);
    CHECK(!memcmp(pre, got[1][1], no * sizeof(float)),
          "B%d C%d OC%d: folded forward with kept transformed weights == transformed per call",
          s.B, s.C, s.OC);
    conv_set_winograd_tile(0);
    free(wt);
    free(pre);
    for (int k = 0; k < 4; k++) {
        char name[160];
        snprintf(name, sizeof name, "B%d C%d %dx%d OC%d winograd %s vs im2col", s.B, s.C, s.H, s.W,
                 s.OC, what[k]);
        CHECK_CLOSE(name, got[1][k], got[0][k], n[k], 1e-4, 1e-4);
        free(got[0][k]);
        free(got[1][k]);
    }
    float *bufs[] = {inp, w, R, bias, ws};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

static double rms(const float *x, size_t n) {
    double s2 = 0;
    for (size_t i = 0; i < n; i++)
        s2 += (double)x[i] * x[i];
    return sqrt(s2 / (double)(n ? n : 1));
}

/* The inference forward with kept transformed weights on F(4x4, 3x3)
 * (tile 4: forced, or auto where it picks it): 36 planes of weights, the
 * folded forward (bias + residual + ReLU) and the plain one against the
 * direct loops in double, and 1 vs 3 threads bit for bit. Tolerance: F(4x4)
 * transforms multiply by up to 8 and 5 and divide by 6 and 24, so its
 * float error is ~100x F(2x2)'s, about 3e-5 of the output's RMS on these
 * shapes (the largest differences are printed); checked at 2e-4 of the
 * reference's RMS. A wrong plane, tap or edge is an error of the RMS's
 * order. */
static void check_winograd4(Rng *r, ConvShape s, int tile) {
    conv_set_winograd(WINO_ON);
    conv_set_winograd_tile(tile);
    size_t ni = inp_n(&s), nw = w_n(&s), no = out_n(&s), nws = conv_workspace_floats(&s);
    size_t nt = conv_transformed_weights_floats(&s);
    float *inp = xalloc_floats(ni), *w = xalloc_floats(nw), *R = xalloc_floats(no),
          *bias = xalloc_floats((size_t)s.OC), *ws = xalloc_floats(nws),
          *wt = xalloc_floats(nt), *want = xalloc_floats(no), *got = xalloc_floats(no),
          *got3 = xalloc_floats(no), *plain = xalloc_floats(no);
    fill_normal(r, inp, ni);
    fill_normal(r, w, nw);
    fill_normal(r, R, no);
    fill_normal(r, bias, (size_t)s.OC);
    CHECK(nt == 36 * (size_t)s.OC * s.C, "B%d C%d %dx%d OC%d tile %d: %zu transformed weight floats (36 planes)",
          s.B, s.C, s.H, s.W, s.OC, tile, nt);
    conv_transform_weights(&s, w, wt);
    naive_forward(&s, inp, w, want);
    float *fwant = xalloc_floats(no); /* the folded epilogue: + bias + R, then ReLU */
    for (int b = 0; b < s.B; b++)
        for (int oc = 0; oc < s.OC; oc++)
            for (int i = 0; i < s.OH * s.OW; i++) {
                size_t at = ((size_t)b * s.OC + oc) * s.OH * s.OW + (size_t)i;
                float v = want[at] + bias[oc] + R[at];
                fwant[at] = v > 0 ? v : 0;
            }
    const double tol = 2e-4 * rms(want, no);
    char name[160];
    conv2d_bias_forward(&s, inp, w, wt, bias, R, 1, got, ws);
    snprintf(name, sizeof name, "B%d C%d %dx%d OC%d F(4x4) folded forward vs direct", s.B, s.C,
             s.H, s.W, s.OC);
    CHECK_CLOSE(name, got, fwant, no, tol, 0.0);
    /* no bias: the plain store of the output transform */
    memset(plain, 0, no * sizeof(float));
    float *zero = xcalloc((size_t)s.OC, sizeof(float));
    conv2d_bias_forward(&s, inp, w, wt, zero, NULL, 0, plain, ws);
    snprintf(name, sizeof name, "B%d C%d %dx%d OC%d F(4x4) forward vs direct", s.B, s.C, s.H,
             s.W, s.OC);
    CHECK_CLOSE(name, plain, want, no, tol, 0.0);
    pool_set_threads(3);
    conv2d_bias_forward(&s, inp, w, wt, bias, R, 1, got3, ws);
    pool_set_threads(1);
    CHECK(!memcmp(got, got3, no * sizeof(float)),
          "B%d C%d %dx%d OC%d F(4x4) forward bit-identical with 1 and 3 threads", s.B, s.C, s.H,
          s.W, s.OC);
    float *bufs[] = {inp, w, R, bias, ws, wt, want, got, got3, plain, fwant, zero};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
    conv_set_winograd_tile(0);
}

int main(void) {
    Rng r;
    rng_seed(&r, 42);

    ConvShape s = conv_shape(1, 3, 32, 128, 8, 3, 3, 1, 1, 1, 1);
    CHECK(s.OH == 32 && s.OW == 128, "3x3 pad 1 keeps the size, got %dx%d", s.OH, s.OW);
    s = conv_shape(2, 4, 32, 128, 8, 3, 3, 2, 1, 1, 1);
    CHECK(s.OH == 16 && s.OW == 128, "stride (2,1) halves height, got %dx%d", s.OH, s.OW);
    s = conv_shape(2, 4, 7, 9, 8, 1, 1, 2, 2, 0, 0);
    CHECK(s.OH == 4 && s.OW == 5, "1x1 stride 2 on 7x9 gives 4x5, got %dx%d", s.OH, s.OW);
    CHECK(conv_workspace_floats(&s) >= (size_t)4 * 2 * 4 * 5, "workspace holds the col buffer");

    /* B C H W OC KH KW SH SW PH PW */
    check_shape(&r, conv_shape(1, 2, 5, 7, 3, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(3, 2, 6, 9, 3, 3, 3, 2, 2, 1, 1), 1);
    check_shape(&r, conv_shape(3, 3, 6, 7, 2, 3, 3, 2, 1, 1, 1), 1);
    check_shape(&r, conv_shape(1, 2, 5, 5, 3, 3, 3, 2, 1, 1, 1), 1);
    check_shape(&r, conv_shape(1, 4, 3, 5, 3, 1, 1, 1, 1, 0, 0), 1);
    check_shape(&r, conv_shape(3, 4, 3, 5, 3, 1, 1, 1, 1, 0, 0), 1);
    check_shape(&r, conv_shape(3, 3, 6, 5, 4, 1, 1, 2, 1, 0, 0), 1);
    check_shape(&r, conv_shape(1, 3, 5, 7, 2, 1, 1, 2, 2, 0, 0), 1);
    check_shape(&r, conv_shape(2, 2, 7, 9, 3, 3, 2, 2, 3, 0, 1), 1);
    check_shape(&r, conv_shape(2, 2, 4, 6, 3, 5, 5, 1, 1, 2, 2), 1);
    /* realistic sizes, against the direct loops only */
    check_shape(&r, conv_shape(2, 8, 32, 40, 16, 3, 3, 1, 1, 1, 1), 0);
    check_shape(&r, conv_shape(3, 8, 16, 33, 16, 3, 3, 2, 1, 1, 1), 0);
    check_shape(&r, conv_shape(2, 16, 8, 20, 32, 1, 1, 2, 1, 0, 0), 0);
    check_shape(&r, conv_shape(2, 16, 8, 20, 8, 1, 1, 1, 1, 0, 0), 0);
    /* threads: a folded batch, per-sample maps, a strided 1x1, a pointwise conv */
    check_threads(&r, conv_shape(4, 16, 16, 64, 32, 3, 3, 2, 2, 1, 1));
    /* the stem (C = 1): against direct loops (finite differences on a small
     * one), bit for bit against im2col on every AVX path, and threads */
    check_shape(&r, conv_shape(2, 1, 5, 37, 6, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(3, 1, 32, 128, 16, 3, 3, 1, 1, 1, 1), 0);
    for (int p = GEMM_AVX512; p <= GEMM_AVX2; p++)
        if (gemm_force_path((GemmPath)p) == 0) {
            check_stem(&r, conv_shape(3, 1, 32, 128, 16, 3, 3, 1, 1, 1, 1));
            check_stem(&r, conv_shape(2, 1, 7, 37, 5, 3, 3, 1, 1, 1, 1));
            check_stem(&r, conv_shape(1, 1, 4, 3, 8, 3, 3, 1, 1, 1, 1));
        }
    gemm_force_path(GEMM_AUTO);
    check_threads(&r, conv_shape(3, 1, 32, 64, 16, 3, 3, 1, 1, 1, 1));
    check_threads(&r, conv_shape(2, 8, 32, 40, 16, 3, 3, 1, 1, 1, 1));
    check_threads(&r, conv_shape(4, 32, 8, 32, 64, 1, 1, 2, 1, 0, 0));
    check_threads(&r, conv_shape(4, 32, 8, 32, 64, 1, 1, 1, 1, 0, 0));
    /* Winograd shapes: against the direct loops and finite differences (odd
     * and even sizes, one-row and one-column maps), against im2col, and on
     * 3 threads; the last spans several sample chunks. WINO_ON: every 16-channel
     * shape takes Winograd both ways */
    conv_set_winograd(WINO_ON);
    check_shape(&r, conv_shape(1, 16, 5, 7, 16, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(2, 16, 2, 6, 17, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(2, 17, 1, 5, 16, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(1, 16, 4, 1, 16, 3, 3, 1, 1, 1, 1), 1);
    check_shape(&r, conv_shape(3, 32, 8, 33, 16, 3, 3, 1, 1, 1, 1), 0);
    check_winograd(&r, conv_shape(2, 16, 7, 9, 24, 3, 3, 1, 1, 1, 1));
    check_winograd(&r, conv_shape(4, 64, 4, 32, 64, 3, 3, 1, 1, 1, 1));
    check_winograd(&r, conv_shape(3, 64, 16, 64, 64, 3, 3, 1, 1, 1, 1));
    check_winograd(&r, conv_shape(2, 16, 5, 27, 16, 3, 3, 1, 1, 1, 1)); /* 14 tiles: 8 + 4 + 2 */
    check_winograd(&r, conv_shape(2, 16, 3, 1, 16, 3, 3, 1, 1, 1, 1));  /* one column */
    check_threads(&r, conv_shape(3, 64, 16, 64, 64, 3, 3, 1, 1, 1, 1));
    check_threads(&r, conv_shape(4, 32, 5, 11, 16, 3, 3, 1, 1, 1, 1));
    /* 5 one-sample chunks on 3 threads, whole chunks per thread (2, 2, 1) */
    check_threads(&r, conv_shape(5, 32, 16, 64, 32, 3, 3, 1, 1, 1, 1));
    /* the default (auto): the Winograd forward from 16 channels each way
     * (the backward from 32), 3x3 stride 1 only */
    conv_set_winograd(WINO_AUTO);
    ConvShape c8 = conv_shape(2, 8, 8, 8, 32, 3, 3, 1, 1, 1, 1);
    ConvShape c16 = conv_shape(2, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1);
    ConvShape s2 = conv_shape(2, 32, 8, 8, 32, 3, 3, 2, 1, 1, 1);
    CHECK(conv_transformed_weights_floats(&c8) == 0 && conv_transformed_weights_floats(&c16) > 0 &&
              conv_transformed_weights_floats(&s2) == 0,
          "auto: a Winograd forward for 16->32 3x3 stride 1, not for 8->32 nor stride 2");
    check_winograd(&r, conv_shape(3, 32, 8, 32, 48, 3, 3, 1, 1, 1, 1));
    check_winograd(&r, conv_shape(2, 16, 8, 32, 24, 3, 3, 1, 1, 1, 1)); /* im2col backward */
    /* F(4x4, 3x3) for inference: auto takes it from 3 rows up (2 rows: F(2x2)) */
    ConvShape h2 = conv_shape(2, 32, 2, 32, 32, 3, 3, 1, 1, 1, 1);
    ConvShape h3 = conv_shape(2, 32, 3, 32, 32, 3, 3, 1, 1, 1, 1);
    CHECK(conv_transformed_weights_floats(&h2) == 16 * 32 * 32 &&
              conv_transformed_weights_floats(&h3) == 36 * 32 * 32,
          "auto: inference F(2x2) on a 2-high map, F(4x4) on a 3-high one");
    check_winograd4(&r, conv_shape(2, 16, 4, 32, 16, 3, 3, 1, 1, 1, 1), 0);
    check_winograd4(&r, conv_shape(3, 64, 16, 64, 48, 3, 3, 1, 1, 1, 1), 0); /* several chunks */
    check_winograd4(&r, conv_shape(2, 16, 7, 9, 24, 3, 3, 1, 1, 1, 1), 0);  /* odd: partial tiles */
    check_winograd4(&r, conv_shape(2, 17, 3, 13, 16, 3, 3, 1, 1, 1, 1), 0);
    /* 4 chunks of 2, 2, 2, 1 samples on 3 threads, whole chunks per thread */
    check_winograd4(&r, conv_shape(7, 16, 16, 128, 16, 3, 3, 1, 1, 1, 1), 0);
    check_winograd4(&r, conv_shape(2, 16, 1, 5, 16, 3, 3, 1, 1, 1, 1), 4);  /* one row, forced */
    check_winograd4(&r, conv_shape(1, 16, 6, 1, 16, 3, 3, 1, 1, 1, 1), 4);  /* one column */
    check_winograd4(&r, conv_shape(2, 16, 2, 30, 16, 3, 3, 1, 1, 1, 1), 4); /* 2 rows, forced */
    conv_set_winograd(WINO_OFF);
    CHECK(conv_transformed_weights_floats(&c16) == 0, "off: no Winograd shapes");
    TEST_END();
}
