/* test_lstm.c - bilstm_forward/backward against a naive double-precision
 * LSTM written here from the nn.LSTM equations, and every gradient against
 * central finite differences of that double reference.
 * Loss = sum(out * R) for a random R, so dout = R. */
#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

#include <string.h>

/* H = 5: one full 4-lane block of the vectorized gate math plus a tail */
enum { L = 2, T = 4, B = 2, IN = 3, H = 5, NW = 2 * L };

/* ---- the double reference (runs g_T <= T steps) ---- */
static int g_T = T;
static double sig(double x) {
    return 1.0 / (1.0 + exp(-x));
}

/* x (T,B,In) -> y (T,B,2H); wd[k] holds w_ih|w_hh|b_ih|b_hh of direction k */
static void ref_layer(const double *x, int In, double *const wd[2], double *y) {
    for (int d = 0; d < 2; d++) {
        const double *wih = wd[d], *whh = wih + 4 * H * In, *bih = whh + 4 * H * H,
                     *bhh = bih + 4 * H;
        for (int b = 0; b < B; b++) {
            double h[H] = {0}, c[H] = {0};
            for (int k = 0; k < g_T; k++) {
                int t = d == 0 ? k : g_T - 1 - k;
                double z[4 * H], hn[H];
                for (int r = 0; r < 4 * H; r++) {
                    z[r] = bih[r] + bhh[r];
                    for (int i = 0; i < In; i++)
                        z[r] += wih[r * In + i] * x[(t * B + b) * In + i];
                    for (int j = 0; j < H; j++)
                        z[r] += whh[r * H + j] * h[j];
                }
                for (int j = 0; j < H; j++) {
                    double ig = sig(z[j]), fg = sig(z[H + j]), gg = tanh(z[2 * H + j]),
                           og = sig(z[3 * H + j]);
                    c[j] = fg * c[j] + ig * gg;
                    hn[j] = og * tanh(c[j]);
                }
                for (int j = 0; j < H; j++) {
                    h[j] = hn[j];
                    y[(t * B + b) * 2 * H + d * H + j] = hn[j];
                }
            }
        }
    }
}

static size_t dir_size(int l) {
    return (size_t)4 * H * (l ? 2 * H : IN) + 4 * H * H + 8 * H;
}

/* params: all directions' blocks concatenated; x (T,B,IN); returns sum(y*R) */
static double ref_loss(double *params, const double *x, const double *R, double *yout) {
    double buf[2][T * B * 2 * H];
    const double *in = x;
    int In = IN;
    double *p = params;
    for (int l = 0; l < L; l++) {
        double *wd[2] = {p, p + dir_size(l)};
        ref_layer(in, In, wd, buf[l % 2]);
        p += 2 * dir_size(l);
        in = buf[l % 2];
        In = 2 * H;
    }
    double loss = 0;
    for (int i = 0; i < g_T * B * 2 * H; i++)
        loss += in[i] * R[i];
    if (yout) memcpy(yout, in, sizeof(buf[0]));
    return loss;
}

/* Float views of the same flat parameter vector, in the same order. */
static void views(float *flat, LstmWeights *w) {
    for (int k = 0; k < NW; k++) {
        int In = k / 2 ? 2 * H : IN;
        w[k].w_ih = flat;
        w[k].w_hh = flat + 4 * H * In;
        w[k].b_ih = w[k].w_hh + 4 * H * H;
        w[k].b_hh = w[k].b_ih + 4 * H;
        flat += dir_size(k / 2);
    }
}

int main(void) {
    size_t np = 2 * (dir_size(0) + dir_size(1));
    LstmShape s = {L, T, B, IN, H};
    int nx = T * B * IN, ny = T * B * 2 * H;
    Rng rng;
    rng_seed(&rng, 7);
    double *pd = xcalloc(np, sizeof(double)), xd[T * B * IN], R[T * B * 2 * H], yd[T * B * 2 * H];
    float *pf = xalloc_floats(np), *dwf = xalloc_floats(np), xf[T * B * IN], Rf[T * B * 2 * H];
    for (size_t i = 0; i < np; i++)
        pf[i] = (float)(0.6 * (2 * rng_uniform(&rng) - 1)), pd[i] = pf[i];
    for (int i = 0; i < nx; i++)
        xf[i] = (float)(2 * rng_uniform(&rng) - 1), xd[i] = xf[i];
    for (int i = 0; i < ny; i++)
        Rf[i] = (float)(2 * rng_uniform(&rng) - 1), R[i] = Rf[i];

    LstmWeights w[NW], dw[NW];
    views(pf, w);
    views(dwf, dw);
    float *acts = xalloc_floats(bilstm_acts_floats(&s)),
          *ws = xalloc_floats(bilstm_workspace_floats(&s));
    float out[T * B * 2 * H], yref[T * B * 2 * H];

    /* forward */
    ref_loss(pd, xd, R, yd);
    for (int i = 0; i < ny; i++)
        yref[i] = (float)yd[i];
    bilstm_forward(&s, w, xf, out, acts);
    CHECK_CLOSE("forward vs double reference", out, yref, ny, 1e-5, 1e-5);

    /* the two directions' recurrences on two (or three) threads: the same bits */
    for (int th = 2; th <= 3; th++) {
        float out_t[T * B * 2 * H];
        pool_set_threads(th);
        bilstm_forward(&s, w, xf, out_t, acts);
        pool_set_threads(1);
        CHECK(!memcmp(out_t, out, sizeof out), "forward on %d threads bit-identical to 1", th);
    }
    bilstm_forward(&s, w, xf, out, acts); /* acts of one thread for the backward checks */

    /* finite differences of the double reference */
    const double h = 1e-5;
    float *gnum = xalloc_floats(np), dxnum[T * B * IN];
    for (size_t i = 0; i < np; i++) {
        double keep = pd[i];
        pd[i] = keep + h;
        double lp = ref_loss(pd, xd, R, NULL);
        pd[i] = keep - h;
        double lm = ref_loss(pd, xd, R, NULL);
        pd[i] = keep;
        gnum[i] = (float)((lp - lm) / (2 * h));
    }
    for (int i = 0; i < nx; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double lp = ref_loss(pd, xd, R, NULL);
        xd[i] = keep - h;
        double lm = ref_loss(pd, xd, R, NULL);
        xd[i] = keep;
        dxnum[i] = (float)((lp - lm) / (2 * h));
    }

    /* backward: every weight gradient and the input gradient */
    float dx[T * B * IN] = {0};
    bilstm_backward(&s, w, dw, xf, acts, Rf, dx, ws);
    const char *names[4] = {"w_ih", "w_hh", "b_ih", "b_hh"};
    for (int k = 0; k < NW; k++) {
        int In = k / 2 ? 2 * H : IN;
        size_t off = (size_t)(dw[k].w_ih - dwf);
        size_t sizes[4] = {(size_t)4 * H * In, (size_t)4 * H * H, 4 * H, 4 * H};
        for (int m = 0; m < 4; m++) {
            char what[64];
            snprintf(what, sizeof what, "d%s layer %d %s", names[m], k / 2, k % 2 ? "rev" : "fwd");
            CHECK_CLOSE(what, dwf + off, gnum + off, sizes[m], 2e-4, 2e-3);
            off += sizes[m];
        }
    }
    CHECK_CLOSE("dinp vs finite differences", dx, dxnum, nx, 2e-4, 2e-3);

    /* backward accumulates: a second call doubles every gradient */
    float *dw1 = xalloc_floats(np), dx2[T * B * IN];
    memcpy(dw1, dwf, np * sizeof(float));
    memcpy(dx2, dx, sizeof dx);
    bilstm_backward(&s, w, dw, xf, acts, Rf, dx2, ws);
    for (size_t i = 0; i < np; i++)
        dw1[i] *= 2;
    for (int i = 0; i < nx; i++)
        dx[i] *= 2;
    CHECK_CLOSE("second backward accumulates dw", dwf, dw1, np, 1e-6, 1e-6);
    CHECK_CLOSE("second backward accumulates dinp", dx2, dx, nx, 1e-6, 1e-6);

    /* the two directions' backward recurrences on two (or three) threads: the same bits */
    for (int th = 2; th <= 3; th++) {
        float *dwt = xalloc_floats(np), dxt[T * B * IN] = {0}, dx1t[T * B * IN] = {0};
        float *dw1t = xalloc_floats(np);
        LstmWeights wt[NW], w1t[NW];
        views(dwt, wt);
        views(dw1t, w1t);
        pool_set_threads(th);
        bilstm_backward(&s, w, wt, xf, acts, Rf, dxt, ws);
        pool_set_threads(1);
        bilstm_backward(&s, w, w1t, xf, acts, Rf, dx1t, ws);
        CHECK(!memcmp(dwt, dw1t, np * sizeof(float)) && !memcmp(dxt, dx1t, sizeof dxt),
              "backward on %d threads bit-identical to 1", th);
        free(dwt);
        free(dw1t);
    }

    /* frozen encoder: dw == NULL gives the same dinp */
    float dxf[T * B * IN] = {0};
    bilstm_backward(&s, w, NULL, xf, acts, Rf, dxf, ws);
    CHECK_CLOSE("dinp with dw == NULL", dxf, dxnum, nx, 2e-4, 2e-3);
    for (int i = 0; i < nx; i++)
        dx[i] *= 0.5f;
    CHECK_CLOSE("dw == NULL dinp equals full backward", dxf, dx, nx, 1e-6, 1e-6);

    /* T = 1: no recurrence at all */
    LstmShape s1 = {L, 1, B, IN, H};
    float out1[B * 2 * H];
    bilstm_forward(&s1, w, xf, out1, acts);
    g_T = 1;
    ref_loss(pd, xd, R, yd);
    for (int i = 0; i < B * 2 * H; i++)
        yref[i] = (float)yd[i];
    CHECK_CLOSE("T=1 forward vs double reference", out1, yref, B * 2 * H, 1e-5, 1e-5);
    float dx1[B * IN] = {0}, dx1ref[B * IN];
    bilstm_backward(&s1, w, NULL, xf, acts, Rf, dx1, ws);
    for (int i = 0; i < B * IN; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double lp = ref_loss(pd, xd, R, NULL);
        xd[i] = keep - h;
        double lm = ref_loss(pd, xd, R, NULL);
        xd[i] = keep;
        dx1ref[i] = (float)((lp - lm) / (2 * h));
    }
    CHECK_CLOSE("T=1 dinp vs finite differences", dx1, dx1ref, B * IN, 2e-4, 2e-3);

    /* large weights: saturated gates and big cells, the activations'
     * extreme ranges */
    g_T = T;
    for (size_t i = 0; i < np; i++)
        pf[i] *= 6, pd[i] = pf[i];
    ref_loss(pd, xd, R, yd);
    for (int i = 0; i < ny; i++)
        yref[i] = (float)yd[i];
    bilstm_forward(&s, w, xf, out, acts);
    CHECK_CLOSE("saturated forward vs double reference", out, yref, ny, 1e-5, 1e-5);

    free(pd), free(pf), free(dwf), free(acts), free(ws), free(gnum), free(dw1);
    TEST_END();
}
