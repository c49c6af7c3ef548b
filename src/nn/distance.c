/* distance.c - distances between teacher and student encoder outputs.
 *
 * For: the distillation terms of SPEC "The method": l1, l2, cosine and kl
 * between et (teacher) and es (student), both (N,C) with N = T*B rows, and
 * their gradient w.r.t. es only (the teacher is frozen). Sums run in double.
 * Threads: cosine and kl split their rows over the pool (below).
 * Not for: weighting several distances (the caller sums w_d * D_d), the CTC
 * term (ctc.c), allocation.
 */
#include "ocrkd/nn.h"

#include <math.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/pool.h"

static const char *const names[DIST_COUNT] = {"l1", "l2", "cosine", "kl"};

const char *distance_name(DistKind k) {
    return (k >= 0 && k < DIST_COUNT) ? names[k] : "?";
}

int distance_from_name(const char *name) {
    for (int k = 0; k < DIST_COUNT; k++)
        if (name && strcmp(name, names[k]) == 0) return k;
    return -1;
}

/* mean |es-et| over n; d/des = sign(es-et)/n (0 where equal, as torch) */
static double l1(const float *et, const float *es, size_t n, float *des, float scale) {
    double sum = 0, g = (double)scale / n;
    for (size_t i = 0; i < n; i++) {
        float d = es[i] - et[i];
        sum += fabsf(d);
        if (des) des[i] += (float)(g * ((d > 0) - (d < 0)));
    }
    return sum / n;
}

/* mean (es-et)^2 over n; d/des = 2(es-et)/n */
static double l2(const float *et, const float *es, size_t n, float *des, float scale) {
    double sum = 0, g = 2.0 * scale / n;
    for (size_t i = 0; i < n; i++) {
        double d = (double)es[i] - et[i];
        sum += d * d;
        if (des) des[i] += (float)(g * d);
    }
    return sum / n;
}

/* The row-wise distances (cosine, kl) compute each row whole on one thread
 * of the pool (pool_for) into rows[n] and its gradient row; the mean is then
 * summed in row order, as the serial loop did: the same bits for any thread
 * count. rows: grown, kept (one caller thread, as the pool). */
typedef struct {
    const float *et, *es;
    float *des;
    int C;
    double g, tau;
    double *rows;
} RowDist;

static double *row_buffer(size_t n) {
    static float *buf; /* n doubles in 2 n floats of grow_floats' aligned memory */
    static size_t cap;
    return (double *)(void *)grow_floats(&buf, &cap, 2 * n);
}

static double rows_mean(const double *rows, int N) {
    double sum = 0;
    for (int n = 0; n < N; n++)
        sum += rows[n];
    return sum / N;
}

/* rows[n] = 1 - cos(t, s), each norm clamped at 1e-8 as torch's
 * F.cosine_similarity: cos = (t/|t|c).(s/|s|c); torch's backward treats the
 * clamped norm as the norm, giving d cos/ds = t/(|t|c |s|c) - cos s/|s|c^2. */
static void cosine_rows(void *ctx, size_t lo, size_t hi) {
    const RowDist *p = ctx;
    const double eps = 1e-8;
    const int C = p->C;
    for (size_t n = lo; n < hi; n++) {
        const float *t = p->et + n * C, *s = p->es + n * C;
        double ts = 0, tt = 0, ss = 0;
        for (int c = 0; c < C; c++)
            ts += (double)t[c] * s[c], tt += (double)t[c] * t[c], ss += (double)s[c] * s[c];
        double nt = fmax(sqrt(tt), eps), ns = fmax(sqrt(ss), eps), cos = ts / (nt * ns);
        p->rows[n] = 1.0 - cos;
        if (!p->des) continue;
        float *d = p->des + n * C;
        for (int c = 0; c < C; c++)
            d[c] -= (float)(p->g * (t[c] / (nt * ns) - cos * s[c] / (ns * ns)));
    }
}

/* mean over rows of 1 - cos(t, s) */
static double cosine(const float *et, const float *es, int N, int C, float *des, float scale) {
    RowDist p = {et, es, des, C, (double)scale / N, 0, row_buffer((size_t)N)};
    pool_for((size_t)N, 8 * (size_t)C, cosine_rows, &p);
    return rows_mean(p.rows, N);
}

/* rows[n] = tau^2 KL(p_t || p_s), p = softmax(x/tau); d/des = tau (p_s -
 * p_t) / N. Each row's two log-normalizers are found first, so the
 * log-probabilities need no scratch buffer. */
static void kl_rows(void *ctx, size_t lo, size_t hi) {
    const RowDist *p = ctx;
    const int C = p->C;
    const double tau = p->tau;
    for (size_t n = lo; n < hi; n++) {
        const float *t = p->et + n * C, *s = p->es + n * C;
        double mt = -INFINITY, ms = -INFINITY, zt = 0, zs = 0;
        for (int c = 0; c < C; c++)
            mt = fmax(mt, t[c] / tau), ms = fmax(ms, s[c] / tau);
        for (int c = 0; c < C; c++)
            zt += exp(t[c] / tau - mt), zs += exp(s[c] / tau - ms);
        double lzt = mt + log(zt), lzs = ms + log(zs), row = 0;
        for (int c = 0; c < C; c++) {
            double lpt = t[c] / tau - lzt, lps = s[c] / tau - lzs, pt = exp(lpt);
            row += pt * (lpt - lps);
            if (p->des) p->des[n * C + c] += (float)(p->g * (exp(lps) - pt));
        }
        p->rows[n] = tau * tau * row;
    }
}

/* mean over rows of tau^2 KL(p_t || p_s) */
static double kl(const float *et, const float *es, int N, int C, double tau, float *des,
                 float scale) {
    RowDist p = {et, es, des, C, (double)scale * tau / N, tau, row_buffer((size_t)N)};
    pool_for((size_t)N, 40 * (size_t)C, kl_rows, &p);
    return rows_mean(p.rows, N);
}

double distance_forward_backward(DistKind k, const float *et, const float *es, int N, int C,
                                 float temperature, float *des, float scale) {
    size_t n = (size_t)N * C;
    switch (k) {
    case DIST_L1:
        return l1(et, es, n, des, scale);
    case DIST_L2:
        return l2(et, es, n, des, scale);
    case DIST_COSINE:
        return cosine(et, es, N, C, des, scale);
    case DIST_KL:
        return kl(et, es, N, C, temperature, des, scale);
    default:
        return NAN;
    }
}
