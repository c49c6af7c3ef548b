/* lstm.c - multi-layer bidirectional LSTM forward and backward (BPTT).
 *
 * For: nn.LSTM(I, H, layers, bidirectional=True) semantics on (T,B,C)
 * sequences with zero initial states: gate order i, f, g, o;
 * c' = f*c + i*g, h = o*tanh(c'); layer l > 0 reads concat(fwd, rev) of
 * layer l-1. The input projections of all T steps are ONE gemm_f32 per
 * direction and layer, the recurrence one GEMM per step; in backward the
 * weight gradients are likewise one GEMM each over all steps.
 * Not for: variable-length (packed) sequences, initial states, dropout,
 * projections (proj_size), allocation (acts and ws come from the caller).
 *
 * acts layout, per layer l (bilstm_acts_floats):
 *   for dir in {fwd, rev}: gates (T,B,4H) activated i,f,g,o; cell (T,B,H) c_t;
 *                          tcell (T,B,H) tanh(c_t)
 *   y (T,B,2H): the layer output (fwd in [0:H], rev in [H:2H])
 * ws layout (bilstm_workspace_floats):
 *   dgates fwd (T,B,4H) | dgates rev (T,B,4H) | dy0 (T,B,2H) | dy1 (T,B,2H) |
 *   dh fwd, dc fwd, dh rev, dc rev (B,H each)
 */
#include "ocrkd/common.h"
#include "ocrkd/nn.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include "vec4.h"

/* ---- layout helpers ---- */

static size_t seq_floats(const LstmShape *s, int c) {
    return (size_t)s->T * s->B * c;
}
static size_t dir_floats(const LstmShape *s) {
    return seq_floats(s, 6 * s->H);
}
static size_t layer_floats(const LstmShape *s) {
    return 2 * dir_floats(s) + seq_floats(s, 2 * s->H);
}
static int layer_in(const LstmShape *s, int l) {
    return l == 0 ? s->In : 2 * s->H;
}

typedef struct {
    float *gates, *cell, *tcell; /* (T,B,4H), (T,B,H), (T,B,H) */
} DirActs;

static DirActs dir_acts(const LstmShape *s, const float *acts, int l, int d) {
    float *base = (float *)acts + (size_t)l * layer_floats(s) + (size_t)d * dir_floats(s);
    DirActs a = {base, base + seq_floats(s, 4 * s->H), base + seq_floats(s, 5 * s->H)};
    return a;
}
static float *layer_out(const LstmShape *s, const float *acts, int l) {
    return (float *)acts + (size_t)l * layer_floats(s) + 2 * dir_floats(s);
}
/* time index of the k-th step a direction takes */
static int step_t(const LstmShape *s, int d, int k) {
    return d == 0 ? k : s->T - 1 - k;
}

size_t bilstm_acts_floats(const LstmShape *s) {
    return (size_t)s->layers * layer_floats(s);
}

size_t bilstm_workspace_floats(const LstmShape *s) {
    return 2 * seq_floats(s, 4 * s->H) + 2 * seq_floats(s, 2 * s->H) + 4 * (size_t)s->B * s->H;
}

/* ---- forward ---- */

/* pre (N,4H) = inp (N,In) w_ih^T + b_ih + b_hh, N = T*B */
static void input_projection(const float *inp, int N, int In, int H, const LstmWeights *w,
                             float *pre) {
    for (int j = 0; j < 4 * H; j++) /* row 0, copied to the others on the pool */
        pre[j] = w->b_ih[j] + w->b_hh[j];
    if (N > 1) fill_rows(pre + 4 * (size_t)H, (size_t)N - 1, pre, 4 * H);
    gemm_f32(0, 1, N, 4 * H, In, inp, In, w->w_ih, In, 1.0f, pre, 4 * H);
}

/* ---- gate activations, W lanes at a time ----
 * The gate math is a fifth of the LSTM's time with libm's scalar expf/tanhf,
 * and -O2 does not vectorize calls, so exp, sigmoid and tanh are written on
 * GCC/Clang vector types. exp: Cody-Waite range reduction and Cephes'
 * degree-5 polynomial, ~1 ulp on [-87, 88] (inputs are clamped there; NaN
 * passes through). tanh: Cephes' odd polynomial for |x| < 0.625, else
 * 1 - 2/(exp(2|x|) + 1) with x's sign.
 * The forward's cell update is defined once for W = 4 (SSE2, the baseline
 * ISA), 8 (AVX2) and 16 lanes (AVX-512; H = 64 is four vectors a row), run
 * by the widest the GEMM path uses (gemm_path; env OCRKD_LSTM_LANES
 * chooses). Every lane does the same
 * IEEE operations in the same order (no FMA contraction under -std=c11), so
 * the three are bit-identical; the width only changes how many run at once
 * (the gates were 9 % of the small student's eval at 4 lanes). */
#define DEFINE_CELL(SFX, W, ATTR)                                                                  \
    typedef float vf##SFX __attribute__((vector_size(4 * (W))));                                   \
    typedef int vi##SFX __attribute__((vector_size(4 * (W))));                                     \
    ATTR static inline vf##SFX ld##SFX(const float *p, int n) {                                    \
        vf##SFX v = {0};                                                                           \
        memcpy(&v, p, (size_t)n * sizeof(float));                                                  \
        return v;                                                                                  \
    }                                                                                              \
    ATTR static inline void st##SFX(float *p, vf##SFX v, int n) {                                  \
        memcpy(p, &v, (size_t)n * sizeof(float));                                                  \
    }                                                                                              \
    ATTR static inline vf##SFX sel##SFX(vi##SFX mask, vf##SFX a, vf##SFX b) {                      \
        return (vf##SFX)((mask & (vi##SFX)a) | (~mask & (vi##SFX)b));                              \
    }                                                                                              \
    ATTR static inline vf##SFX vexp##SFX(vf##SFX x) {                                              \
        const vf##SFX zero = {0}, lo = zero - 87.0f, hi = zero + 88.0f; /* NaN stays NaN */         \
        x = sel##SFX(x < lo, lo, x);                                                               \
        x = sel##SFX(x > hi, hi, x);                                                               \
        vf##SFX n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;                        \
        vf##SFX r = x - n * 0.693359375f;                                                          \
        r = r - n * -2.12194440e-4f;                                                               \
        vf##SFX p = r * 1.9875691500e-4f + 1.3981999507e-3f;                                       \
        p = p * r + 8.3334519073e-3f;                                                              \
        p = p * r + 4.1665795894e-2f;                                                              \
        p = p * r + 1.6666665459e-1f;                                                              \
        p = p * r + 5.0000001201e-1f;                                                              \
        vf##SFX y = p * r * r + r + 1.0f;                                                          \
        vi##SFX bits = (__builtin_convertvector(n, vi##SFX) + 127) << 23;                          \
        return y * (vf##SFX)bits;                                                                  \
    }                                                                                              \
    ATTR static inline vf##SFX vsigmoid##SFX(vf##SFX x) {                                          \
        return 1.0f / (1.0f + vexp##SFX(-x));                                                      \
    }                                                                                              \
    ATTR static inline vf##SFX vtanh##SFX(vf##SFX x) {                                             \
        const vi##SFX zero = {0}, sign = (vi##SFX)x & (zero + INT_MIN); /* x's sign bits */         \
        vf##SFX a = (vf##SFX)((vi##SFX)x ^ sign);                                                  \
        vf##SFX big = 1.0f - 2.0f / (vexp##SFX(a + a) + 1.0f);                                     \
        big = (vf##SFX)((vi##SFX)big | sign);                                                      \
        vf##SFX z = x * x;                                                                         \
        vf##SFX p = z * -5.70498872745e-3f + 2.06390887954e-2f;                                    \
        p = p * z + -5.37397155531e-2f;                                                            \
        p = p * z + 1.33314422036e-1f;                                                             \
        p = p * z + -3.33332819422e-1f;                                                            \
        vf##SFX small = p * z * x + x;                                                             \
        return sel##SFX(a < 0.625f, small, big);                                                   \
    }                                                                                              \
    /* n <= W lanes of one row's cell update: gates i,f,g,o (pre-activations,                      \
     * activated in place), cp previous cell or NULL, c, tc = tanh(c), h */                        \
    ATTR static inline __attribute__((always_inline)) void cell_lanes##SFX(                        \
        float *gi, float *gf, float *gg, float *go, const float *cp, float *c, float *tc,          \
        float *h, int n) {                                                                         \
        vf##SFX i = vsigmoid##SFX(ld##SFX(gi, n)), f = vsigmoid##SFX(ld##SFX(gf, n)),              \
                g = vtanh##SFX(ld##SFX(gg, n)), o = vsigmoid##SFX(ld##SFX(go, n));                 \
        vf##SFX cn = i * g;                                                                        \
        if (cp) cn += f * ld##SFX(cp, n);                                                          \
        vf##SFX t = vtanh##SFX(cn);                                                                \
        st##SFX(gi, i, n), st##SFX(gf, f, n), st##SFX(gg, g, n), st##SFX(go, o, n);                \
        st##SFX(c, cn, n), st##SFX(tc, t, n), st##SFX(h, o * t, n);                                \
    }                                                                                              \
    /* One step's gate math for B rows. g (B,4H) pre-activations -> activated                      \
     * in place; cprev (B,H) or NULL (zero state); c, tc (B,H); h (B, stride ldh). */              \
    ATTR static void lstm_cell##SFX(int B, int H, float *g, const float *cprev, float *c,          \
                                    float *tc, float *h, int ldh) {                                \
        for (int b = 0; b < B; b++) {                                                              \
            float *gi = g + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;   \
            const float *cp = cprev ? cprev + (size_t)b * H : NULL;                                \
            float *cb = c + (size_t)b * H, *tb = tc + (size_t)b * H, *hb = h + (size_t)b * ldh;    \
            int j = 0;                                                                             \
            for (; j + (W) <= H; j += (W)) /* constant W lanes: loads and stores inline */         \
                cell_lanes##SFX(gi + j, gf + j, gg + j, go + j, cp ? cp + j : NULL, cb + j,        \
                                tb + j, hb + j, W);                                                \
            if (j < H)                                                                             \
                cell_lanes##SFX(gi + j, gf + j, gg + j, go + j, cp ? cp + j : NULL, cb + j,        \
                                tb + j, hb + j, H - j);                                            \
        }                                                                                          \
    }

DEFINE_CELL(4, 4, )
DEFINE_CELL(8, 8, __attribute__((target("avx2"))))
DEFINE_CELL(16, 16, __attribute__((target("avx512f"))))

/* Lanes of the cell update: env OCRKD_LSTM_LANES = 4 | 8 | 16 (for tests
 * and A/B timing; one this CPU cannot run is fatal), else the GEMM path's
 * width. Read once. */
static int cell_lanes_width(void) {
    static int lanes;
    if (lanes) return lanes;
    const char *env = getenv("OCRKD_LSTM_LANES");
    if (env && *env) {
        __builtin_cpu_init();
        int v = atoi(env);
        if (strcmp(env, "4") && strcmp(env, "8") && strcmp(env, "16"))
            fatal(EXIT_USAGE, "OCRKD_LSTM_LANES=%s: unknown; 4, 8 or 16", env);
        if ((v == 8 && !__builtin_cpu_supports("avx2")) ||
            (v == 16 && !__builtin_cpu_supports("avx512f")))
            fatal(EXIT_USAGE, "OCRKD_LSTM_LANES=%s: this CPU cannot run it", env);
        return lanes = v;
    }
    const GemmPath p = gemm_path();
    return lanes = p == GEMM_AVX512 ? 16 : p == GEMM_AVX2 ? 8 : 4;
}

/* the forward's cell update (bit-identical at any width) */
static void lstm_cell(int B, int H, float *g, const float *cprev, float *c, float *tc, float *h,
                      int ldh) {
    switch (cell_lanes_width()) {
    case 16:
        lstm_cell16(B, H, g, cprev, c, tc, h, ldh);
        break;
    case 8:
        lstm_cell8(B, H, g, cprev, c, tc, h, ldh);
        break;
    default:
        lstm_cell4(B, H, g, cprev, c, tc, h, ldh);
    }
}

/* W_hh packed once per recurrence for its T - 1 step products (packing it
 * per step cost as much as the product at batch 8); one per thread, since
 * the two directions run on two (gemm.h: GemmPackedB). Kept, never freed. */
static _Thread_local GemmPackedB g_whh;

/* The recurrence of one direction of one layer, its input projection in
 * a.gates: -> y[..., d*H : d*H+H] of (T,B,2H). */
static void direction_recurrence(const LstmShape *s, const LstmWeights *w, int d, DirActs a,
                                 float *y) {
    int T = s->T, B = s->B, H = s->H;
    size_t gstep = (size_t)B * 4 * H, cstep = (size_t)B * H, ystep = (size_t)B * 2 * H;
    if (T > 1) gemm_pack_b(&g_whh, 0, B, 1, H, 4 * H, w->w_hh, H); /* h W_hh^T */
    for (int k = 0; k < T; k++) {
        int t = step_t(s, d, k), tp = step_t(s, d, k - 1);
        float *g = a.gates + t * gstep;
        const float *cprev = NULL;
        if (k > 0) {
            const float *hprev = y + tp * ystep + d * H;
            gemm_f32_packed(&g_whh, hprev, 2 * H, 1.0f, g, 4 * H);
            cprev = a.cell + tp * cstep;
        }
        lstm_cell(B, H, g, cprev, a.cell + t * cstep, a.tcell + t * cstep, y + t * ystep + d * H,
                  2 * H);
    }
}

typedef struct {
    const LstmShape *s;
    const LstmWeights *w; /* the layer's two directions */
    const float *acts;
    float *y;
    int l;
} LayerPass;

/* part d of 2: direction d's recurrence (on one thread: both, in order) */
static void recurrence_part(void *arg, int part, int parts) {
    const LayerPass *p = arg;
    for (int d = part; d < 2; d += parts)
        direction_recurrence(p->s, &p->w[d], d, dir_acts(p->s, p->acts, p->l, d), p->y);
}

/* Per layer: both directions' input projections (GEMMs over all steps, on
 * every thread), then the two recurrences side by side on two threads of
 * the pool (their step GEMMs then run on their own thread). A direction's
 * arithmetic does not depend on where it runs: bit-identical for any count. */
void bilstm_forward(const LstmShape *s, const LstmWeights *w, const float *inp, float *out,
                    float *acts) {
    for (int l = 0; l < s->layers; l++) {
        const float *x = l == 0 ? inp : layer_out(s, acts, l - 1);
        float *y = layer_out(s, acts, l);
        for (int d = 0; d < 2; d++)
            input_projection(x, s->T * s->B, layer_in(s, l), s->H, &w[2 * l + d],
                             dir_acts(s, acts, l, d).gates);
        LayerPass p = {s, &w[2 * l], acts, y, l};
        pool_run(2, recurrence_part, &p);
    }
    memcpy(out, layer_out(s, acts, s->layers - 1), seq_floats(s, 2 * s->H) * sizeof(float));
}

/* ---- backward ---- */

/* Inlined at each call so a constant lane count makes loads/stores plain moves. */
#define LANES static inline __attribute__((always_inline))

/* n <= 4 lanes of one row's cell backward. In: activated gates i,f,g,o,
 * cp previous cell or NULL, t = tanh(c), dh total gradient into h_t,
 * dc gradient from step t+1 into c_t (overwritten with the gradient into
 * c_{t-1}). Out: di, df, dg, do w.r.t. the gate pre-activations. */
LANES void cell_backward_lanes(const float *gi, const float *gf, const float *gg, const float *go,
                               const float *cp, const float *tc, const float *dh, float *dc,
                               float *di, float *df, float *dg, float *dout, int n) {
    v4f i = load4_n(gi, n), f = load4_n(gf, n), g = load4_n(gg, n), o = load4_n(go, n);
    v4f t = load4_n(tc, n), h = load4_n(dh, n), one = splat4(1.0f);
    v4f c = load4_n(dc, n) + h * o * (one - t * t);
    v4f cprev = cp ? load4_n(cp, n) : splat4(0.0f);
    store4_n(di, c * g * i * (one - i), n);
    store4_n(df, c * cprev * f * (one - f), n);
    store4_n(dg, c * i * (one - g * g), n);
    store4_n(dout, h * t * o * (one - o), n);
    store4_n(dc, c * f, n);
}

/* One step's gate gradients for B rows: dh (B,H), dc (B,H) in/out as in
 * cell_backward_lanes; ga activated gates (B,4H), cprev (B,H) or NULL,
 * tc (B,H); dg (B,4H) receives gradients w.r.t. gate pre-activations. */
static void lstm_cell_backward(int B, int H, const float *dh, float *dc, const float *ga,
                               const float *cprev, const float *tc, float *dg) {
    for (int b = 0; b < B; b++) {
        const float *gi = ga + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const float *cp = cprev ? cprev + (size_t)b * H : NULL;
        const float *dhb = dh + (size_t)b * H, *tb = tc + (size_t)b * H;
        float *dcb = dc + (size_t)b * H;
        float *di = dg + (size_t)b * 4 * H, *df = di + H, *dgg = di + 2 * H, *dout = di + 3 * H;
        int j = 0;
        for (; j + 4 <= H; j += 4) /* constant 4 lanes: loads and stores inline */
            cell_backward_lanes(gi + j, gf + j, gg + j, go + j, cp ? cp + j : NULL, tb + j, dhb + j,
                                dcb + j, di + j, df + j, dgg + j, dout + j, 4);
        if (j < H)
            cell_backward_lanes(gi + j, gf + j, gg + j, go + j, cp ? cp + j : NULL, tb + j, dhb + j,
                                dcb + j, di + j, df + j, dgg + j, dout + j, H - j);
    }
}

/* Column sums of dg (N,G) into both bias gradients (they are equal), row
 * by row so dg streams through the cache once. */
static void bias_grads(const float *dg, int N, int G, float *db_ih, float *db_hh) {
    for (int r = 0; r < N; r++) {
        const float *row = dg + (size_t)r * G;
        int j = 0;
        for (; j + 4 <= G; j += 4) {
            v4f v = load4_n(row + j, 4);
            store4_n(db_ih + j, load4_n(db_ih + j, 4) + v, 4);
            store4_n(db_hh + j, load4_n(db_hh + j, 4) + v, 4);
        }
        for (; j < G; j++)
            db_ih[j] += row[j], db_hh[j] += row[j];
    }
}

/* dw_hh (4H,H) += sum over steps k>0 of dg[t_k]^T h[t_{k-1}]: one GEMM,
 * since for the forward direction steps 1..T-1 pair with outputs 0..T-2 and
 * for the reverse direction steps 0..T-2 pair with outputs 1..T-1. */
static void recurrent_weight_grad(const LstmShape *s, int d, const float *dg, const float *y,
                                  float *dw_hh) {
    int T = s->T, B = s->B, H = s->H;
    if (T < 2) return;
    size_t gstep = (size_t)B * 4 * H, ystep = (size_t)B * 2 * H;
    const float *g0 = d == 0 ? dg + gstep : dg;
    const float *h0 = (d == 0 ? y : y + ystep) + d * H;
    gemm_f32(1, 0, 4 * H, H, (T - 1) * B, g0, 4 * H, h0, 2 * H, 1.0f, dw_hh, H);
}

typedef struct {
    float *dg, *dh, *dc;
} DirScratch;

/* dh (B,H) = this direction's half of dy[t] (B,2H) */
static void take_dy(const LstmShape *s, int d, const float *dy, int t, float *dh) {
    const float *src = dy + (size_t)t * s->B * 2 * s->H + d * s->H;
    for (int b = 0; b < s->B; b++)
        memcpy(dh + (size_t)b * s->H, src + (size_t)b * 2 * s->H, s->H * sizeof(float));
}

/* The recurrence of one direction of one layer: sc.dg (T,B,4H) receives the
 * gradients w.r.t. the gate pre-activations. dy (T,B,2H) gradient of the
 * layer output; dh holds dy[t] plus the recurrent gradient dg[t+1] w_hh
 * (added by GEMM). */
static void direction_recurrence_backward(const LstmShape *s, const LstmWeights *w, int d,
                                          DirActs a, const float *dy, DirScratch sc) {
    int T = s->T, B = s->B, H = s->H;
    size_t gstep = (size_t)B * 4 * H, cstep = (size_t)B * H;
    memset(sc.dc, 0, cstep * sizeof(float));
    take_dy(s, d, dy, step_t(s, d, T - 1), sc.dh);
    if (T > 1) gemm_pack_b(&g_whh, 0, B, 0, 4 * H, H, w->w_hh, H); /* dg W_hh */
    for (int k = T - 1; k >= 0; k--) {
        int t = step_t(s, d, k), tp = step_t(s, d, k - 1);
        float *dg = sc.dg + t * gstep;
        lstm_cell_backward(B, H, sc.dh, sc.dc, a.gates + t * gstep,
                           k > 0 ? a.cell + tp * cstep : NULL, a.tcell + t * cstep, dg);
        if (k > 0) {
            take_dy(s, d, dy, tp, sc.dh);
            gemm_f32_packed(&g_whh, dg, 4 * H, 1.0f, sc.dh, H);
        }
    }
}

/* The products after one direction's recurrence: x (T,B,In) the layer's
 * input, y its output; dx (T,B,In) += or NULL; dw or NULL. */
static void direction_products(const LstmShape *s, const LstmWeights *w, const LstmWeights *dw,
                               int d, const float *x, int In, const float *y, const float *dg,
                               float *dx) {
    int N = s->T * s->B, H = s->H;
    if (dw) {
        gemm_f32(1, 0, 4 * H, In, N, dg, 4 * H, x, In, 1.0f, dw->w_ih, In);
        recurrent_weight_grad(s, d, dg, y, dw->w_hh);
        bias_grads(dg, N, 4 * H, dw->b_ih, dw->b_hh);
    }
    if (dx) gemm_f32(0, 0, N, In, 4 * H, dg, 4 * H, w->w_ih, In, 1.0f, dx, In);
}

typedef struct {
    const LstmShape *s;
    const LstmWeights *w; /* the layer's two directions */
    const float *acts, *dy;
    const DirScratch *sc; /* one per direction */
    int l;
} LayerBackPass;

/* part d of 2: direction d's backward recurrence (on one thread: both) */
static void recurrence_backward_part(void *arg, int part, int parts) {
    const LayerBackPass *p = arg;
    for (int d = part; d < 2; d += parts)
        direction_recurrence_backward(p->s, &p->w[d], d, dir_acts(p->s, p->acts, p->l, d), p->dy,
                                      p->sc[d]);
}

/* Per layer: the two directions' recurrences side by side on two threads
 * (each with its own scratch), then their weight and input gradients as
 * GEMMs on every thread, direction 0 first. Where a recurrence runs does not
 * change its arithmetic, and the sums keep one order: bit-identical for any
 * thread count. */
void bilstm_backward(const LstmShape *s, const LstmWeights *w, const LstmWeights *dw,
                     const float *inp, const float *acts, const float *dout, float *dinp,
                     float *ws) {
    size_t ny = seq_floats(s, 2 * s->H), nbh = (size_t)s->B * s->H, ng = seq_floats(s, 4 * s->H);
    float *dybuf[2] = {ws + 2 * ng, ws + 2 * ng + ny};
    float *rest = dybuf[1] + ny;
    DirScratch sc[2] = {{ws, rest, rest + nbh}, {ws + ng, rest + 2 * nbh, rest + 3 * nbh}};
    for (int l = s->layers - 1; l >= 0; l--) {
        const float *dy = l == s->layers - 1 ? dout : dybuf[l % 2];
        float *dx = l == 0 ? dinp : dybuf[(l - 1) % 2];
        if (l > 0) memset(dx, 0, ny * sizeof(float));
        const float *x = l == 0 ? inp : layer_out(s, acts, l - 1);
        LayerBackPass p = {s, &w[2 * l], acts, dy, sc, l};
        pool_run(2, recurrence_backward_part, &p);
        for (int d = 0; d < 2; d++)
            direction_products(s, &w[2 * l + d], dw ? &dw[2 * l + d] : NULL, d, x, layer_in(s, l),
                               layer_out(s, acts, l), sc[d].dg, dx);
    }
}
