/* conv.c - 2-D convolution (no bias) forward and backward on float buffers.
 *
 * For: any kernel, stride (h,w) and zero padding, as torch.nn.Conv2d with
 * bias=False, groups=1, dilation=1. The general path is im2col + ONE
 * gemm_f32 with the batch folded into the GEMM's N dimension for small
 * maps, one im2col + GEMM per sample for large ones (PER_SAMPLE_MIN_POSITIONS);
 * 1x1 stride-1 unpadded convs skip im2col and run GEMMs straight on the input.
 * conv2d_bias_forward is the inference form with BatchNorm folded into the
 * weights: conv + per-channel bias (+ residual) (+ ReLU), the epilogue
 * fused into the GEMM output's scatter or done while the sample is in cache.
 * Not for: groups, dilation, allocation (scratch comes in as ws).
 * Threads: the GEMMs and the passes around them (im2col, col2im, layout
 * changes, epilogues) split over pool.h's threads; bit-identical for any count.
 *
 * Layouts: col (K = C*KH*KW, N = B*OH*OW), row k = (c,kh,kw), column
 * n = (b,oh,ow). The GEMM writes (OC, N) scratch, scattered to (B,OC,OH,OW);
 * with B == 1 those are the same layout and the GEMM writes out directly.
 */
#include "ocrkd/nn.h"

#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include "winograd.h"

ConvShape conv_shape(int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH,
                     int PW) {
    ConvShape s = {B, C, H, W, OC, KH, KW, SH, SW, PH, PW, 0, 0};
    s.OH = (H + 2 * PH - KH) / SH + 1;
    s.OW = (W + 2 * PW - KW) / SW + 1;
    return s;
}

static int is_pointwise(const ConvShape *s) {
    return s->KH == 1 && s->KW == 1 && s->SH == 1 && s->SW == 1 && s->PH == 0 && s->PW == 0;
}

static size_t col_rows(const ConvShape *s) {
    return (size_t)s->C * s->KH * s->KW;
}
static size_t col_cols(const ConvShape *s) {
    return (size_t)s->B * s->OH * s->OW;
}

static int use_per_sample(const ConvShape *s);

/* col: K*N floats; then, when B > 1, the (OC, N) GEMM result / dout gather.
 * Per-sample convs need one sample's col only. */
static size_t im2col_workspace_floats(const ConvShape *s) {
    if (is_pointwise(s)) return 0;
    if (use_per_sample(s)) return col_rows(s) * s->OH * s->OW;
    size_t n = col_cols(s);
    return col_rows(s) * n + (s->B > 1 ? (size_t)s->OC * n : 0);
}

/* Room for the paths the mode in force runs: im2col's only when the
 * forward or the backward takes it (a Winograd-only shape would otherwise
 * carry a whole batch's col buffer, 84 MB for the full model's 512-channel
 * maps). Tests that switch modes size under each. */
size_t conv_workspace_floats(const ConvShape *s) {
    const int wf = wino_applies(s), wb = wino_applies_backward(s);
    size_t n = wf && wb ? 0 : im2col_workspace_floats(s);
    if (wf || wb) {
        size_t wn = wino_workspace_floats(s);
        if (wn > n) n = wn;
    }
    return n;
}

int conv_runs_im2col(const ConvShape *s) {
    return !(wino_applies(s) && wino_applies_backward(s));
}

size_t conv_transformed_weights_floats(const ConvShape *s) {
    return wino_applies(s) ? wino_weights_floats(s) : 0;
}

void conv_transform_weights(const ConvShape *s, const float *w, float *wt) {
    if (wino_applies(s)) wino_transform_weights(s, w, wt);
}

#include "vec4.h"

/* Range [lo, hi) of output positions o (0..O-1) whose input position
 * o*S - P + k falls inside [0, In): lets the inner loops run branch-free. */
static void valid_range(int O, int S, int P, int k, int In, int *lo, int *hi) {
    int a = P - k; /* need o*S >= a */
    int l = a <= 0 ? 0 : (a + S - 1) / S;
    int b = In + P - k; /* need o*S < b */
    int h = b <= 0 ? 0 : (b + S - 1) / S;
    *lo = l < O ? l : O;
    *hi = h < O ? h : O;
    if (*hi < *lo) *hi = *lo;
}

/* dst[ow] = src[2*ow] for ow in [lo, hi): 8 loads -> 4 even lanes */
static void gather_even(float *dst, const float *src, int lo, int hi) {
    int ow = lo;
    for (; ow + 5 <= hi; ow += 4) { /* src[2*ow+7] stays before src[2*(hi-1)] */
        v4f a, b;
        memcpy(&a, src + 2 * ow, sizeof a);
        memcpy(&b, src + 2 * ow + 4, sizeof b);
        v4f even = __builtin_shuffle(a, b, (v4i){0, 2, 4, 6});
        memcpy(dst + ow, &even, sizeof even);
    }
    for (; ow < hi; ow++)
        dst[ow] = src[2 * ow];
}

/* One im2col row segment: col_row[ow] = inp_row[ow*SW - PW + kw] for ow in
 * [0, OW), zero outside [lo, hi). inp_row is NULL when the input row is padding. */
static void gather_row(float *dst, const float *inp_row, int OW, int SW, int PW, int kw, int lo,
                       int hi) {
    if (!inp_row) {
        memset(dst, 0, (size_t)OW * sizeof(float));
        return;
    }
    for (int ow = 0; ow < lo; ow++) /* at most PW/SW + 1: cheaper than a memset call */
        dst[ow] = 0.0f;
    const float *src = inp_row - PW + kw;
    if (SW == 1) {
        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
    } else if (SW == 2) {
        gather_even(dst, src, lo, hi);
    } else {
        for (int ow = lo; ow < hi; ow++)
            dst[ow] = src[ow * SW];
    }
    for (int ow = hi; ow < OW; ow++)
        dst[ow] = 0.0f;
}

/* The arguments of a pass split over the pool (pool_for): rows of col,
 * channels or output channels; each range writes only its own part. */
typedef struct {
    const ConvShape *s;
    const float *src, *bias, *res;
    float *dst;
    int relu;
} ConvPass;

/* inp (B,C,H,W) -> col rows [r0, r1) of (C*KH*KW, B*OH*OW) */
static void im2col_rows(void *arg, size_t r0, size_t r1) {
    const ConvPass *a = arg;
    const ConvShape *s = a->s;
    const float *inp = a->src;
    const size_t N = col_cols(s), HW = (size_t)s->H * s->W;
    for (size_t r = r0; r < r1; r++) {
        const int c = (int)(r / ((size_t)s->KH * s->KW)), kh = (int)(r / s->KW % s->KH),
                  kw = (int)(r % s->KW);
        float *row = a->dst + r * N;
        int lo, hi;
        valid_range(s->OW, s->SW, s->PW, kw, s->W, &lo, &hi);
        for (int b = 0; b < s->B; b++) {
            const float *plane = inp + ((size_t)b * s->C + c) * HW;
            for (int oh = 0; oh < s->OH; oh++, row += s->OW) {
                int ih = oh * s->SH - s->PH + kh;
                const float *src = (ih >= 0 && ih < s->H) ? plane + (size_t)ih * s->W : NULL;
                gather_row(row, src, s->OW, s->SW, s->PW, kw, lo, hi);
            }
        }
    }
}

static void im2col(const ConvShape *s, const float *inp, float *col) {
    ConvPass a = {.s = s, .src = inp, .dst = col};
    pool_for(col_rows(s), col_cols(s), im2col_rows, &a);
}

/* dst[2*ow] += row[ow] for ow in [lo, hi): 4 values spread over 8 lanes */
static void scatter_add_even(float *dst, const float *row, int lo, int hi) {
    int ow = lo;
    for (; ow + 5 <= hi; ow += 4) { /* dst[2*ow+7] stays before dst[2*(hi-1)] */
        v4f r, u0, u1;
        memcpy(&r, row + ow, sizeof r);
        memcpy(&u0, dst + 2 * ow, sizeof u0);
        memcpy(&u1, dst + 2 * ow + 4, sizeof u1);
        /* even lanes get r, odd lanes keep their value (selected, not + 0) */
        u0 = __builtin_shuffle(u0 + __builtin_shuffle(r, r, (v4i){0, 0, 1, 1}), u0,
                               (v4i){0, 5, 2, 7});
        u1 = __builtin_shuffle(u1 + __builtin_shuffle(r, r, (v4i){2, 2, 3, 3}), u1,
                               (v4i){0, 5, 2, 7});
        memcpy(dst + 2 * ow, &u0, sizeof u0);
        memcpy(dst + 2 * ow + 4, &u1, sizeof u1);
    }
    for (; ow < hi; ow++)
        dst[2 * ow] += row[ow];
}

/* dst[ow*SW] += row[ow] for ow in [lo, hi) */
static void scatter_add_row(float *dst, const float *row, int SW, int lo, int hi) {
    if (SW == 2) {
        scatter_add_even(dst, row, lo, hi);
    } else if (SW == 1) {
        int ow = lo;
        for (; ow + 4 <= hi; ow += 4) {
            v4f a, b;
            memcpy(&a, dst + ow, sizeof a);
            memcpy(&b, row + ow, sizeof b);
            a += b;
            memcpy(dst + ow, &a, sizeof a);
        }
        for (; ow < hi; ow++)
            dst[ow] += row[ow];
    } else {
        for (int ow = lo; ow < hi; ow++)
            dst[ow * SW] += row[ow];
    }
}

/* col (C*KH*KW, B*OH*OW) -> dinp (B,C,H,W) += (the adjoint of im2col), for
 * input channels [c0, c1) */
static void col2im_channels(void *arg, size_t c0, size_t c1) {
    const ConvPass *a = arg;
    const ConvShape *s = a->s;
    const float *col = a->src;
    float *dinp = a->dst;
    const size_t N = col_cols(s), HW = (size_t)s->H * s->W;
    for (int c = (int)c0; c < (int)c1; c++)
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
                const float *row = col + ((size_t)(c * s->KH + kh) * s->KW + kw) * N;
                int lo, hi;
                valid_range(s->OW, s->SW, s->PW, kw, s->W, &lo, &hi);
                for (int b = 0; b < s->B; b++) {
                    float *plane = dinp + ((size_t)b * s->C + c) * HW;
                    for (int oh = 0; oh < s->OH; oh++, row += s->OW) {
                        int ih = oh * s->SH - s->PH + kh;
                        if (ih < 0 || ih >= s->H) continue;
                        scatter_add_row(plane + (size_t)ih * s->W - s->PW + kw, row, s->SW, lo, hi);
                    }
                }
            }
}

static void col2im_add(const ConvShape *s, const float *col, float *dinp) {
    ConvPass a = {.s = s, .src = col, .dst = dinp};
    pool_for((size_t)s->C, col_rows(s) / (size_t)s->C * col_cols(s), col2im_channels, &a);
}

/* The GEMM's (OC, B*P) layout and the tensor's (B, OC, P), P = OH*OW:
 * OC*B contiguous runs of P floats each way. */
static void ocb_to_boc_channels(void *arg, size_t oc0, size_t oc1) {
    const ConvPass *a = arg;
    const ConvShape *s = a->s;
    const size_t P = (size_t)s->OH * s->OW, N = col_cols(s);
    for (size_t oc = oc0; oc < oc1; oc++)
        for (int b = 0; b < s->B; b++)
            memcpy(a->dst + ((size_t)b * s->OC + oc) * P, a->src + oc * N + (size_t)b * P,
                   P * sizeof(float));
}

static void boc_to_ocb_channels(void *arg, size_t oc0, size_t oc1) {
    const ConvPass *a = arg;
    const ConvShape *s = a->s;
    const size_t P = (size_t)s->OH * s->OW, N = col_cols(s);
    for (size_t oc = oc0; oc < oc1; oc++)
        for (int b = 0; b < s->B; b++)
            memcpy(a->dst + oc * N + (size_t)b * P, a->src + ((size_t)b * s->OC + oc) * P,
                   P * sizeof(float));
}

static void ocb_to_boc(const ConvShape *s, const float *ocb, float *boc) {
    ConvPass a = {.s = s, .src = ocb, .dst = boc};
    pool_for((size_t)s->OC, col_cols(s), ocb_to_boc_channels, &a);
}

static void boc_to_ocb(const ConvShape *s, const float *boc, float *ocb) {
    ConvPass a = {.s = s, .src = boc, .dst = ocb};
    pool_for((size_t)s->OC, col_cols(s), boc_to_ocb_channels, &a);
}

/* Maps of at least this many output positions run one sample at a time:
 * the GEMM writes (OC, OH*OW) straight into the sample's output (no
 * scatter), and the sample's col (K, OH*OW) stays in cache between
 * im2col, GEMM and col2im. Smaller maps fold the batch into the GEMM so it
 * keeps enough columns. */
#define PER_SAMPLE_MIN_POSITIONS 256

static int use_per_sample(const ConvShape *s) {
    return s->B > 1 && s->OH * s->OW >= PER_SAMPLE_MIN_POSITIONS;
}

static ConvShape sample_shape(const ConvShape *s) {
    ConvShape one = *s;
    one.B = 1;
    return one;
}

static size_t in_per_sample(const ConvShape *s) {
    return (size_t)s->C * s->H * s->W;
}
static size_t out_per_sample(const ConvShape *s) {
    return (size_t)s->OC * s->OH * s->OW;
}

/* 1x1 stride 1 pad 0: out[b] (OC,HW) = w (OC,C) . inp[b] (C,HW), no copies. */
static void pointwise_forward(const ConvShape *s, const float *inp, const float *w, float *out) {
    const int HW = s->H * s->W;
    for (int b = 0; b < s->B; b++)
        gemm_f32(0, 0, s->OC, HW, s->C, w, s->C, inp + (size_t)b * s->C * HW, HW, 0.0f,
                 out + (size_t)b * s->OC * HW, HW);
}

static void pointwise_backward(const ConvShape *s, const float *inp, const float *w,
                               const float *dout, float *dinp, float *dw) {
    const int HW = s->H * s->W;
    for (int b = 0; b < s->B; b++) {
        const float *x = inp + (size_t)b * s->C * HW, *dy = dout + (size_t)b * s->OC * HW;
        if (dw) /* dw (OC,C) += dy (OC,HW) . x^T */
            gemm_f32(0, 1, s->OC, s->C, HW, dy, HW, x, HW, 1.0f, dw, s->C);
        if (dinp) /* dinp[b] (C,HW) += w^T (C,OC) . dy */
            gemm_f32(1, 0, s->C, HW, s->OC, w, s->C, dy, HW, 1.0f, dinp + (size_t)b * s->C * HW,
                     HW);
    }
}

/* The epilogue of conv2d_bias_forward on n floats of one channel:
 * dst = src + bias (+ res) (then max(., 0) when relu); dst may equal src. */
void conv_bias_act_run(float *dst, const float *src, float bias, const float *res, int relu,
                         size_t n) {
    const v4f b4 = {bias, bias, bias, bias}, zero = {0, 0, 0, 0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, src + i, sizeof v);
        v += b4;
        if (res) {
            v4f r;
            memcpy(&r, res + i, sizeof r);
            v += r;
        }
        if (relu) v = (v4f)((v4i)v & (v > zero)); /* NaN gives 0, as x > 0 ? x : 0 */
        memcpy(dst + i, &v, sizeof v);
    }
    for (; i < n; i++) {
        float v = src[i] + bias + (res ? res[i] : 0.0f);
        dst[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

/* out (OC,P) of one sample in place; res (OC,P) or NULL */
static void bias_act_channels(void *arg, size_t oc0, size_t oc1) {
    const ConvPass *a = arg;
    const size_t P = (size_t)a->s->OH * a->s->OW;
    for (size_t oc = oc0; oc < oc1; oc++)
        conv_bias_act_run(a->dst + oc * P, a->dst + oc * P, a->bias[oc],
                     a->res ? a->res + oc * P : NULL, a->relu, P);
}

static void bias_act_sample(const ConvShape *s, float *out, const float *bias, const float *res,
                            int relu) {
    ConvPass a = {.s = s, .bias = bias, .res = res, .dst = out, .relu = relu};
    pool_for((size_t)s->OC, (size_t)s->OH * s->OW, bias_act_channels, &a);
}

/* ocb_to_boc with the epilogue on the way */
static void ocb_to_boc_bias_act_channels(void *arg, size_t oc0, size_t oc1) {
    const ConvPass *a = arg;
    const ConvShape *s = a->s;
    const size_t P = (size_t)s->OH * s->OW, N = col_cols(s);
    for (size_t oc = oc0; oc < oc1; oc++)
        for (int b = 0; b < s->B; b++) {
            size_t o = ((size_t)b * s->OC + oc) * P;
            conv_bias_act_run(a->dst + o, a->src + oc * N + (size_t)b * P, a->bias[oc],
                         a->res ? a->res + o : NULL, a->relu, P);
        }
}

static void ocb_to_boc_bias_act(const ConvShape *s, const float *ocb, const float *bias,
                                const float *res, int relu, float *boc) {
    ConvPass a = {.s = s, .src = ocb, .bias = bias, .res = res, .dst = boc, .relu = relu};
    pool_for((size_t)s->OC, col_cols(s), ocb_to_boc_bias_act_channels, &a);
}

/* ---- the stem: one input channel, 3x3, stride 1, pad 1, directly ----
 *
 * With C = 1 im2col makes 9 shifted copies of the image and the GEMM has
 * K = 9: each 8 x 32 tile of C is stored after 9 FMAs, and the copies cost
 * as much as the products. Here a row of W lanes of output positions reads
 * its 9 input vectors once (from zero-padded copies of the 3 input rows)
 * and every output channel takes 9 FMAs of them, in im2col's k order
 * (kh, kw) from zero, then the epilogue's bias, residual and ReLU in
 * conv_bias_act_run's order: the same operations as the GEMM path, so the
 * same bits. AVX2 / AVX-512 only (the FMA), as the GEMM path in force;
 * env OCRKD_STEM_DIRECT=0 keeps im2col (A/B timing). */
#define STEM_MAX_W 4096

typedef struct {
    const ConvShape *s;
    const float *inp, *w, *bias, *res;
    float *out;
    int relu;
} StemPass;

#define DEFINE_STEM(fname, ISA, VEC, WL, LOAD, STORE, SET1, FMA, ADD, RELU, ZERO)                   \
    __attribute__((target(ISA))) static void fname(void *arg, size_t r0, size_t r1) {             \
        const StemPass *p = arg;                                                                   \
        const ConvShape *s = p->s;                                                                 \
        const int H = s->H, W = s->W, OC = s->OC;                                                  \
        const size_t plane = (size_t)H * W;                                                        \
        float pad[3][STEM_MAX_W + 2 + (WL)];                                                       \
        for (size_t r = r0; r < r1; r++) { /* row r = (b, y) of the output */                     \
            const int b = (int)(r / (size_t)H), y = (int)(r % (size_t)H);                          \
            for (int i = 0; i < 3; i++) { /* input rows y-1 .. y+1, padded: pad[i][x+1] = x */     \
                const int yy = y - 1 + i;                                                          \
                memset(pad[i], 0, (size_t)(W + 2 + (WL)) * sizeof(float));                         \
                if (yy >= 0 && yy < H)                                                             \
                    memcpy(pad[i] + 1, p->inp + (size_t)b * plane + (size_t)yy * W,                \
                           (size_t)W * sizeof(float));                                             \
            }                                                                                      \
            for (int x0 = 0; x0 < W; x0 += (WL)) {                                                 \
                VEC v[9];                                                                          \
                _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) v[t] =                         \
                    LOAD(pad[t / 3] + x0 + t % 3);                                                 \
                const int n = W - x0 < (WL) ? W - x0 : (WL);                                       \
                for (int oc = 0; oc < OC; oc++) {                                                  \
                    const float *wk = p->w + (size_t)oc * 9;                                       \
                    VEC acc = ZERO();                                                              \
                    _Pragma("GCC unroll 9") for (int t = 0; t < 9; t++) acc =                      \
                        FMA(SET1(wk[t]), v[t], acc);                                               \
                    const size_t at = ((size_t)b * OC + oc) * plane + (size_t)y * W + x0;          \
                    if (p->bias) {                                                                 \
                        acc = ADD(acc, SET1(p->bias[oc]));                                         \
                        if (p->res) {                                                              \
                            float rt[WL] = {0};                                                    \
                            memcpy(rt, p->res + at, (size_t)n * sizeof(float));                    \
                            acc = ADD(acc, LOAD(rt));                                              \
                        }                                                                          \
                        if (p->relu) acc = RELU(acc);                                              \
                    }                                                                              \
                    if (n == (WL)) {                                                               \
                        STORE(p->out + at, acc);                                                   \
                    } else {                                                                       \
                        float tmp[WL];                                                             \
                        STORE(tmp, acc);                                                           \
                        memcpy(p->out + at, tmp, (size_t)n * sizeof(float));                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

__attribute__((target("avx512f"))) static __m512 relu512(__m512 v) {
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ), v);
}
__attribute__((target("avx2"))) static __m256 relu256(__m256 v) {
    return _mm256_and_ps(v, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ));
}
DEFINE_STEM(stem_rows512, "avx512f,fma", __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps,
            _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, relu512, _mm512_setzero_ps)
DEFINE_STEM(stem_rows256, "avx2,fma", __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
            _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, relu256, _mm256_setzero_ps)

static int g_stem = -1; /* -1: env OCRKD_STEM_DIRECT not read yet */

void conv_set_stem_direct(int on) {
    g_stem = on != 0;
}

/* the direct stem's rows function for s on the GEMM path in force, or NULL */
static PoolRangeFn stem_direct(const ConvShape *s) {
    if (g_stem < 0) g_stem = !(getenv("OCRKD_STEM_DIRECT") && !strcmp(getenv("OCRKD_STEM_DIRECT"), "0"));
    if (!g_stem || s->C != 1 || s->KH != 3 || s->KW != 3 || s->SH != 1 || s->SW != 1 || s->PH != 1 ||
        s->PW != 1 || s->W > STEM_MAX_W)
        return NULL;
    const GemmPath p = gemm_path();
    return p == GEMM_AVX512 ? stem_rows512 : p == GEMM_AVX2 ? stem_rows256 : NULL;
}

static void stem_run(PoolRangeFn fn, const ConvShape *s, const float *inp, const float *w,
                     const float *bias, const float *res, int relu, float *out) {
    StemPass p = {s, inp, w, bias, res, out, relu};
    pool_for((size_t)s->B * s->H, (size_t)s->W * s->OC * 9, fn, &p);
}

/* inp (B,C,H,W), w (OC,C,KH,KW), bias (OC), res (B,OC,OH,OW) or NULL ->
 * out (B,OC,OH,OW) = conv + bias (+ res), then ReLU when relu. out must not
 * alias inp or res. ws as for conv2d_forward. */
void conv2d_bias_forward(const ConvShape *s, const float *inp, const float *w, const float *wt,
                         const float *bias, const float *res, int relu, float *out, float *ws) {
    const size_t out_per = out_per_sample(s);
    if (wino_applies(s)) {
        wino_forward(s, inp, w, wt, bias, res, relu, out, ws);
        return;
    }
    PoolRangeFn stem = stem_direct(s);
    if (stem) {
        stem_run(stem, s, inp, w, bias, res, relu, out);
        return;
    }
    if (is_pointwise(s) || use_per_sample(s) || s->B == 1) {
        ConvShape one = sample_shape(s);
        for (int b = 0; b < s->B; b++) {
            float *o = out + b * out_per;
            const float *r = res ? res + b * out_per : NULL;
            conv2d_forward(&one, inp + b * in_per_sample(s), w, o, ws);
            bias_act_sample(&one, o, bias, r, relu);
        }
        return;
    }
    const int K = (int)col_rows(s), N = (int)col_cols(s);
    float *col = ws, *gemm = ws + (size_t)K * N;
    im2col(s, inp, col);
    gemm_f32(0, 0, s->OC, N, K, w, K, col, N, 0.0f, gemm, N);
    ocb_to_boc_bias_act(s, gemm, bias, res, relu, out);
}

/* inp (B,C,H,W), w (OC,C,KH,KW) -> out (B,OC,OH,OW) (overwritten);
 * ws: conv_workspace_floats(s) floats */
void conv2d_forward(const ConvShape *s, const float *inp, const float *w, float *out, float *ws) {
    if (wino_applies(s)) {
        wino_forward(s, inp, w, NULL, NULL, NULL, 0, out, ws);
        return;
    }
    PoolRangeFn stem = stem_direct(s);
    if (stem) {
        stem_run(stem, s, inp, w, NULL, NULL, 0, out);
        return;
    }
    if (is_pointwise(s)) {
        pointwise_forward(s, inp, w, out);
        return;
    }
    if (use_per_sample(s)) {
        ConvShape one = sample_shape(s);
        for (int b = 0; b < s->B; b++)
            conv2d_forward(&one, inp + b * in_per_sample(s), w, out + b * out_per_sample(s), ws);
        return;
    }
    const int K = (int)col_rows(s), N = (int)col_cols(s);
    float *col = ws, *res = s->B > 1 ? ws + (size_t)K * N : out;
    im2col(s, inp, col);
    gemm_f32(0, 0, s->OC, N, K, w, K, col, N, 0.0f, res, N);
    if (s->B > 1) ocb_to_boc(s, res, out);
}

/* dout (B,OC,OH,OW) -> dinp (B,C,H,W) +=, dw (OC,C,KH,KW) +=; either may be NULL.
 * inp (B,C,H,W) is the forward input, ws as for conv2d_forward. */
void conv2d_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                     float *dinp, float *dw, float *ws) {
    if (!dinp && !dw) return;
    if (wino_applies_backward(s)) {
        wino_backward(s, inp, w, dout, dinp, dw, ws);
        return;
    }
    if (is_pointwise(s)) {
        pointwise_backward(s, inp, w, dout, dinp, dw);
        return;
    }
    if (use_per_sample(s)) {
        ConvShape one = sample_shape(s);
        for (int b = 0; b < s->B; b++)
            conv2d_backward(&one, inp + b * in_per_sample(s), w, dout + b * out_per_sample(s),
                            dinp ? dinp + b * in_per_sample(s) : NULL, dw, ws);
        return;
    }
    const int K = (int)col_rows(s), N = (int)col_cols(s);
    float *col = ws;
    const float *dy = dout; /* (OC, N) view of dout */
    if (s->B > 1) {
        float *g = ws + (size_t)K * N;
        boc_to_ocb(s, dout, g);
        dy = g;
    }
    if (dw) { /* dw (OC,K) += dy (OC,N) . col^T */
        im2col(s, inp, col);
        gemm_f32(0, 1, s->OC, K, N, dy, N, col, N, 1.0f, dw, K);
    }
    if (dinp) { /* dcol (K,N) = w^T (K,OC) . dy, then scattered back */
        gemm_f32(1, 0, K, N, s->OC, w, K, dy, N, 0.0f, col, N);
        col2im_add(s, col, dinp);
    }
}
