/* test_distance.c - each distance's value against a direct formula written
 * here in double (differently from distance.c: probabilities and norms
 * first), and its gradient w.r.t. es against central differences of that
 * formula; scale and accumulation; names; every distance bit for bit the
 * same on 1 and 3 threads (cosine and kl split their rows over the pool). */
#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

#include <string.h>

enum { N = 6, C = 5 };

static double direct(DistKind k, const double *t, const double *s, double tau) {
    double total = 0;
    for (int n = 0; n < N; n++) {
        const double *a = t + n * C, *b = s + n * C;
        if (k == DIST_L1 || k == DIST_L2) {
            for (int c = 0; c < C; c++)
                total += k == DIST_L1 ? fabs(b[c] - a[c]) : pow(b[c] - a[c], 2);
        } else if (k == DIST_COSINE) {
            double dot = 0, na = 0, nb = 0;
            for (int c = 0; c < C; c++)
                dot += a[c] * b[c], na += a[c] * a[c], nb += b[c] * b[c];
            total += 1 - dot / (fmax(sqrt(na), 1e-8) * fmax(sqrt(nb), 1e-8));
        } else {
            double pa[C], pb[C], za = 0, zb = 0, row = 0;
            for (int c = 0; c < C; c++)
                pa[c] = exp(a[c] / tau), za += pa[c];
            for (int c = 0; c < C; c++)
                pb[c] = exp(b[c] / tau), zb += pb[c];
            for (int c = 0; c < C; c++)
                row += pa[c] / za * log((pa[c] / za) / (pb[c] / zb));
            total += tau * tau * row;
        }
    }
    return k == DIST_L1 || k == DIST_L2 ? total / (N * C) : total / N;
}

static void check_kind(DistKind k, float tau, Rng *rng) {
    float et[N * C], es[N * C], des[N * C], want[N * C];
    double td[N * C], sd[N * C];
    for (int i = 0; i < N * C; i++) {
        et[i] = 2 * rng_normal(rng), es[i] = 2 * rng_normal(rng);
        td[i] = et[i], sd[i] = es[i];
        des[i] = 0;
    }
    const float scale = 0.75f;
    memcpy(want, des, sizeof des);
    double got = distance_forward_backward(k, et, es, N, C, tau, des, scale);
    double ref = direct(k, td, sd, tau);
    CHECK(fabs(got - ref) <= 1e-6 * (1 + fabs(ref)), "%s tau %g: value %.9g, direct %.9g",
          distance_name(k), tau, got, ref);
    const double h = 1e-6;
    for (int i = 0; i < N * C; i++) {
        double keep = sd[i];
        sd[i] = keep + h;
        double p = direct(k, td, sd, tau);
        sd[i] = keep - h;
        double m = direct(k, td, sd, tau);
        sd[i] = keep;
        want[i] += (float)(scale * (p - m) / (2 * h));
    }
    char what[64];
    snprintf(what, sizeof what, "d%s/des (tau %g) vs finite diff", distance_name(k), tau);
    CHECK_CLOSE(what, des, want, N * C, 1e-6, 1e-4);
    double again = distance_forward_backward(k, et, es, N, C, tau, NULL, scale);
    CHECK(again == got, "%s: same value with des NULL", distance_name(k));
    /* accumulation: a second call adds the same gradient again */
    memcpy(want, des, sizeof des);
    for (int i = 0; i < N * C; i++)
        want[i] *= 2;
    distance_forward_backward(k, et, es, N, C, tau, des, scale);
    snprintf(what, sizeof what, "%s second call accumulates", distance_name(k));
    CHECK_CLOSE(what, des, want, N * C, 1e-7, 1e-6);
}

/* Hand cases: identical inputs give 0 for every distance; cosine of
 * opposite rows is 2; a zero student row has cos 0 (torch's clamp). */
static void hand_cases(void) {
    float a[2 * 3] = {1, 2, 3, -1, 0, 2}, b[2 * 3] = {-1, -2, -3, 0, 0, 0};
    for (int k = 0; k < DIST_COUNT; k++) {
        double d = distance_forward_backward(k, a, a, 2, 3, 2.0f, NULL, 1.0f);
        CHECK(fabs(d) < 1e-12, "%s of identical inputs is %g", distance_name(k), d);
    }
    double cs = distance_forward_backward(DIST_COSINE, a, b, 1, 3, 1.0f, NULL, 1.0f);
    CHECK(fabs(cs - 2) < 1e-9, "cosine of opposite rows %g, want 2", cs);
    double cz = distance_forward_backward(DIST_COSINE, a, b, 2, 3, 1.0f, NULL, 1.0f);
    CHECK(fabs(cz - 1.5) < 1e-9, "cosine with a zero row %g, want (2 + 1)/2", cz);
    double l1 = distance_forward_backward(DIST_L1, a, b, 2, 3, 1.0f, NULL, 1.0f);
    CHECK(fabs(l1 - (2 + 4 + 6 + 1 + 0 + 2) / 6.0) < 1e-9, "l1 hand value %g", l1);
}

static void check_threads(Rng *rng) {
    enum { NR = 300, CR = 40 };
    const size_t n = (size_t)NR * CR;
    float *t = xalloc_floats(n), *s = xalloc_floats(n);
    float *g[2] = {xalloc_floats(n), xalloc_floats(n)};
    for (size_t i = 0; i < n; i++)
        t[i] = rng_normal(rng), s[i] = rng_normal(rng);
    for (int k = 0; k < DIST_COUNT; k++) {
        double v[2];
        const int threads[2] = {1, 3};
        for (int r = 0; r < 2; r++) {
            pool_set_threads(threads[r]);
            memset(g[r], 0, n * sizeof(float));
            v[r] = distance_forward_backward(k, t, s, NR, CR, 2.0f, g[r], 0.7f);
        }
        pool_set_threads(1);
        CHECK(v[0] == v[1] && !memcmp(g[0], g[1], n * sizeof(float)),
              "%s on 1 and 3 threads: %.17g / %.17g, gradient %s", distance_name(k), v[0], v[1],
              memcmp(g[0], g[1], n * sizeof(float)) ? "differs" : "equal");
    }
    free(t), free(s), free(g[0]), free(g[1]);
}

int main(void) {
    Rng rng;
    rng_seed(&rng, 11);
    for (int k = 0; k < DIST_COUNT; k++)
        check_kind(k, 1.0f, &rng);
    check_kind(DIST_KL, 2.0f, &rng);
    check_kind(DIST_KL, 0.5f, &rng);
    hand_cases();
    check_threads(&rng);
    for (int k = 0; k < DIST_COUNT; k++)
        CHECK(distance_from_name(distance_name(k)) == k, "name round trip %d", k);
    CHECK(distance_from_name("L2") == -1 && distance_from_name("mse") == -1,
          "unknown names give -1");
    TEST_END();
}
