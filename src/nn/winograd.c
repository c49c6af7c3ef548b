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
 * weights flipped in space and C/OC swapped (stride 1, pad 1). Flipping g
 * reverses G's columns, and G J = P G with P the swap of rows 0 and 3, so
 * the flipped filter's U is plane (p(i), p(j)) of U, p = (3 1 2 0): the run
 * reads the forward's U, transposed and permuted, not a second transform
 * (which cost more than the first: a gather of filters C apart). U itself
 * is one GEMM of w by the Kronecker square of G (transform_weights). The weight
 * gradient is dU = sum over tiles of (A dY A^T) . V, by GEMM, then
 * dw = G^T dU G.
 *
 * Layouts (per chunk of nb samples, N = nb * TH * TW tiles, column
 * n = (b, ty, tx)): transformed matrices are 16 planes, plane xi = 4i + j
 * for tile element (i, j). U is (16, OC, C) (the kept inference weights:
 * (P, C, OC), which the GEMMs pack without transposing); V is (C, 16, N) and M
 * (OC, 16, N): plane xi of V is the (C, N) matrix at V + xi N with row
 * stride 16 N, so a channel's 16 planes lie together for the transforms
 * (in L1) while each GEMM still reads a plain strided matrix.
 *
 * Rounding: a different summation than im2col's (the transforms add and
 * halve), within a few float ulps of it per product; tests/test_conv.c
 * checks both paths against a double reference with the same tolerance.
 * Threads: a forward (and the input gradient, a forward over dout) with at
 * least one chunk of WINO_MIN_COLUMNS tiles per thread runs whole chunks on
 * each thread (run_forward); otherwise, and in the weight gradient, the
 * transforms split over channels (pool_for) and the 16 GEMMs of a chunk
 * over planes (each whole on one thread); bit-identical for any thread
 * count. Lanes: F(2x2)'s transforms run 4 or 8 tiles an instruction
 * (winograd_f2.h), bit-identical too.
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

/* F(m x m, 3x3): m = 2 or 4 (wino_tile); P = (m + 2)^2 planes */
static int planes_of(int m) {
    return (m + 2) * (m + 2);
}
static int tiles_h(const ConvShape *s, int m) {
    return (s->OH + m - 1) / m;
}
static int tiles_w(const ConvShape *s, int m) {
    return (s->OW + m - 1) / m;
}

static int g_tile = -1; /* -1: not read yet; 0 auto, else 2 or 4 */

/* OCRKD_WINOGRAD_TILE = auto (default) | 2 | 4 */
static int tile_mode(void) {
    if (g_tile < 0) {
        const char *env = getenv("OCRKD_WINOGRAD_TILE");
        if (!env || !*env || !strcmp(env, "auto"))
            g_tile = 0;
        else if (!strcmp(env, "2") || !strcmp(env, "4"))
            g_tile = env[0] - '0';
        else
            fatal(EXIT_USAGE, "OCRKD_WINOGRAD_TILE=%s: unknown; auto, 2 or 4", env);
    }
    return g_tile;
}

void conv_set_winograd_tile(int m) {
    g_tile = m == 2 || m == 4 ? m : 0;
}

/* The output tile of s's inference forward (transformed weights kept):
 * F(4x4) where its 36 planes of ceil(OH/4) ceil(OW/4) tiles are fewer
 * products than F(2x2)'s 16 of ceil(OH/2) ceil(OW/2) (a 2-high map:
 * F(2x2); 3 high or more: F(4x4), up to 1.78x fewer), unless
 * OCRKD_WINOGRAD_TILE fixes it. Training (forward, input and weight
 * gradients) runs F(2x2): F(4x4) measured 1.2x faster on the inference
 * forward of the small model's 16- to 64-channel maps but only 0-1 % on a
 * training step, for an error ~100x larger (tests/test_conv.c). */
int wino_tile(const ConvShape *s) {
    const int mode = tile_mode();
    if (mode) return mode;
    const long p4 = 36L * tiles_h(s, 4) * tiles_w(s, 4), p2 = 16L * tiles_h(s, 2) * tiles_w(s, 2);
    return p4 < p2 ? 4 : 2;
}

/* samples per chunk for a batch of B */
/* ... but never fewer tiles than this per GEMM: with wide layers (512
 * channels on a 2x32 map) a 1 MB chunk held one sample, 16 columns, and the
 * GEMMs spent their time packing U (the full-size student's step ran 0.97x
 * PyTorch) */
#define WINO_MIN_COLUMNS 256

static int chunk_samples(const ConvShape *s, int B, int m) {
    const size_t tiles = (size_t)tiles_h(s, m) * tiles_w(s, m);
    size_t nb = WINO_CHUNK_FLOATS / ((size_t)planes_of(m) * (s->C + s->OC) * tiles);
    size_t nb_min = (WINO_MIN_COLUMNS + tiles - 1) / tiles;
    if (nb < nb_min) nb = nb_min;
    return nb < (size_t)B ? (int)nb : B;
}

/* transformed weights plus one chunk's V and M (or D) */
static size_t run_floats(const ConvShape *s, int m) {
    size_t tiles = (size_t)chunk_samples(s, s->B, m) * tiles_h(s, m) * tiles_w(s, m);
    return (size_t)planes_of(m) * ((size_t)s->OC * s->C + (size_t)(s->C + s->OC) * tiles);
}

size_t wino_workspace_floats(const ConvShape *s) {
    size_t infer = run_floats(s, wino_tile(s)), train = run_floats(s, 2);
    return infer > train ? infer : train;
}

/* ---- transforms ---- */

/* U (P, OC, C) from w (OC, C, 3, 3) as one GEMM: U[xi][r] = sum_t T[xi][t]
 * w[r][t] over the filters r = oc C + c, with T = G (x) G the P x 9
 * Kronecker square of F(m x m)'s G (P = 16 or 36). The staged form (G g
 * then (G g) G^T) is fewer operations but gathers filters across vector
 * lanes; it took 3.5 % of the demo teacher's batch-8 training step for each
 * of the forward and the backward, the GEMM (K = 9) a fraction of that.
 * G's rows: F(2x2) (1 0 0), 1/2 (1 1 1), 1/2 (1 -1 1), (0 0 1); F(4x4)
 * 1/4 (1 0 0), -1/6 (1 1 1), -1/6 (1 -1 1), (1/24 1/12 1/6),
 * (1/24 -1/12 1/6), (0 0 1). */
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double G4[6][3] = {{0.25, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                {0, 0, 1}};

static void transform_weights(const float *w, int OC, int C, int m, float *U) {
    const int e = m + 2, P = e * e;
    const double(*G)[3] = m == 4 ? G4 : (const double(*)[3])G2;
    float T[36 * 9];
    for (int i = 0; i < e; i++)
        for (int j = 0; j < e; j++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++)
                    T[(i * e + j) * 9 + a * 3 + b] = (float)(G[i][a] * G[j][b]);
    const int n = OC * C;
    gemm_f32(0, 1, P, n, 9, T, 9, w, 9, 0.0f, U, n);
    gemm_flop_credit(-2.0 * P * 9 * n); /* not convolution work */
}

/* V (16, C, N) of input tiles: x (nb, C, H, W); also D of dout tiles
 * (grad_tiles, with C = OC) */
typedef struct {
    const float *x;
    float *V;
    int nb, C, H, W, TH, TW;
    size_t N;
} TilePass;

/* y (nb, OC, H, W) = A^T M A of M (16, OC, N), then + bias (+ res) (then
 * ReLU) when bias is set; or y += A^T M A when acc */
typedef struct {
    const float *M, *bias, *res;
    float *y;
    int nb, OC, H, W, TH, TW, acc, relu;
    size_t N;
} OutPass;

/* one output row of W floats, at y + at of channel oc, as p says:
 * y += row (acc), y = row + bias (+ res) (then ReLU), or y = row */
static inline void put_row(const OutPass *p, size_t oc, size_t at, const float *row) {
    float *y = p->y + at;
    if (p->acc)
        for (int k = 0; k < p->W; k++)
            y[k] += row[k];
    else if (p->bias)
        conv_bias_act_run(y, row, p->bias[oc], p->res ? p->res + at : NULL, p->relu,
                          (size_t)p->W);
    else
        memcpy(y, row, (size_t)p->W * sizeof(float));
}

/* dw (OC, C, 3, 3) += G^T dU G of dU (16, OC, C) */
typedef struct {
    const float *dU;
    float *dw;
    size_t plane;
} WeightGradPass;

/* room for the even or odd half of a row (WINO_MAX_W / 2 + 1), a vector
 * of overrun and the rest of the vector it ends in (split_row) */
#define HALF_ROW (WINO_MAX_W / 2 + 24)

/* the F(2x2, 3x3) transforms at 4 lanes, then at 8 (AVX2): winograd_f2.h */
#define WL 4
#include "winograd_f2.h"
#undef WL
#pragma GCC push_options
#pragma GCC target("avx2")
#define WL 8
#include "winograd_f2.h"
#undef WL
#pragma GCC pop_options

typedef struct {
    PoolRangeFn input, output, grad, weight;
} F2Transforms;

static const F2Transforms F2_LANES4 = {input_tiles_v4, output_tiles_v4, grad_tiles_v4,
                                       weight_grads_v4},
                          F2_LANES8 = {input_tiles_v8, output_tiles_v8, grad_tiles_v8,
                                       weight_grads_v8};

static int g_lanes; /* 0: not chosen yet; else 4 or 8 */

/* OCRKD_WINOGRAD_LANES = 4 | 8 (tests, A/B timing; 8 where the CPU lacks
 * AVX2 is fatal), else 8 on the AVX2 and AVX-512 GEMM paths, 4 on cblas's */
static const F2Transforms *f2_transforms(void) {
    if (!g_lanes) {
        const char *env = getenv("OCRKD_WINOGRAD_LANES");
        if (env && *env) {
            __builtin_cpu_init();
            if (strcmp(env, "4") && strcmp(env, "8"))
                fatal(EXIT_USAGE, "OCRKD_WINOGRAD_LANES=%s: unknown; 4 or 8", env);
            if (env[0] == '8' && !__builtin_cpu_supports("avx2"))
                fatal(EXIT_USAGE, "OCRKD_WINOGRAD_LANES=8: this CPU cannot run it (no AVX2)");
            g_lanes = env[0] - '0';
        } else {
            g_lanes = gemm_path() == GEMM_CBLAS ? 4 : 8;
        }
    }
    return g_lanes == 8 ? &F2_LANES8 : &F2_LANES4;
}

int conv_set_winograd_lanes(int lanes) {
    __builtin_cpu_init();
    if (lanes == 8 && !__builtin_cpu_supports("avx2")) lanes = 4;
    g_lanes = lanes == 4 || lanes == 8 ? lanes : 0;
    f2_transforms();
    return g_lanes;
}

/* ---- F(4x4, 3x3) ----
 * Each 4x4 output tile reads a 6x6 input tile: 36 products per tile, 2.25
 * multiply-adds per output per input channel (F(2x2, 3x3): 4, im2col: 9),
 * at the price of larger transform coefficients (interpolation points 0,
 * +-1, +-2 and infinity):
 *   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0;
 *          0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
 *   G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
 *          1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 *   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
 * Used for the inference forward (transformed weights kept) where its
 * GEMMs are smaller than F(2x2)'s (wino_tile); training stays F(2x2, 3x3).
 * Layouts as above
 * with 36 planes, plane 6i + j. Tiles along a row are 4 columns apart, so
 * the input rows are split into their 4 column phases (a 4x4 transpose)
 * and every transform runs on 4 tiles a lane. */

static void transpose4(v4f *a, v4f *b, v4f *c, v4f *d) {
    v4f t0 = __builtin_shuffle(*a, *b, (v4i){0, 4, 1, 5}), t1 = __builtin_shuffle(*a, *b, (v4i){2, 6, 3, 7}),
        t2 = __builtin_shuffle(*c, *d, (v4i){0, 4, 1, 5}), t3 = __builtin_shuffle(*c, *d, (v4i){2, 6, 3, 7});
    *a = __builtin_shuffle(t0, t2, (v4i){0, 1, 4, 5});
    *b = __builtin_shuffle(t0, t2, (v4i){2, 3, 6, 7});
    *c = __builtin_shuffle(t1, t3, (v4i){0, 1, 4, 5});
    *d = __builtin_shuffle(t1, t3, (v4i){2, 3, 6, 7});
}

/* room for one column phase of a row (n <= WINO_MAX_W / 4 + 1), plus overrun */
#define PHASE_ROW (WINO_MAX_W / 4 + 16)

/* q[r][t] = p[4t + r], t in [0, n), of the padded row p[k] = x[k - 1] (0
 * outside [0, W)); a NULL x is a row of padding. n is a multiple of 4. */
static void split4_row(const float *x, int W, int n, float q[4][PHASE_ROW]) {
    float p[WINO_MAX_W + 64];
    const int len = 4 * n; /* whole blocks of 16 */
    memset(p, 0, (size_t)len * sizeof(float));
    if (x) memcpy(p + 1, x, (size_t)W * sizeof(float));
    for (int k = 0; k < len; k += 16) {
        v4f a = load4(p + k), b = load4(p + k + 4), c = load4(p + k + 8), d = load4(p + k + 12);
        transpose4(&a, &b, &c, &d);
        store4(q[0] + k / 4, a), store4(q[1] + k / 4, b), store4(q[2] + k / 4, c);
        store4(q[3] + k / 4, d);
    }
}

/* B^T r of six vectors: out[0..5] */
static inline __attribute__((always_inline)) void bt6(v4f r0, v4f r1, v4f r2, v4f r3, v4f r4,
                                                      v4f r5, v4f *o) {
    const v4f two = splat4(2.0f), four = splat4(4.0f), five = splat4(5.0f);
    o[0] = four * r0 - five * r2 + r4;
    o[1] = r3 + r4 - four * (r1 + r2);
    o[2] = four * (r1 - r2) + r4 - r3;
    o[3] = two * (r3 - r1) + (r4 - r2);
    o[4] = two * (r1 - r3) + (r4 - r2);
    o[5] = four * r1 - five * r3 + r5;
}

static void input_tiles4(void *arg, size_t c0, size_t c1) {
    const TilePass *p = arg;
    /* phases of TW + 1 tiles' columns, rounded up with a vector to spare:
     * the lanes past the map's last tile read zeros */
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW, n = 4 * ((TW + 5 + 3) / 4);
    const size_t plane = p->N;
    float q[6][4][PHASE_ROW], h[6][4][PHASE_ROW];
    for (size_t c = c0; c < c1; c++)
        for (int b = 0; b < p->nb; b++) {
            const float *x = p->x + ((size_t)b * p->C + c) * H * W;
            float *v = p->V + c * 36 * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 6; i++) { /* padded rows 4ty-1 .. 4ty+4 */
                    int y = 4 * ty - 1 + i;
                    split4_row(y >= 0 && y < H ? x + (size_t)y * W : NULL, W, n, q[i]);
                }
                for (int r = 0; r < 4; r++) /* B^T d: along the height, per phase */
                    for (int t = 0; t < n; t += 4) {
                        v4f o[6];
                        bt6(load4(q[0][r] + t), load4(q[1][r] + t), load4(q[2][r] + t),
                            load4(q[3][r] + t), load4(q[4][r] + t), load4(q[5][r] + t), o);
                        for (int j = 0; j < 6; j++)
                            store4(h[j][r] + t, o[j]);
                    }
                float *vt = v + (size_t)ty * TW;
                for (int j = 0; j < 6; j++) /* (B^T d) B: along the width */
                    for (int tx = 0; tx < TW; tx += 4) {
                        const int m = TW - tx < 4 ? TW - tx : 4;
                        v4f o[6];
                        bt6(load4(h[j][0] + tx), load4(h[j][1] + tx), load4(h[j][2] + tx),
                            load4(h[j][3] + tx), load4(h[j][0] + tx + 1), load4(h[j][1] + tx + 1), o);
                        float *v0 = vt + (size_t)(6 * j) * plane + tx;
                        for (int k = 0; k < 6; k++)
                            if (m == 4) store4(v0 + k * plane, o[k]);
                            else store4_n(v0 + k * plane, o[k], m);
                    }
            }
        }
}

/* A^T a of six vectors: out[0..3] */
static inline __attribute__((always_inline)) void at6(v4f a0, v4f a1, v4f a2, v4f a3, v4f a4,
                                                      v4f a5, v4f *o) {
    const v4f two = splat4(2.0f), four = splat4(4.0f), eight = splat4(8.0f);
    const v4f s12 = a1 + a2, d12 = a1 - a2, s34 = a3 + a4, d34 = a3 - a4;
    o[0] = a0 + s12 + s34;
    o[1] = d12 + two * d34;
    o[2] = s12 + four * s34;
    o[3] = d12 + eight * d34 + a5;
}

static void output_tiles4(void *arg, size_t o0, size_t o1) {
    const OutPass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = p->N;
    float out[4][WINO_MAX_W + 32];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *m = p->M + oc * 36 * p->N + (size_t)b * TH * TW;
            const size_t at = ((size_t)b * p->OC + oc) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                const float *mt = m + (size_t)ty * TW;
                for (int tx = 0; tx < TW; tx += 4) {
                    const int n = TW - tx < 4 ? TW - tx : 4;
                    v4f t[4][6]; /* A^T M: along the height, a column of planes at a time */
                    for (int k = 0; k < 6; k++) {
                        const float *c = mt + tx + (size_t)k * plane;
                        v4f e[6], o[4];
                        for (int i = 0; i < 6; i++)
                            e[i] = n == 4 ? load4(c + (size_t)(6 * i) * plane)
                                          : load4_n(c + (size_t)(6 * i) * plane, n);
                        at6(e[0], e[1], e[2], e[3], e[4], e[5], o);
                        for (int r = 0; r < 4; r++)
                            t[r][k] = o[r];
                    }
                    for (int r = 0; r < 4; r++) { /* (A^T M) A: along the width */
                        v4f o[4];
                        at6(t[r][0], t[r][1], t[r][2], t[r][3], t[r][4], t[r][5], o);
                        transpose4(&o[0], &o[1], &o[2], &o[3]); /* lane l -> tile tx + l */
                        for (int l = 0; l < 4; l++)
                            store4(out[r] + 4 * (tx + l), o[l]);
                    }
                }
                for (int i = 0; i < 4 && 4 * ty + i < H; i++) {
                    const size_t r = (size_t)(4 * ty + i) * W;
                    put_row(p, oc, at + r, out[i]);
                }
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
    int planes;                /* 16 or 36 */
    const unsigned char *a_of; /* NULL, or A's plane for plane xi */
} PlaneGemms;

/* plane (i, j) of a flipped filter's U: (p(i), p(j)) of U, p = (3 1 2 0) */
static const unsigned char FLIPPED_PLANE[16] = {15, 13, 14, 12, 7, 5, 6, 4,
                                                11, 9, 10, 8, 3, 1, 2, 0};

static void plane_gemms_range(void *arg, size_t x0, size_t x1) {
    const PlaneGemms *g = arg;
    for (size_t xi = x0; xi < x1; xi++)
        gemm_f32(g->tA, g->tB, g->M, g->N, g->K,
                 g->A + (g->a_of ? g->a_of[xi] : xi) * g->a_step, g->lda,
                 g->B + xi * g->b_step, g->ldb, g->beta, g->C + xi * g->c_step, g->ldc);
}

static void plane_gemms(const PlaneGemms *g) {
    pool_for((size_t)g->planes, (size_t)g->M * g->N * g->K, plane_gemms_range, (void *)g);
}

/* The bench's FLOP count stays in the direct convolution's terms:
 * 2 B C OC 9 H W against the transformed GEMMs' 2 C OC 16 B TH TW. */
static void credit_saving(const ConvShape *s, int B, int m) {
    const double cc = 2.0 * s->C * s->OC * B;
    gemm_flop_credit(cc * 9.0 * s->H * s->W -
                     cc * planes_of(m) * tiles_h(s, m) * tiles_w(s, m));
}

size_t wino_weights_floats(const ConvShape *s) {
    return (size_t)planes_of(wino_tile(s)) * s->OC * s->C;
}

/* the kept inference weights: U (P, C, OC), which the forward's GEMMs pack
 * without transposing (tA) */
void wino_transform_weights(const ConvShape *s, const float *w, float *U) {
    const int P = planes_of(wino_tile(s));
    const size_t n = (size_t)s->OC * s->C;
    float *tmp = xmalloc((size_t)P * n * sizeof(float));
    transform_weights(w, s->OC, s->C, wino_tile(s), tmp);
    for (int xi = 0; xi < P; xi++)
        for (int oc = 0; oc < s->OC; oc++)
            for (int c = 0; c < s->C; c++)
                U[xi * n + (size_t)c * s->OC + oc] = tmp[xi * n + (size_t)oc * s->C + c];
    free(tmp);
}

/* A run_forward: its operands, and the chunking it runs with (nbmax
 * samples a chunk; nchunks when the chunks are split over the pool). */
typedef struct {
    const ConvShape *s;
    int B, C, OC, m, tA, nbmax, nchunks;
    const float *x, *U;
    const unsigned char *a_of;
    const OutPass *op;
    float *ws; /* part 0's V and M; the other parts' are their own (chunk_ws) */
} ForwardRun;

static void forward_chunk(const ForwardRun *r, int b0, float *ws) {
    const ConvShape *s = r->s;
    const int C = r->C, OC = r->OC, m = r->m, TH = tiles_h(s, m), TW = tiles_w(s, m),
              P = planes_of(m);
    const size_t in_per = (size_t)C * s->H * s->W, out_per = (size_t)OC * s->H * s->W;
    const int nb = r->B - b0 < r->nbmax ? r->B - b0 : r->nbmax;
    const size_t N = (size_t)nb * TH * TW;
    float *V = ws, *M = ws + (size_t)P * C * N;
    TilePass tp = {r->x + b0 * in_per, V, nb, C, s->H, s->W, TH, TW, N};
    pool_for((size_t)C, N * (m == 4 ? 40 : 48), m == 4 ? input_tiles4 : f2_transforms()->input,
             &tp);
    PlaneGemms g = {.tA = r->tA, .M = OC, .N = (int)N, .K = C, .A = r->U,
                    .lda = r->tA ? OC : C, .a_step = (size_t)OC * C, .B = V, .ldb = P * (int)N,
                    .b_step = N, .C = M, .ldc = P * (int)N, .c_step = N, .beta = 0.0f,
                    .planes = P, .a_of = r->a_of};
    plane_gemms(&g);
    OutPass chunk = *r->op;
    chunk.M = M;
    chunk.y = r->op->y + b0 * out_per;
    chunk.res = r->op->res ? r->op->res + b0 * out_per : NULL;
    chunk.nb = nb;
    chunk.OC = OC;
    chunk.H = s->H;
    chunk.W = s->W;
    chunk.TH = TH;
    chunk.TW = TW;
    chunk.N = N;
    pool_for((size_t)OC, N * 40, m == 4 ? output_tiles4 : f2_transforms()->output, &chunk);
}

/* A pool worker's V and M: grown to the largest chunk it was given, kept
 * (allocated once per thread, not per call). */
static float *chunk_ws(size_t floats) {
    static _Thread_local float *buf;
    static _Thread_local size_t cap;
    return grow_floats(&buf, &cap, floats);
}

/* part p of the pool: chunks p, p + parts, ... whole (their transforms and
 * GEMMs run serially inside), in part p's own V and M */
static void forward_chunks_part(void *arg, int part, int parts) {
    const ForwardRun *r = arg;
    const ConvShape *s = r->s;
    const size_t N = (size_t)r->nbmax * tiles_h(s, r->m) * tiles_w(s, r->m);
    float *ws = part == 0 ? r->ws : chunk_ws((size_t)planes_of(r->m) * (r->C + r->OC) * N);
    for (int c = part; c < r->nchunks; c += parts)
        forward_chunk(r, c * r->nbmax, ws);
}

/* y (B, OC, H, W) = conv3x3(x (B, C, H, W)) with U (P, OC, C) of F(m x m)
 * transformed (tA: U (P, C, OC)), then the epilogue of op (bias, res, relu;
 * or acc: y +=); s gives H, W and the chunk size; ws after U. a_of: plane
 * xi's weights are U's plane a_of[xi] (FLIPPED_PLANE, with tA: the input
 * gradient's run over dout with the forward filters' U (16, C, OC) of this
 * run's C = the forward's OC).
 * Threads: when the batch makes at least one chunk per thread of
 * WINO_MIN_COLUMNS tiles or more, every thread runs whole chunks (its V and
 * M stay in its own core's L2 from the transform to the output pass: split
 * by channels and then by planes, half of them crossed to the other core);
 * else the chunks run one after another, each split over the pool. Every
 * output tile is the same arithmetic either way (the GEMMs' sums run over
 * C, whatever the chunk's width), so the bits do not depend on the split. */
static void run_forward(const ConvShape *s, int B, int C, int OC, int m, const float *x,
                        const float *U, int tA, const unsigned char *a_of, const OutPass *op,
                        float *ws) {
    ForwardRun r = {.s = s, .B = B, .C = C, .OC = OC, .m = m, .tA = tA,
                    .nbmax = chunk_samples(s, B, m), .x = x, .U = U, .a_of = a_of, .op = op,
                    .ws = ws};
    const int T = pool_threads();
    const size_t tiles = (size_t)tiles_h(s, m) * tiles_w(s, m);
    if (T > 1 && B >= T) { /* whole chunks per thread: as many chunks as threads, or a multiple */
        const int k = ((B + r.nbmax - 1) / r.nbmax + T - 1) / T, nb = (B + k * T - 1) / (k * T);
        if ((size_t)nb * tiles >= WINO_MIN_COLUMNS && (B + nb - 1) / nb >= T) {
            r.nbmax = nb;
            r.nchunks = (B + nb - 1) / nb;
            pool_run(T, forward_chunks_part, &r);
            credit_saving(s, B, m);
            return;
        }
    }
    for (int b0 = 0; b0 < B; b0 += r.nbmax)
        forward_chunk(&r, b0, ws);
    credit_saving(s, B, m);
}

void wino_forward(const ConvShape *s, const float *inp, const float *w, const float *U,
                  const float *bias, const float *res, int relu, float *out, float *ws) {
    /* kept weights (inference): the inference tile; else F(2x2) (training) */
    const int m = U ? wino_tile(s) : 2, kept = U != NULL;
    float *rest = ws + (size_t)planes_of(m) * s->OC * s->C;
    if (!kept) {
        transform_weights(w, s->OC, s->C, m, ws);
        U = ws;
    }
    OutPass op = {.bias = bias, .res = res, .relu = relu, .y = out};
    run_forward(s, s->B, s->C, s->OC, m, inp, U, kept, NULL, &op, rest);
}

void wino_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                   float *dinp, float *dw, float *ws) {
    if (dw) { /* F(2x2, 3x3) */
        const size_t nU = 16 * (size_t)s->OC * s->C;
        float *U = ws, *rest = ws + nU;
        const int TH = tiles_h(s, 2), TW = tiles_w(s, 2), nbmax = chunk_samples(s, s->B, 2);
        const size_t in_per = (size_t)s->C * s->H * s->W, out_per = (size_t)s->OC * s->H * s->W;
        for (int b0 = 0; b0 < s->B; b0 += nbmax) {
            int nb = s->B - b0 < nbmax ? s->B - b0 : nbmax;
            size_t N = (size_t)nb * TH * TW;
            float *V = rest, *D = rest + 16 * (size_t)s->C * N;
            TilePass tp = {inp + b0 * in_per, V, nb, s->C, s->H, s->W, TH, TW, N};
            pool_for((size_t)s->C, N * 48, f2_transforms()->input, &tp);
            TilePass gp = {dout + b0 * out_per, D, nb, s->OC, s->H, s->W, TH, TW, N};
            pool_for((size_t)s->OC, N * 32, f2_transforms()->grad, &gp);
            PlaneGemms g = {.tB = 1, .M = s->OC, .N = s->C, .K = (int)N, /* dU[xi] += D V^T */
                            .A = D, .lda = 16 * (int)N, .a_step = N, .B = V, .ldb = 16 * (int)N,
                            .b_step = N, .C = U, .ldc = s->C, .c_step = (size_t)s->OC * s->C,
                            .beta = b0 ? 1.0f : 0.0f, .planes = 16}; /* the first chunk sets dU */
            plane_gemms(&g);
        }
        credit_saving(s, s->B, 2);
        WeightGradPass wp = {U, dw, (size_t)s->OC * s->C};
        pool_for((size_t)s->OC * s->C, 64, f2_transforms()->weight, &wp);
    }
    if (dinp) { /* the forward over dout with flipped, transposed weights, accumulated */
        float *U = ws, *rest = ws + 16 * (size_t)s->OC * s->C;
        transform_weights(w, s->OC, s->C, 2, U);
        OutPass op = {.acc = 1, .y = dinp};
        run_forward(s, s->B, s->OC, s->C, 2, dout, U, 1, FLIPPED_PLANE, &op, rest);
    }
}
