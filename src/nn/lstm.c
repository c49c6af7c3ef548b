/* lstm.c - multi-layer bidirectional LSTM forward and backward (BPTT).
 *
 * For: nn.LSTM(I, H, layers, bidirectional=True) semantics on (T,B,C)
 * sequences with zero initial states: gate order i, f, g, o;
 * c' = f*c + i*g, h = o*tanh(c'); layer l > 0 reads concat(fwd, rev) of
 * layer l-1. The input projections of all T steps are ONE cblas_sgemm per
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
 *   dgates (T,B,4H) | dy0 (T,B,2H) | dy1 (T,B,2H) | dh (B,H) | dc (B,H) | dhrec (B,H)
 */
#include "ocrkd/nn.h"

#include <math.h>
#include <string.h>

/* After nn.h: cblas.h pulls in <complex.h>, whose macro `I` would break
 * LstmShape's field of that name; we use no complex numbers. */
#include <cblas.h>
#undef I

/* ---- layout helpers ---- */

static size_t seq_floats(const LstmShape *s, int c) { return (size_t)s->T * s->B * c; }
static size_t dir_floats(const LstmShape *s) { return seq_floats(s, 6 * s->H); }
static size_t layer_floats(const LstmShape *s) { return 2 * dir_floats(s) + seq_floats(s, 2 * s->H); }
static int layer_in(const LstmShape *s, int l) { return l == 0 ? s->I : 2 * s->H; }

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
static int step_t(const LstmShape *s, int d, int k) { return d == 0 ? k : s->T - 1 - k; }

size_t bilstm_acts_floats(const LstmShape *s) { return (size_t)s->layers * layer_floats(s); }

size_t bilstm_workspace_floats(const LstmShape *s) {
    return seq_floats(s, 4 * s->H) + 2 * seq_floats(s, 2 * s->H) + 3 * (size_t)s->B * s->H;
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- forward ---- */

/* pre (N,4H) = inp (N,In) w_ih^T + b_ih + b_hh, N = T*B */
static void input_projection(const float *inp, int N, int In, int H, const LstmWeights *w,
                             float *pre) {
    for (int n = 0; n < N; n++) {
        float *row = pre + (size_t)n * 4 * H;
        for (int j = 0; j < 4 * H; j++) row[j] = w->b_ih[j] + w->b_hh[j];
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, 4 * H, In, 1.0f, inp, In, w->w_ih, In,
                1.0f, pre, 4 * H);
}

/* One step's gate math for B rows. g (B,4H) pre-activations -> activated in
 * place; cprev (B,H) or NULL (zero state); c, tc (B,H); h (B, stride ldh). */
static void lstm_cell(int B, int H, float *g, const float *cprev, float *c, float *tc, float *h,
                      int ldh) {
    for (int b = 0; b < B; b++) {
        float *gi = g + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const float *cp = cprev ? cprev + (size_t)b * H : NULL;
        float *cb = c + (size_t)b * H, *tb = tc + (size_t)b * H, *hb = h + (size_t)b * ldh;
        for (int j = 0; j < H; j++) {
            float i = sigmoidf(gi[j]), f = sigmoidf(gf[j]), gc = tanhf(gg[j]), o = sigmoidf(go[j]);
            float cn = i * gc + (cp ? f * cp[j] : 0.0f);
            float t = tanhf(cn);
            gi[j] = i, gf[j] = f, gg[j] = gc, go[j] = o;
            cb[j] = cn, tb[j] = t, hb[j] = o * t;
        }
    }
}

/* One direction of one layer: x (T,B,In) -> y[..., d*H : d*H+H] of (T,B,2H). */
static void direction_forward(const LstmShape *s, const LstmWeights *w, int d, const float *x,
                              int In, DirActs a, float *y) {
    int T = s->T, B = s->B, H = s->H;
    size_t gstep = (size_t)B * 4 * H, cstep = (size_t)B * H, ystep = (size_t)B * 2 * H;
    input_projection(x, T * B, In, H, w, a.gates);
    for (int k = 0; k < T; k++) {
        int t = step_t(s, d, k), tp = step_t(s, d, k - 1);
        float *g = a.gates + t * gstep;
        const float *cprev = NULL;
        if (k > 0) {
            const float *hprev = y + tp * ystep + d * H;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 4 * H, H, 1.0f, hprev, 2 * H,
                        w->w_hh, H, 1.0f, g, 4 * H);
            cprev = a.cell + tp * cstep;
        }
        lstm_cell(B, H, g, cprev, a.cell + t * cstep, a.tcell + t * cstep, y + t * ystep + d * H,
                  2 * H);
    }
}

void bilstm_forward(const LstmShape *s, const LstmWeights *w, const float *inp, float *out,
                    float *acts) {
    for (int l = 0; l < s->layers; l++) {
        const float *x = l == 0 ? inp : layer_out(s, acts, l - 1);
        float *y = layer_out(s, acts, l);
        for (int d = 0; d < 2; d++)
            direction_forward(s, &w[2 * l + d], d, x, layer_in(s, l), dir_acts(s, acts, l, d), y);
    }
    memcpy(out, layer_out(s, acts, s->layers - 1), seq_floats(s, 2 * s->H) * sizeof(float));
}

/* ---- backward ---- */

/* One step's gate gradients for B rows. dh (B,H) total gradient into h_t,
 * dc (B,H) in: gradient from step t+1 into c_t, out: into c_{t-1};
 * a: activated gates ga (B,4H), cprev (B,H) or NULL, tc (B,H);
 * dg (B,4H) receives gradients w.r.t. gate pre-activations. */
static void lstm_cell_backward(int B, int H, const float *dh, float *dc, const float *ga,
                               const float *cprev, const float *tc, float *dg) {
    for (int b = 0; b < B; b++) {
        const float *gi = ga + (size_t)b * 4 * H, *gf = gi + H, *gg = gi + 2 * H, *go = gi + 3 * H;
        const float *cp = cprev ? cprev + (size_t)b * H : NULL;
        const float *dhb = dh + (size_t)b * H, *tb = tc + (size_t)b * H;
        float *dcb = dc + (size_t)b * H;
        float *di = dg + (size_t)b * 4 * H, *df = di + H, *dgg = di + 2 * H, *dout = di + 3 * H;
        for (int j = 0; j < H; j++) {
            float i = gi[j], f = gf[j], g = gg[j], o = go[j], t = tb[j];
            float dcj = dcb[j] + dhb[j] * o * (1.0f - t * t);
            float cpj = cp ? cp[j] : 0.0f;
            di[j] = dcj * g * i * (1.0f - i);
            df[j] = dcj * cpj * f * (1.0f - f);
            dgg[j] = dcj * i * (1.0f - g * g);
            dout[j] = dhb[j] * t * o * (1.0f - o);
            dcb[j] = dcj * f;
        }
    }
}

/* Column sums of dg (N,G) into both bias gradients (they are equal). */
static void bias_grads(const float *dg, int N, int G, float *db_ih, float *db_hh) {
    for (int n = 0; n < N; n++) {
        const float *row = dg + (size_t)n * G;
        for (int j = 0; j < G; j++) {
            db_ih[j] += row[j];
            db_hh[j] += row[j];
        }
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
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, H, (T - 1) * B, 1.0f, g0, 4 * H,
                h0, 2 * H, 1.0f, dw_hh, H);
}

typedef struct {
    float *dg, *dh, *dc, *dhrec;
} DirScratch;

/* One direction of one layer. dy (T,B,2H) gradient of the layer output;
 * x (T,B,In) its input, y its output; dx (T,B,In) += or NULL; dw or NULL. */
static void direction_backward(const LstmShape *s, const LstmWeights *w, const LstmWeights *dw,
                               int d, const float *x, int In, const float *y, DirActs a,
                               const float *dy, float *dx, DirScratch sc) {
    int T = s->T, B = s->B, H = s->H;
    size_t gstep = (size_t)B * 4 * H, cstep = (size_t)B * H, ystep = (size_t)B * 2 * H;
    memset(sc.dc, 0, cstep * sizeof(float));
    for (int k = T - 1; k >= 0; k--) {
        int t = step_t(s, d, k), tp = step_t(s, d, k - 1);
        const float *dyt = dy + t * ystep + d * H;
        for (int b = 0; b < B; b++)
            for (int j = 0; j < H; j++)
                sc.dh[(size_t)b * H + j] =
                    dyt[(size_t)b * 2 * H + j] + (k < T - 1 ? sc.dhrec[(size_t)b * H + j] : 0.0f);
        float *dg = sc.dg + t * gstep;
        lstm_cell_backward(B, H, sc.dh, sc.dc, a.gates + t * gstep,
                           k > 0 ? a.cell + tp * cstep : NULL, a.tcell + t * cstep, dg);
        if (k > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, H, 4 * H, 1.0f, dg, 4 * H,
                        w->w_hh, H, 0.0f, sc.dhrec, H);
    }
    int N = T * B;
    if (dw) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 4 * H, In, N, 1.0f, sc.dg, 4 * H, x,
                    In, 1.0f, dw->w_ih, In);
        recurrent_weight_grad(s, d, sc.dg, y, dw->w_hh);
        bias_grads(sc.dg, N, 4 * H, dw->b_ih, dw->b_hh);
    }
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, In, 4 * H, 1.0f, sc.dg, 4 * H,
                    w->w_ih, In, 1.0f, dx, In);
}

void bilstm_backward(const LstmShape *s, const LstmWeights *w, const LstmWeights *dw,
                     const float *inp, const float *acts, const float *dout, float *dinp,
                     float *ws) {
    size_t ny = seq_floats(s, 2 * s->H), nbh = (size_t)s->B * s->H;
    float *dybuf[2] = {ws + seq_floats(s, 4 * s->H), ws + seq_floats(s, 4 * s->H) + ny};
    DirScratch sc = {ws, dybuf[1] + ny, dybuf[1] + ny + nbh, dybuf[1] + ny + 2 * nbh};
    for (int l = s->layers - 1; l >= 0; l--) {
        const float *dy = l == s->layers - 1 ? dout : dybuf[l % 2];
        float *dx = l == 0 ? dinp : dybuf[(l - 1) % 2];
        if (l > 0) memset(dx, 0, ny * sizeof(float));
        const float *x = l == 0 ? inp : layer_out(s, acts, l - 1);
        for (int d = 0; d < 2; d++)
            direction_backward(s, &w[2 * l + d], dw ? &dw[2 * l + d] : NULL, d, x, layer_in(s, l),
                               layer_out(s, acts, l), dir_acts(s, acts, l, d), dy, dx, sc);
    }
}
