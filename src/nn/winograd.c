/* winograd.c - 3x3, stride-1, pad-1 convolutions by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin & Gray 2015): forward, input gradient and
 * weight gradient, for conv.c.
 *
 * For: the 3x3 stride-1 convolutions of the ResNet blocks once both channel
 * counts are at least WINO_MIN_CHANNELS (the backward under the default
 * mode: WINO_AUTO_MIN_CHANNELS), as measured faster than im2col
 * (bench/conv_bench.c, doc/bench.md). Each 2x2 output tile reads a 4x4
 * input tile; in the transformed domain the convolution is 16 independent
 * products, so a chunk of samples costs 16 GEMMs (OC x C) . (C x tiles):
 * 4 multiply-adds per output per input channel instead of im2col's 9.
 * Not for: other kernels, strides or paddings (conv.c's im2col path), maps
 * wider than WINO_MAX_W.
 *
 *   U = G g G^T (weights, 4x4 per (oc, c)),  V = B^T d B (input tiles),
 *   Y = A^T (U . V) A,  with the element product summed over c by GEMM.
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
 *   G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
 *   A^T = [1 1 1 0; 0 1 -1 -1]
 * Backward: the input gradient is the same forward run over dout with the
 * weights flipped in space and C/OC swapped (stride 1, pad 1); the weight
 * gradient is dU = sum over tiles of (A dY A^T) . V, by GEMM, then
 * dw = G^T dU G.
 *
 * Layouts (per chunk of nb samples, N = nb * TH * TW tiles, column
 * n = (b, ty, tx)): transformed matrices are 16 planes, plane xi = 4i + j
 * for tile element (i, j). U is (16, OC, C); V is (C, 16, N) and M
 * (OC, 16, N): plane xi of V is the (C, N) matrix at V + xi N with row
 * stride 16 N, so a channel's 16 planes lie together for the transforms
 * (in L1) while each GEMM still reads a plain strided matrix.
 *
 * Rounding: a different summation than im2col's (the transforms add and
 * halve), within a few float ulps of it per product; tests/test_conv.c
 * checks both paths against a double reference with the same tolerance.
 * Threads: the transforms split over channels (pool_for), the 16 GEMMs of a
 * chunk over planes (each whole on one thread); bit-identical for any
 * thread count.
 */
#include "ocrkd/nn.h"

#include <stdlib.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include "vec4.h"
#include "winograd.h"

/* floats of V plus M per chunk: 1 MB keeps the chunk's transformed
 * operands in L2 between the transforms and the GEMMs. Measured on the
 * ResNet-18 w16 maps at batch 32 (fwd and bwd, 1 thread): 1 MB beat 0.5,
 * 2 and 4 MB by 2-20 %. -DWINO_CHUNK_FLOATS=... to tune. */
#ifndef WINO_CHUNK_FLOATS
#define WINO_CHUNK_FLOATS ((size_t)256 << 10)
#endif

static int g_wino = -1; /* -1: not read yet; else a WinogradMode */

/* OCRKD_WINOGRAD = auto (default) | on | off */
static int wino_mode(void) {
    if (g_wino < 0) {
        const char *env = getenv("OCRKD_WINOGRAD");
        if (!env || !*env || !strcmp(env, "auto"))
            g_wino = WINO_AUTO;
        else if (!strcmp(env, "on") || !strcmp(env, "1"))
            g_wino = WINO_ON;
        else if (!strcmp(env, "off") || !strcmp(env, "0"))
            g_wino = WINO_OFF;
        else
            fatal(EXIT_USAGE, "OCRKD_WINOGRAD=%s: unknown; auto, on or off", env);
    }
    return g_wino;
}

void conv_set_winograd(int mode) {
    g_wino = mode == WINO_ON || mode == WINO_AUTO ? mode : WINO_OFF;
}

static int wino_shape(const ConvShape *s, int min_ch) {
    return s->KH == 3 && s->KW == 3 && s->SH == 1 && s->SW == 1 && s->PH == 1 && s->PW == 1 &&
           s->W <= WINO_MAX_W && s->C >= min_ch && s->OC >= min_ch;
}

/* auto takes the shapes where Winograd measured faster than im2col
 * (doc/bench.md): the forward from WINO_MIN_CHANNELS channels each way,
 * the backward from WINO_AUTO_MIN_CHANNELS */
int wino_applies(const ConvShape *s) {
    return wino_mode() != WINO_OFF && wino_shape(s, WINO_MIN_CHANNELS);
}

int wino_applies_backward(const ConvShape *s) {
    const int mode = wino_mode();
    return mode != WINO_OFF &&
           wino_shape(s, mode == WINO_ON ? WINO_MIN_CHANNELS : WINO_AUTO_MIN_CHANNELS);
}

static int tiles_h(const ConvShape *s) {
    return (s->OH + 1) / 2;
}
static int tiles_w(const ConvShape *s) {
    return (s->OW + 1) / 2;
}

/* samples per chunk for a batch of B */
/* ... but never fewer tiles than this per GEMM: with wide layers (512
 * channels on a 2x32 map) a 1 MB chunk held one sample, 16 columns, and the
 * GEMMs spent their time packing U (the full-size student's step ran 0.97x
 * PyTorch) */
#define WINO_MIN_COLUMNS 256

static int chunk_samples(const ConvShape *s, int B) {
    const size_t tiles = (size_t)tiles_h(s) * tiles_w(s);
    size_t nb = WINO_CHUNK_FLOATS / (16 * (size_t)(s->C + s->OC) * tiles);
    size_t nb_min = (WINO_MIN_COLUMNS + tiles - 1) / tiles;
    if (nb < nb_min) nb = nb_min;
    return nb < (size_t)B ? (int)nb : B;
}

size_t wino_workspace_floats(const ConvShape *s) {
    size_t tiles = (size_t)chunk_samples(s, s->B) * tiles_h(s) * tiles_w(s);
    return 16 * (size_t)s->OC * s->C + 16 * (size_t)(s->C + s->OC) * tiles;
}

/* ---- transforms ---- */

/* U (16, OC, C) from w (OC, C, 3, 3); flip: from w flipped in space and
 * transposed, i.e. U (16, C, OC) of w'[c][oc] = w[oc][c][2-kh][2-kw]. */
typedef struct {
    const float *w;
    float *U;
    int OC, C, flip;
} WeightPass;

static void weight_tiles(void *arg, size_t r0, size_t r1) {
    const WeightPass *p = arg;
    const size_t plane = (size_t)p->OC * p->C;
    for (size_t r = r0; r < r1; r++) { /* r = oc * C + c of w */
        const float *g = p->w + r * 9;
        float k[9];
        for (int i = 0; i < 9; i++)
            k[i] = p->flip ? g[8 - i] : g[i];
        float t[4][3]; /* G g */
        for (int j = 0; j < 3; j++) {
            t[0][j] = k[j];
            t[1][j] = 0.5f * (k[j] + k[3 + j] + k[6 + j]);
            t[2][j] = 0.5f * (k[j] - k[3 + j] + k[6 + j]);
            t[3][j] = k[6 + j];
        }
        size_t at = p->flip ? (r % p->C) * p->OC + r / p->C : r;
        for (int i = 0; i < 4; i++) { /* (G g) G^T */
            float *u = p->U + (size_t)(4 * i) * plane + at;
            u[0] = t[i][0];
            u[plane] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[2 * plane] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[3 * plane] = t[i][2];
        }
    }
}

static void transform_weights(const float *w, int OC, int C, int flip, float *U) {
    WeightPass p = {w, U, OC, C, flip};
    pool_for((size_t)OC * C, 64, weight_tiles, &p);
}

/* V (16, C, N) of input tiles: x (nb, C, H, W); also D of dout tiles
 * (grad_tiles, with C = OC) */
typedef struct {
    const float *x;
    float *V;
    int nb, C, H, W, TH, TW;
    size_t N;
} TilePass;

/* room for the even or odd half of a row, plus a vector of overrun */
#define HALF_ROW (WINO_MAX_W / 2 + 8)

/* The padded row p[k] = x[k - pad] (0 outside [0, W)) split into its even
 * and odd elements: ev[j] = p[2j], od[j] = p[2j + 1], j in [0, n); a NULL
 * x is a row of padding. pad is 1 (input tiles) or 0 (dout tiles). */
static void split_row(const float *x, int W, int pad, int n, float *ev, float *od) {
    memset(ev, 0, (size_t)(n + 4) * sizeof(float));
    memset(od, 0, (size_t)(n + 4) * sizeof(float));
    if (!x) return;
    /* x[i] lands in p[i + pad]: even p indices from odd or even x by pad */
    float *to_even = pad ? od : ev, *to_odd = pad ? ev + 1 : od;
    int i = 0;
    for (; i + 8 <= W; i += 8) {
        v4f a = load4(x + i), b = load4(x + i + 4);
        store4(to_even + i / 2, __builtin_shuffle(a, b, (v4i){0, 2, 4, 6}));
        store4(to_odd + i / 2, __builtin_shuffle(a, b, (v4i){1, 3, 5, 7}));
    }
    for (; i < W; i++)
        (i % 2 ? to_odd : to_even)[i / 2] = x[i];
}

static void input_tiles(void *arg, size_t c0, size_t c1) {
    const TilePass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float ev[4][HALF_ROW], od[4][HALF_ROW], te[4][HALF_ROW], to[4][HALF_ROW];
    for (size_t c = c0; c < c1; c++)
        for (int b = 0; b < p->nb; b++) {
            const float *x = p->x + ((size_t)b * p->C + c) * H * W;
            float *v = p->V + c * 16 * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 4; i++) { /* padded rows 2ty-1 .. 2ty+2 */
                    int y = 2 * ty - 1 + i;
                    split_row(y >= 0 && y < H ? x + (size_t)y * W : NULL, W, 1, TW + 1, ev[i],
                              od[i]);
                }
                for (int k = 0; k < TW + 1; k += 4) { /* B^T d: along the height */
                    v4f e0 = load4(ev[0] + k), e1 = load4(ev[1] + k), e2 = load4(ev[2] + k),
                        e3 = load4(ev[3] + k);
                    v4f o0 = load4(od[0] + k), o1 = load4(od[1] + k), o2 = load4(od[2] + k),
                        o3 = load4(od[3] + k);
                    store4(te[0] + k, e0 - e2), store4(to[0] + k, o0 - o2);
                    store4(te[1] + k, e1 + e2), store4(to[1] + k, o1 + o2);
                    store4(te[2] + k, e2 - e1), store4(to[2] + k, o2 - o1);
                    store4(te[3] + k, e1 - e3), store4(to[3] + k, o1 - o3);
                }
                float *vt = v + (size_t)ty * TW;
                for (int i = 0; i < 4; i++) { /* (B^T d) B: along the width */
                    float *v0 = vt + (size_t)(4 * i) * plane, *v1 = v0 + plane, *v2 = v1 + plane,
                          *v3 = v2 + plane;
                    const float *e = te[i], *o = to[i]; /* row r: r[2tx] = e[tx], r[2tx+1] = o[tx] */
                    int tx = 0;
                    for (; tx + 4 <= TW; tx += 4) {
                        v4f a = load4(e + tx), bb = load4(o + tx), cc = load4(e + tx + 1),
                            d = load4(o + tx + 1);
                        store4(v0 + tx, a - cc);
                        store4(v1 + tx, bb + cc);
                        store4(v2 + tx, cc - bb);
                        store4(v3 + tx, bb - d);
                    }
                    for (; tx < TW; tx++) {
                        v0[tx] = e[tx] - e[tx + 1];
                        v1[tx] = o[tx] + e[tx + 1];
                        v2[tx] = e[tx + 1] - o[tx];
                        v3[tx] = o[tx] - o[tx + 1];
                    }
                }
            }
        }
}

/* y (nb, OC, H, W) = A^T M A of M (16, OC, N), then + bias (+ res) (then
 * ReLU) when bias is set; or y += A^T M A when acc */
typedef struct {
    const float *M, *bias, *res;
    float *y;
    int nb, OC, H, W, TH, TW, acc, relu;
    size_t N;
} OutPass;

/* (A^T M) A of n (1..4) tiles whose 16 planes start at m, plane apart
 * (lane = tile): the two output rows' even (a) and odd (b) columns. A
 * column j of the planes at a time, so that few vectors stay live. */
static inline __attribute__((always_inline)) void output_transform(const float *m, size_t plane,
                                                                   int n, v4f *a0, v4f *b0,
                                                                   v4f *a1, v4f *b1) {
    v4f t0[4], t1[4]; /* A^T M: along the height */
    for (int j = 0; j < 4; j++) {
        const float *c = m + j * plane;
        v4f e0, e1, e2, e3;
        if (n == 4) {
            e0 = load4(c), e1 = load4(c + 4 * plane), e2 = load4(c + 8 * plane);
            e3 = load4(c + 12 * plane);
        } else {
            e0 = load4_n(c, n), e1 = load4_n(c + 4 * plane, n), e2 = load4_n(c + 8 * plane, n);
            e3 = load4_n(c + 12 * plane, n);
        }
        t0[j] = e0 + e1 + e2;
        t1[j] = e1 - e2 - e3;
    }
    *a0 = t0[0] + t0[1] + t0[2]; /* (A^T M) A: along the width */
    *b0 = t0[1] - t0[2] - t0[3];
    *a1 = t1[0] + t1[1] + t1[2];
    *b1 = t1[1] - t1[2] - t1[3];
}

/* out[2tx + 2l] = a[l], out[2tx + 2l + 1] = b[l] for the first 2n of 8 */
static inline void store_pairs(float *out, v4f a, v4f b, int n) {
    v4f lo = __builtin_shuffle(a, b, (v4i){0, 4, 1, 5}), hi = __builtin_shuffle(a, b, (v4i){2, 6, 3, 7});
    if (n == 4) {
        store4(out, lo);
        store4(out + 4, hi);
    } else {
        float tmp[8];
        store4(tmp, lo);
        store4(tmp + 4, hi);
        memcpy(out, tmp, (size_t)(2 * n) * sizeof(float));
    }
}

static void output_tiles(void *arg, size_t o0, size_t o1) {
    const OutPass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float out[2][WINO_MAX_W + 8];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *m = p->M + oc * 16 * p->N + (size_t)b * TH * TW;
            const size_t at = ((size_t)b * p->OC + oc) * H * W;
            float *y = p->y + at;
            for (int ty = 0; ty < TH; ty++) {
                const float *mt = m + (size_t)ty * TW;
                for (int tx = 0; tx < TW; tx += 4) {
                    int n = TW - tx < 4 ? TW - tx : 4;
                    v4f a0, b0, a1, b1;
                    if (n == 4)
                        output_transform(mt + tx, plane, 4, &a0, &b0, &a1, &b1);
                    else
                        output_transform(mt + tx, plane, n, &a0, &b0, &a1, &b1);
                    store_pairs(out[0] + 2 * tx, a0, b0, n);
                    store_pairs(out[1] + 2 * tx, a1, b1, n);
                }
                for (int i = 0; i < 2 && 2 * ty + i < H; i++) {
                    const size_t r = (size_t)(2 * ty + i) * W;
                    if (p->acc)
                        for (int k = 0; k < W; k++)
                            y[r + k] += out[i][k];
                    else if (p->bias)
                        conv_bias_act_run(y + r, out[i], p->bias[oc],
                                          p->res ? p->res + at + r : NULL, p->relu, (size_t)W);
                    else
                        memcpy(y + r, out[i], W * sizeof(float));
                }
            }
        }
}

/* D (16, OC, N) = A dY A^T of dout tiles (nb, OC, H, W); 0 beyond the map */
static void grad_tiles(void *arg, size_t o0, size_t o1) {
    const TilePass *p = arg; /* x = dout, C = OC, V = D */
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float ev[2][HALF_ROW], od[2][HALF_ROW];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *dy = p->x + ((size_t)b * p->C + oc) * H * W;
            float *d = p->V + oc * 16 * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 2; i++) {
                    int y = 2 * ty + i;
                    split_row(y < H ? dy + (size_t)y * W : NULL, W, 0, TW, ev[i], od[i]);
                }
                float *dt = d + (size_t)ty * TW;
                for (int tx = 0; tx < TW; tx += 4) {
                    int n = TW - tx < 4 ? TW - tx : 4;
                    v4f a = load4(ev[0] + tx), bb = load4(od[0] + tx), cc = load4(ev[1] + tx),
                        dd = load4(od[1] + tx);
                    /* A dY: rows y0, y0 + y1, y0 - y1, -y1; then each row (p, q) ->
                     * (p, p + q, p - q, -q) */
                    v4f r[4][2] = {{a, bb}, {a + cc, bb + dd}, {a - cc, bb - dd}, {-cc, -dd}};
                    for (int i = 0; i < 4; i++) {
                        float *o = dt + (size_t)(4 * i) * plane + tx;
                        v4f q[4] = {r[i][0], r[i][0] + r[i][1], r[i][0] - r[i][1], -r[i][1]};
                        for (int j = 0; j < 4; j++)
                            if (n == 4) store4(o + j * plane, q[j]);
                            else store4_n(o + j * plane, q[j], n);
                    }
                }
            }
        }
}

/* dw (OC, C, 3, 3) += G^T dU G of dU (16, OC, C) */
typedef struct {
    const float *dU;
    float *dw;
    size_t plane;
} WeightGradPass;

static void weight_grads(void *arg, size_t r0, size_t r1) {
    const WeightGradPass *p = arg;
    for (size_t r = r0; r < r1; r++) {
        float e[16];
        for (int k = 0; k < 16; k++)
            e[k] = p->dU[k * p->plane + r];
        float s[3][4]; /* G^T dU: along the height */
        for (int j = 0; j < 4; j++) {
            s[0][j] = e[j] + 0.5f * (e[4 + j] + e[8 + j]);
            s[1][j] = 0.5f * (e[4 + j] - e[8 + j]);
            s[2][j] = 0.5f * (e[4 + j] + e[8 + j]) + e[12 + j];
        }
        float *g = p->dw + r * 9;
        for (int i = 0; i < 3; i++) { /* (G^T dU) G: along the width */
            g[3 * i] += s[i][0] + 0.5f * (s[i][1] + s[i][2]);
            g[3 * i + 1] += 0.5f * (s[i][1] - s[i][2]);
            g[3 * i + 2] += 0.5f * (s[i][1] + s[i][2]) + s[i][3];
        }
    }
}

/* ---- the runs ---- */

/* The 16 GEMMs of a chunk, one per plane xi: C[xi] (beta)+= op(A[xi]) op(B[xi]),
 * operand xi at base + xi * step. Split over the pool by planes, each GEMM
 * whole on one thread (a GEMM inside a pool part runs serially), so small
 * products (16 channels: below gemm_f32's own split) use every thread too
 * and the results do not depend on the thread count. */
typedef struct {
    int tA, tB, M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
    size_t a_step, b_step, c_step;
    float beta;
} PlaneGemms;

static void plane_gemms_range(void *arg, size_t x0, size_t x1) {
    const PlaneGemms *g = arg;
    for (size_t xi = x0; xi < x1; xi++)
        gemm_f32(g->tA, g->tB, g->M, g->N, g->K, g->A + xi * g->a_step, g->lda,
                 g->B + xi * g->b_step, g->ldb, g->beta, g->C + xi * g->c_step, g->ldc);
}

static void plane_gemms(const PlaneGemms *g) {
    pool_for(16, (size_t)g->M * g->N * g->K, plane_gemms_range, (void *)g);
}

/* The bench's FLOP count stays in the direct convolution's terms:
 * 2 B C OC 9 H W against the transformed GEMMs' 2 C OC 16 B TH TW. */
static void credit_saving(const ConvShape *s, int B) {
    const double cc = 2.0 * s->C * s->OC * B;
    gemm_flop_credit(cc * 9.0 * s->H * s->W - cc * 16.0 * tiles_h(s) * tiles_w(s));
}

size_t wino_weights_floats(const ConvShape *s) {
    return 16 * (size_t)s->OC * s->C;
}

void wino_transform_weights(const ConvShape *s, const float *w, float *U) {
    transform_weights(w, s->OC, s->C, 0, U);
}

/* y (B, OC, H, W) = conv3x3(x (B, C, H, W)) with U (16, OC, C) transformed,
 * then the epilogue of op (bias, res, relu; or acc: y +=); s gives H, W and
 * the chunk size; ws after U. */
static void run_forward(const ConvShape *s, int B, int C, int OC, const float *x, const float *U,
                        const OutPass *op, float *ws) {
    const int TH = tiles_h(s), TW = tiles_w(s), nbmax = chunk_samples(s, B);
    const size_t in_per = (size_t)C * s->H * s->W, out_per = (size_t)OC * s->H * s->W;
    for (int b0 = 0; b0 < B; b0 += nbmax) {
        int nb = B - b0 < nbmax ? B - b0 : nbmax;
        size_t N = (size_t)nb * TH * TW;
        float *V = ws, *M = ws + 16 * (size_t)C * N;
        TilePass tp = {x + b0 * in_per, V, nb, C, s->H, s->W, TH, TW, N};
        pool_for((size_t)C, (size_t)nb * TH * TW * 48, input_tiles, &tp);
        PlaneGemms g = {.M = OC, .N = (int)N, .K = C, .A = U, .lda = C, .a_step = (size_t)OC * C,
                        .B = V, .ldb = 16 * (int)N, .b_step = N, .C = M, .ldc = 16 * (int)N,
                        .c_step = N, .beta = 0.0f};
        plane_gemms(&g);
        OutPass chunk = *op;
        chunk.M = M;
        chunk.y = op->y + b0 * out_per;
        chunk.res = op->res ? op->res + b0 * out_per : NULL;
        chunk.nb = nb;
        chunk.OC = OC;
        chunk.H = s->H;
        chunk.W = s->W;
        chunk.TH = TH;
        chunk.TW = TW;
        chunk.N = N;
        pool_for((size_t)OC, (size_t)nb * TH * TW * 40, output_tiles, &chunk);
    }
    credit_saving(s, B);
}

void wino_forward(const ConvShape *s, const float *inp, const float *w, const float *U,
                  const float *bias, const float *res, int relu, float *out, float *ws) {
    float *rest = ws + wino_weights_floats(s);
    if (!U) {
        transform_weights(w, s->OC, s->C, 0, ws);
        U = ws;
    }
    OutPass op = {.bias = bias, .res = res, .relu = relu, .y = out};
    run_forward(s, s->B, s->C, s->OC, inp, U, &op, rest);
}

void wino_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                   float *dinp, float *dw, float *ws) {
    const size_t nU = wino_weights_floats(s);
    float *U = ws, *rest = ws + nU;
    if (dw) {
        const int TH = tiles_h(s), TW = tiles_w(s), nbmax = chunk_samples(s, s->B);
        const size_t in_per = (size_t)s->C * s->H * s->W, out_per = (size_t)s->OC * s->H * s->W;
        memset(U, 0, nU * sizeof(float)); /* dU */
        for (int b0 = 0; b0 < s->B; b0 += nbmax) {
            int nb = s->B - b0 < nbmax ? s->B - b0 : nbmax;
            size_t N = (size_t)nb * TH * TW;
            float *V = rest, *D = rest + 16 * (size_t)s->C * N;
            TilePass tp = {inp + b0 * in_per, V, nb, s->C, s->H, s->W, TH, TW, N};
            pool_for((size_t)s->C, N * 48, input_tiles, &tp);
            TilePass gp = {dout + b0 * out_per, D, nb, s->OC, s->H, s->W, TH, TW, N};
            pool_for((size_t)s->OC, N * 32, grad_tiles, &gp);
            PlaneGemms g = {.tB = 1, .M = s->OC, .N = s->C, .K = (int)N, /* dU[xi] += D V^T */
                            .A = D, .lda = 16 * (int)N, .a_step = N, .B = V, .ldb = 16 * (int)N,
                            .b_step = N, .C = U, .ldc = s->C, .c_step = (size_t)s->OC * s->C,
                            .beta = 1.0f};
            plane_gemms(&g);
        }
        credit_saving(s, s->B);
        WeightGradPass wp = {U, dw, (size_t)s->OC * s->C};
        pool_for((size_t)s->OC * s->C, 64, weight_grads, &wp);
    }
    if (dinp) { /* the forward over dout with flipped, transposed weights, accumulated */
        transform_weights(w, s->OC, s->C, 1, U);
        OutPass op = {.acc = 1, .y = dinp};
        run_forward(s, s->B, s->OC, s->C, dout, U, &op, rest);
    }
}
