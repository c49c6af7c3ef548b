/* test_ctc.c - ctc_loss against a brute-force sum over every alignment
 * (K^T paths for tiny T, K), its gradient against central differences of
 * that brute force, the edge cases (repeats, empty label, label of length
 * T, infeasible label), and ctc_greedy_decode on hand-made sequences. */
#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

#include <string.h>

enum { T = 5, K = 3, B = 7, LMAX = 5 };

/* The cases: repeats, blank-separated repeat, empty, length T, infeasible
 * (needs 6 steps), repeat needing T-1 steps, infeasible length > T. */
static const int lens[B] = {2, 2, 0, 5, 4, 3, 0};
static const int labels[] = {1, 2,      /**/ 1, 1, /**/ /**/ 1, 2,      1, 2,
                             1, /**/ 1, 1,      2, 2,           /**/ 2, 2, 1};
static const int feasible[B] = {1, 1, 1, 1, 0, 1, 1};

/* logits (T,B,K) double -> logp (T,B,K) */
static void log_softmax_d(const double *x, double *lp) {
    for (int r = 0; r < T * B; r++) {
        double m = x[r * K];
        for (int k = 1; k < K; k++)
            m = fmax(m, x[r * K + k]);
        double z = 0;
        for (int k = 0; k < K; k++)
            z += exp(x[r * K + k] - m);
        for (int k = 0; k < K; k++)
            lp[r * K + k] = x[r * K + k] - m - log(z);
    }
}

/* collapse repeats, drop blanks */
static int collapse(const int *path, int *out) {
    int n = 0;
    for (int t = 0; t < T; t++)
        if (path[t] != 0 && (t == 0 || path[t] != path[t - 1])) out[n++] = path[t];
    return n;
}

/* -log of the summed probability of every path that collapses to lab */
static double brute_nll(const double *lp, int b, const int *lab, int L) {
    int npaths = 1;
    for (int t = 0; t < T; t++)
        npaths *= K;
    double p = 0;
    for (int id = 0; id < npaths; id++) {
        int path[T], out[T], v = id;
        double lpath = 0;
        for (int t = 0; t < T; t++, v /= K)
            path[t] = v % K, lpath += lp[(t * B + b) * K + path[t]];
        int n = collapse(path, out);
        if (n == L && (L == 0 || memcmp(out, lab, L * sizeof(int)) == 0)) p += exp(lpath);
    }
    return -log(p);
}

/* mean loss as torch 'mean' with zero_infinity, by brute force */
static double brute_mean(const double *logits, double *nll) {
    double lp[T * B * K], mean = 0;
    log_softmax_d(logits, lp);
    const int *lab = labels;
    for (int b = 0; b < B; b++) {
        double l = brute_nll(lp, b, lab, lens[b]);
        if (nll) nll[b] = l;
        if (isfinite(l)) mean += l / MAX(lens[b], 1) / B;
        lab += lens[b];
    }
    return mean;
}

static void test_loss_and_grad(void) {
    Rng rng;
    rng_seed(&rng, 3);
    double x[T * B * K], lpd[T * B * K], nll_ref[B], nll[B];
    float lp[T * B * K], dl[T * B * K], dl0[T * B * K], want[T * B * K];
    for (int i = 0; i < T * B * K; i++)
        x[i] = 2 * rng_normal(&rng);
    log_softmax_d(x, lpd);
    for (int i = 0; i < T * B * K; i++)
        lp[i] = (float)lpd[i];
    double *ws = xcalloc(ctc_workspace_doubles(T, B, LMAX), sizeof(double));
    double mean_ref = brute_mean(x, nll_ref);

    for (int i = 0; i < T * B * K; i++)
        dl0[i] = dl[i] = (float)rng_normal(&rng);
    double mean = ctc_loss(lp, T, B, K, labels, lens, nll, dl, 2.0f, ws);
    CHECK(fabs(mean - mean_ref) < 1e-5, "mean loss %.9g, brute force %.9g", mean, mean_ref);
    for (int b = 0; b < B; b++) {
        if (feasible[b])
            CHECK(fabs(nll[b] - nll_ref[b]) < 1e-5 * (1 + fabs(nll_ref[b])),
                  "sample %d: nll %.9g, brute force %.9g", b, nll[b], nll_ref[b]);
        else
            CHECK(isinf(nll[b]) && nll[b] > 0 && isinf(nll_ref[b]),
                  "sample %d infeasible: nll %g (brute force %g)", b, nll[b], nll_ref[b]);
    }

    /* gradient w.r.t. the logits, scaled by 2 and accumulated onto dl0 */
    const double h = 1e-5;
    for (int i = 0; i < T * B * K; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp_ = brute_mean(x, NULL);
        x[i] = keep - h;
        double lm = brute_mean(x, NULL);
        x[i] = keep;
        want[i] = dl0[i] + (float)(2 * (lp_ - lm) / (2 * h));
    }
    CHECK_CLOSE("dlogits (scale 2, accumulated) vs finite diff", dl, want, T * B * K, 1e-5, 1e-4);
    int untouched = 1;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++)
            untouched &= dl[(t * B + 4) * K + k] == dl0[(t * B + 4) * K + k];
    CHECK(untouched, "infeasible sample leaves its gradient untouched");

    /* losses and dlogits may be NULL */
    double m2 = ctc_loss(lp, T, B, K, labels, lens, NULL, NULL, 1.0f, ws);
    CHECK(m2 == mean, "same loss without losses/dlogits (%.9g vs %.9g)", m2, mean);
    free(ws);
}

/* Longer sequences: softmax - posterior sums to 0 over classes at every step
 * and each entry lies in [-1, 1] (a bad beta breaks both). */
static void test_posterior_sanity(void) {
    enum { T2 = 32, B2 = 3, K2 = 11 };
    int lens2[B2] = {10, 1, 16}, lab2[27];
    Rng rng;
    rng_seed(&rng, 9);
    for (int i = 0; i < 27; i++)
        lab2[i] = 1 + (int)rng_below(&rng, 3); /* many repeats */
    double *x = xcalloc(T2 * B2 * K2, sizeof(double));
    float *lp = xalloc_floats(T2 * B2 * K2), *dl = xalloc_floats(T2 * B2 * K2);
    for (int r = 0; r < T2 * B2; r++) {
        double z = 0;
        for (int k = 0; k < K2; k++)
            x[r * K2 + k] = rng_normal(&rng), z += exp(x[r * K2 + k]);
        for (int k = 0; k < K2; k++)
            lp[r * K2 + k] = (float)(x[r * K2 + k] - log(z));
    }
    double *ws = xcalloc(ctc_workspace_doubles(T2, B2, 16), sizeof(double));
    double losses[B2];
    ctc_loss(lp, T2, B2, K2, lab2, lens2, losses, dl, 1.0f, ws);
    double worst_sum = 0, worst_abs = 0;
    for (int t = 0; t < T2; t++)
        for (int b = 0; b < B2; b++) {
            double coef = 1.0 / (B2 * lens2[b]), sum = 0;
            for (int k = 0; k < K2; k++) {
                double g = dl[(t * B2 + b) * K2 + k] / coef;
                sum += g;
                worst_abs = fmax(worst_abs, fabs(g));
            }
            worst_sum = fmax(worst_sum, fabs(sum));
        }
    CHECK(worst_sum < 1e-4, "gradient rows sum to 0 (worst %g)", worst_sum);
    CHECK(worst_abs <= 1 + 1e-5, "gradient entries in [-1, 1] (worst %g)", worst_abs);
    CHECK(isfinite(losses[0]) && isfinite(losses[1]) && isfinite(losses[2]),
          "losses finite: %g %g %g", losses[0], losses[1], losses[2]);
    free(x), free(lp), free(dl), free(ws);
}

/* Greedy decoding: logp whose argmax at step t is best[t] for sample 1 of 2
 * (sample 0 is all class 2, to check b is honoured). */
static int decode(const int *best, int n, int *out) {
    enum { KD = 4 };
    float lp[2 * 16 * KD];
    for (int t = 0; t < n; t++)
        for (int b = 0; b < 2; b++)
            for (int k = 0; k < KD; k++)
                lp[(t * 2 + b) * KD + k] = k == (b ? best[t] : 2) ? -0.1f : -3.0f - k;
    return ctc_greedy_decode(lp, n, 2, KD, 1, out);
}

static void test_greedy(void) {
    struct {
        int n, best[8], nw, want[8];
    } cases[] = {
        {8, {0, 1, 1, 0, 1, 3, 3, 0}, 3, {1, 1, 3}},
        {3, {1, 1, 1}, 1, {1}},
        {4, {0, 0, 0, 0}, 0, {0}},
        {3, {2, 0, 2}, 2, {2, 2}},
        {5, {3, 2, 1, 2, 3}, 5, {3, 2, 1, 2, 3}},
        {4, {0, 3, 3, 3}, 1, {3}},
    };
    for (size_t c = 0; c < ARRAY_LEN(cases); c++) {
        int out[16];
        int n = decode(cases[c].best, cases[c].n, out);
        int same = n == cases[c].nw && memcmp(out, cases[c].want, n * sizeof(int)) == 0;
        CHECK(same, "greedy case %zu: got %d symbols", c, n);
    }
}

/* A batch large enough for the pool (12 samples of T = 24, labels of 0..7
 * with repeats, one infeasible and one unlabeled): loss, per-sample nll and
 * gradient bit for bit the same on 1 and 3 threads. */
static void test_threads(void) {
    enum { T2 = 24, B2 = 12, K2 = 6, L2 = 30 };
    Rng rng;
    rng_seed(&rng, 11);
    static float lp[T2 * B2 * K2], dl[2][T2 * B2 * K2];
    int lens2[B2], labs[B2 * L2], nl = 0;
    unsigned char mask[B2];
    for (int b = 0; b < B2; b++) {
        /* sample 5: 20 repeated letters, infeasible in 24 steps */
        lens2[b] = b == 5 ? 20 : (int)(rng_uniform(&rng) * 8);
        for (int i = 0; i < lens2[b]; i++)
            labs[nl++] = b == 5 ? 1 : 1 + (int)(rng_uniform(&rng) * (K2 - 1));
        mask[b] = b != 7;
    }
    for (int t = 0; t < T2 * B2; t++) {
        double x[K2], m = -1e30, z = 0;
        for (int k = 0; k < K2; k++)
            x[k] = 2 * rng_normal(&rng), m = x[k] > m ? x[k] : m;
        for (int k = 0; k < K2; k++)
            z += exp(x[k] - m);
        for (int k = 0; k < K2; k++)
            lp[t * K2 + k] = (float)(x[k] - m - log(z));
    }
    double *ws = xcalloc(ctc_workspace_doubles(T2, B2, L2), sizeof(double));
    double mean[2], nll[2][B2];
    const int threads[2] = {1, 3};
    for (int r = 0; r < 2; r++) {
        pool_set_threads(threads[r]);
        memset(dl[r], 0, sizeof dl[r]);
        mean[r] = ctc_loss_labeled(lp, T2, B2, K2, labs, lens2, mask, nll[r], dl[r], 0.5f, ws);
    }
    pool_set_threads(1);
    CHECK(isfinite(mean[0]) && isinf(nll[0][5]) && nll[0][7] == 0 && mean[0] == mean[1] &&
              !memcmp(nll[0], nll[1], sizeof nll[0]) && !memcmp(dl[0], dl[1], sizeof dl[0]),
          "ctc on 1 and 3 threads: mean %.17g / %.17g, nll and gradient %s", mean[0], mean[1],
          memcmp(dl[0], dl[1], sizeof dl[0]) ? "differ" : "equal");
    free(ws);
}

int main(void) {
    test_threads();
    test_loss_and_grad();
    test_posterior_sanity();
    test_greedy();
    TEST_END();
}
