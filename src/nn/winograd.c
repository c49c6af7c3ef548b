/* winograd.c - 3x3, stride-1, pad-1 convolutions by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin & Gray 2015): forward, input gradient and
 * weight gradient, for conv.c.
 *
 * For: the 3x3 stride-1 convolutions of the ResNet blocks once both channel
 * counts are at least WINO_MIN_CHANNELS. Each 2x2 output tile reads a 4x4
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
 * for tile element (i, j): V (16, C, N), M (16, OC, N), U (16, OC, C).
 *
 * Rounding: a different summation than im2col's (the transforms add and
 * halve), within a few float ulps of it per product; tests/test_conv.c
 * checks both paths against a double reference with the same tolerance.
 * Threads: the transforms split over channels (pool_for), the GEMMs over
 * gemm_f32's slices; bit-identical for any thread count.
 */
#include "ocrkd/nn.h"

#include <stdlib.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include "winograd.h"

/* floats of V plus M per chunk: 2 MB keeps the chunk's transformed
 * operands near L2 while the GEMMs still get thousands of columns */
#define WINO_CHUNK_FLOATS ((size_t)512 << 10)

static int g_wino = -1; /* -1: not read yet; 0 off; 1 on */

/* Off unless OCRKD_WINOGRAD=on: measured slower than im2col here so far
 * (doc/bench.md). */
static int wino_enabled(void) {
    if (g_wino < 0) {
        const char *env = getenv("OCRKD_WINOGRAD");
        if (env && (!strcmp(env, "on") || !strcmp(env, "1")))
            g_wino = 1;
        else if (!env || !*env || !strcmp(env, "off") || !strcmp(env, "0"))
            g_wino = 0;
        else
            fatal(EXIT_USAGE, "OCRKD_WINOGRAD=%s: unknown; on or off", env);
    }
    return g_wino;
}

void conv_set_winograd(int on) {
    g_wino = on ? 1 : 0;
}

int wino_applies(const ConvShape *s) {
    return s->KH == 3 && s->KW == 3 && s->SH == 1 && s->SW == 1 && s->PH == 1 && s->PW == 1 &&
           s->C >= WINO_MIN_CHANNELS && s->OC >= WINO_MIN_CHANNELS && s->W <= WINO_MAX_W &&
           wino_enabled();
}

static int tiles_h(const ConvShape *s) {
    return (s->OH + 1) / 2;
}
static int tiles_w(const ConvShape *s) {
    return (s->OW + 1) / 2;
}

/* samples per chunk for a batch of B */
static int chunk_samples(const ConvShape *s, int B) {
    size_t per = 16 * (size_t)(s->C + s->OC) * tiles_h(s) * tiles_w(s);
    size_t nb = WINO_CHUNK_FLOATS / per;
    if (nb < 1) nb = 1;
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

static void input_tiles(void *arg, size_t c0, size_t c1) {
    const TilePass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW, PW = 2 * TW + 2;
    const size_t plane = (size_t)p->C * p->N;
    float rows[4][WINO_MAX_W + 4], t[4][WINO_MAX_W + 4];
    for (size_t c = c0; c < c1; c++)
        for (int b = 0; b < p->nb; b++) {
            const float *x = p->x + ((size_t)b * p->C + c) * H * W;
            float *v = p->V + c * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 4; i++) { /* padded rows 2ty-1 .. 2ty+2 */
                    int y = 2 * ty - 1 + i;
                    memset(rows[i], 0, PW * sizeof(float));
                    if (y >= 0 && y < H) memcpy(rows[i] + 1, x + (size_t)y * W, W * sizeof(float));
                }
                for (int k = 0; k < PW; k++) { /* B^T d: along the height */
                    t[0][k] = rows[0][k] - rows[2][k];
                    t[1][k] = rows[1][k] + rows[2][k];
                    t[2][k] = rows[2][k] - rows[1][k];
                    t[3][k] = rows[1][k] - rows[3][k];
                }
                float *vt = v + (size_t)ty * TW;
                for (int i = 0; i < 4; i++) { /* (B^T d) B: along the width */
                    float *v0 = vt + (size_t)(4 * i) * plane, *v1 = v0 + plane, *v2 = v1 + plane,
                          *v3 = v2 + plane;
                    const float *r = t[i];
                    for (int tx = 0; tx < TW; tx++) {
                        float a = r[2 * tx], bb = r[2 * tx + 1], cc = r[2 * tx + 2],
                              d = r[2 * tx + 3];
                        v0[tx] = a - cc;
                        v1[tx] = bb + cc;
                        v2[tx] = cc - bb;
                        v3[tx] = bb - d;
                    }
                }
            }
        }
}

/* y (nb, OC, H, W) (+)= A^T M A of M (16, OC, N) */
typedef struct {
    const float *M;
    float *y;
    int nb, OC, H, W, TH, TW, acc;
    size_t N;
} OutPass;

static void output_tiles(void *arg, size_t o0, size_t o1) {
    const OutPass *p = arg;
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = (size_t)p->OC * p->N;
    float out[2][WINO_MAX_W + 2];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *m = p->M + oc * p->N + (size_t)b * TH * TW;
            float *y = p->y + ((size_t)b * p->OC + oc) * H * W;
            for (int ty = 0; ty < TH; ty++) {
                const float *mt = m + (size_t)ty * TW;
                for (int tx = 0; tx < TW; tx++) {
                    float e[16];
                    for (int k = 0; k < 16; k++)
                        e[k] = mt[k * plane + tx];
                    float t0[4], t1[4]; /* A^T M: along the height */
                    for (int j = 0; j < 4; j++) {
                        t0[j] = e[j] + e[4 + j] + e[8 + j];
                        t1[j] = e[4 + j] - e[8 + j] - e[12 + j];
                    }
                    out[0][2 * tx] = t0[0] + t0[1] + t0[2]; /* (A^T M) A: along the width */
                    out[0][2 * tx + 1] = t0[1] - t0[2] - t0[3];
                    out[1][2 * tx] = t1[0] + t1[1] + t1[2];
                    out[1][2 * tx + 1] = t1[1] - t1[2] - t1[3];
                }
                for (int i = 0; i < 2 && 2 * ty + i < H; i++) {
                    float *row = y + (size_t)(2 * ty + i) * W;
                    if (p->acc)
                        for (int k = 0; k < W; k++)
                            row[k] += out[i][k];
                    else
                        memcpy(row, out[i], W * sizeof(float));
                }
            }
        }
}

/* D (16, OC, N) = A dY A^T of dout tiles (nb, OC, H, W); 0 beyond the map */
static void grad_tiles(void *arg, size_t o0, size_t o1) {
    const TilePass *p = arg; /* x = dout, C = OC, V = D */
    const int H = p->H, W = p->W, TH = p->TH, TW = p->TW;
    const size_t plane = (size_t)p->C * p->N;
    float rows[2][WINO_MAX_W + 2];
    for (size_t oc = o0; oc < o1; oc++)
        for (int b = 0; b < p->nb; b++) {
            const float *dy = p->x + ((size_t)b * p->C + oc) * H * W;
            float *d = p->V + oc * p->N + (size_t)b * TH * TW;
            for (int ty = 0; ty < TH; ty++) {
                for (int i = 0; i < 2; i++) {
                    int y = 2 * ty + i;
                    memset(rows[i], 0, 2 * TW * sizeof(float));
                    if (y < H) memcpy(rows[i], dy + (size_t)y * W, W * sizeof(float));
                }
                float *dt = d + (size_t)ty * TW;
                for (int tx = 0; tx < TW; tx++) {
                    float a = rows[0][2 * tx], bb = rows[0][2 * tx + 1], cc = rows[1][2 * tx],
                          dd = rows[1][2 * tx + 1];
                    /* A dY: rows y0, y0 + y1, y0 - y1, -y1; then each row (p, q) ->
                     * (p, p + q, p - q, -q) */
                    float r[4][2] = {{a, bb}, {a + cc, bb + dd}, {a - cc, bb - dd}, {-cc, -dd}};
                    for (int i = 0; i < 4; i++) {
                        float *o = dt + (size_t)(4 * i) * plane;
                        o[tx] = r[i][0];
                        o[plane + tx] = r[i][0] + r[i][1];
                        o[2 * plane + tx] = r[i][0] - r[i][1];
                        o[3 * plane + tx] = -r[i][1];
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

/* y (B, OC, H, W) (+)= conv3x3(x (B, C, H, W)) with U (16, OC, C) transformed;
 * s gives H, W and the chunk size; ws after U. */
static void run_forward(const ConvShape *s, int B, int C, int OC, const float *x, const float *U,
                        int acc, float *y, float *ws) {
    const int TH = tiles_h(s), TW = tiles_w(s), nbmax = chunk_samples(s, B);
    const size_t in_per = (size_t)C * s->H * s->W, out_per = (size_t)OC * s->H * s->W;
    for (int b0 = 0; b0 < B; b0 += nbmax) {
        int nb = B - b0 < nbmax ? B - b0 : nbmax;
        size_t N = (size_t)nb * TH * TW;
        float *V = ws, *M = ws + 16 * (size_t)C * N;
        TilePass tp = {x + b0 * in_per, V, nb, C, s->H, s->W, TH, TW, N};
        pool_for((size_t)C, (size_t)nb * TH * TW * 48, input_tiles, &tp);
        for (int xi = 0; xi < 16; xi++)
            gemm_f32(0, 0, OC, (int)N, C, U + (size_t)xi * OC * C, C, V + (size_t)xi * C * N,
                     (int)N, 0.0f, M + (size_t)xi * OC * N, (int)N);
        OutPass op = {M, y + b0 * out_per, nb, OC, s->H, s->W, TH, TW, acc, N};
        pool_for((size_t)OC, (size_t)nb * TH * TW * 40, output_tiles, &op);
    }
}

void wino_forward(const ConvShape *s, const float *inp, const float *w, float *out, float *ws) {
    float *U = ws;
    transform_weights(w, s->OC, s->C, 0, U);
    run_forward(s, s->B, s->C, s->OC, inp, U, 0, out, ws + 16 * (size_t)s->OC * s->C);
}

void wino_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                   float *dinp, float *dw, float *ws) {
    const size_t nU = 16 * (size_t)s->OC * s->C;
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
            for (int xi = 0; xi < 16; xi++) /* dU[xi] (OC, C) += D[xi] (OC, N) . V[xi]^T */
                gemm_f32(0, 1, s->OC, s->C, (int)N, D + (size_t)xi * s->OC * N, (int)N,
                         V + (size_t)xi * s->C * N, (int)N, 1.0f, U + (size_t)xi * s->OC * s->C,
                         s->C);
        }
        WeightGradPass wp = {U, dw, (size_t)s->OC * s->C};
        pool_for((size_t)s->OC * s->C, 64, weight_grads, &wp);
    }
    if (dinp) { /* the forward over dout with flipped, transposed weights, accumulated */
        transform_weights(w, s->OC, s->C, 1, U);
        run_forward(s, s->B, s->OC, s->C, dout, U, 1, dinp, rest);
    }
}
