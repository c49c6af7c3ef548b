/* test_batchnorm.c - BatchNorm2d training/inference forward against the
 * PyTorch formulas computed here in double (biased variance to normalize,
 * unbiased variance into running_var, momentum update), and the training
 * backward (dinp, dgamma, dbeta) against central finite differences of
 * L = sum(out * R). Also: in-place forward, accumulation, NULL skips, and a
 * large common offset (where a one-pass variance would cancel). */
#include <math.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

typedef struct {
    int B, C, HW;
    float *x, *gamma, *beta, *rm, *rv, *out, *smean, *sinv;
    const float *R;
} Bn;

static size_t numel(const Bn *b) {
    return (size_t)b->B * b->C * b->HW;
}

static void fill(Rng *r, float *x, size_t n, float mean, float sd) {
    for (size_t i = 0; i < n; i++)
        x[i] = mean + sd * rng_normal(r);
}

/* L = sum(out * R) of a training forward; running stats go to scratch copies. */
static double loss(Bn *b) {
    float rm[64], rv[64];
    memcpy(rm, b->rm, (size_t)b->C * sizeof(float));
    memcpy(rv, b->rv, (size_t)b->C * sizeof(float));
    batchnorm_forward_train(b->x, b->gamma, b->beta, rm, rv, 0.1f, b->B, b->C, b->HW, b->out,
                            b->smean, b->sinv);
    double L = 0;
    for (size_t i = 0; i < numel(b); i++)
        L += (double)b->out[i] * b->R[i];
    return L;
}

static double loss_of(void *b) { return loss(b); }
static void fd_grad(Bn *b, float *p, size_t n, float eps, float *num) {
    fd_central(loss_of, b, p, n, eps, num);
}

/* Double-precision reference of the training forward and running update. */
static void reference_train(const Bn *b, float momentum, float *out, float *rm, float *rv) {
    const int n = b->B * b->HW;
    for (int c = 0; c < b->C; c++) {
        double s = 0, sq = 0;
        for (int i = 0; i < b->B; i++)
            for (int j = 0; j < b->HW; j++)
                s += b->x[((size_t)i * b->C + c) * b->HW + j];
        double m = s / n;
        for (int i = 0; i < b->B; i++)
            for (int j = 0; j < b->HW; j++) {
                double d = b->x[((size_t)i * b->C + c) * b->HW + j] - m;
                sq += d * d;
            }
        double var = sq / n, inv = 1.0 / sqrt(var + 1e-5);
        for (int i = 0; i < b->B; i++)
            for (int j = 0; j < b->HW; j++) {
                size_t k = ((size_t)i * b->C + c) * b->HW + j;
                out[k] = (float)((b->x[k] - m) * inv * b->gamma[c] + b->beta[c]);
            }
        rm[c] = (float)((1 - momentum) * b->rm[c] + momentum * m);
        rv[c] = (float)((1 - momentum) * b->rv[c] + momentum * sq / (n - 1));
    }
}

static void check_case(Rng *r, int B, int C, int HW, float offset) {
    printf("B%d C%d HW%d offset %g\n", B, C, HW, offset);
    size_t n = (size_t)B * C * HW;
    float gamma[64], beta[64], rm[64], rv[64], smean[64], sinv[64];
    float rm_ref[64], rv_ref[64], dg[64], db[64], num_g[64], num_b[64];
    float *x = xalloc_floats(n), *out = xalloc_floats(n), *ref = xalloc_floats(n),
          *R = xalloc_floats(n), *dx = xalloc_floats(n), *num = xalloc_floats(n),
          *dx1 = xalloc_floats(n);
    fill(r, x, n, offset, 1.5f);
    fill(r, gamma, C, 1.0f, 0.5f);
    fill(r, beta, C, 0.0f, 0.5f);
    fill(r, rm, C, 0.0f, 0.3f);
    for (int c = 0; c < C; c++)
        rv[c] = 0.5f + (float)rng_uniform(r);
    fill(r, R, n, 0.0f, 1.0f);
    Bn b = {B, C, HW, x, gamma, beta, rm, rv, out, smean, sinv, R};

    /* forward + running stats vs the formulas */
    reference_train(&b, 0.1f, ref, rm_ref, rv_ref);
    memcpy(dx, x, n * sizeof(float)); /* dx doubles as an in-place buffer here */
    batchnorm_forward_train(dx, gamma, beta, rm, rv, 0.1f, B, C, HW, dx, smean, sinv);
    CHECK_CLOSE("train forward (in place) vs formula", dx, ref, n, 1e-4, 1e-4);
    CHECK_CLOSE("running_mean update", rm, rm_ref, (size_t)C, 1e-5, 1e-5);
    CHECK_CLOSE("running_var update (unbiased)", rv, rv_ref, (size_t)C, 1e-5, 1e-5);

    /* inference forward: with the running stats, vs the formula */
    for (size_t k = 0; k < n; k++) {
        int c = (int)(k / HW % C);
        ref[k] = (float)((x[k] - rm[c]) / sqrt(rv[c] + 1e-5) * gamma[c] + beta[c]);
    }
    batchnorm_forward_infer(x, gamma, beta, rm, rv, B, C, HW, out);
    CHECK_CLOSE("infer forward vs formula", out, ref, n, 1e-4, 1e-4);

    if (offset == 0.0f) {
        /* backward vs finite differences */
        loss(&b);
        memset(dx, 0, n * sizeof(float));
        memset(dg, 0, sizeof dg);
        memset(db, 0, sizeof db);
        batchnorm_backward_train(x, R, gamma, smean, sinv, B, C, HW, dx, dg, db);
        fd_grad(&b, x, n, 1e-2f, num);
        fd_grad(&b, gamma, (size_t)C, 1e-2f, num_g);
        fd_grad(&b, beta, (size_t)C, 1e-2f, num_b);
        CHECK_CLOSE("dinp vs finite differences", dx, num, n, 2e-3, 2e-2);
        CHECK_CLOSE("dgamma vs finite differences", dg, num_g, (size_t)C, 2e-3, 1e-2);
        CHECK_CLOSE("dbeta vs finite differences", db, num_b, (size_t)C, 2e-3, 1e-2);

        /* accumulation and NULL skips */
        memcpy(dx1, dx, n * sizeof(float));
        batchnorm_backward_train(x, R, gamma, smean, sinv, B, C, HW, dx, NULL, NULL);
        for (size_t k = 0; k < n; k++)
            dx1[k] *= 2.0f;
        CHECK_CLOSE("dinp accumulates (x2), NULL dgamma/dbeta", dx, dx1, n, 1e-5, 1e-5);
        float dg2[64], db2[64];
        memcpy(dg2, dg, sizeof dg);
        memcpy(db2, db, sizeof db);
        batchnorm_backward_train(x, R, gamma, smean, sinv, B, C, HW, NULL, dg, db);
        for (int c = 0; c < C; c++)
            dg2[c] *= 2.0f, db2[c] *= 2.0f;
        CHECK_CLOSE("dgamma accumulates (x2), NULL dinp", dg, dg2, (size_t)C, 1e-5, 1e-5);
        CHECK_CLOSE("dbeta accumulates (x2)", db, db2, (size_t)C, 1e-5, 1e-5);
    }
    float *bufs[] = {x, out, ref, R, dx, num, dx1};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

/* pool.h threads: the training forward (with and without ReLU) and both
 * backwards split over channels give the same bits with 1 and 3 threads. */
static void check_threads(Rng *r, int B, int C, int HW) {
    const size_t n = (size_t)B * C * HW;
    float *x = xalloc_floats(n), *dy = xalloc_floats(n), *g = xalloc_floats((size_t)C),
          *be = xalloc_floats((size_t)C);
    fill(r, x, n, 0.3f, 1.5f);
    fill(r, dy, n, 0.0f, 1.0f);
    fill(r, g, (size_t)C, 1.0f, 0.2f);
    fill(r, be, (size_t)C, 0.0f, 0.2f);
    float *res[2][8];
    const int threads[2] = {1, 3};
    for (int t = 0; t < 2; t++) {
        pool_set_threads(threads[t]);
        float *y = xalloc_floats(n), *yr = xalloc_floats(n), *st = xalloc_floats(4 * (size_t)C),
              *di = xalloc_floats(n), *dir = xalloc_floats(n), *dg = xalloc_floats(2 * (size_t)C),
              *inf = xalloc_floats(n);
        for (int c = 0; c < C; c++) st[2 * C + c] = 0.1f * (float)c, st[3 * C + c] = 1.0f;
        batchnorm_forward_train(x, g, be, st + 2 * C, st + 3 * C, 0.1f, B, C, HW, y, st, st + C);
        batchnorm_relu_forward_train(x, g, be, st + 2 * C, st + 3 * C, 0.1f, B, C, HW, yr, st,
                                     st + C);
        batchnorm_backward_train(x, dy, g, st, st + C, B, C, HW, di, dg, dg + C);
        batchnorm_relu_backward_train(x, yr, dy, g, st, st + C, B, C, HW, dir, dg, dg + C);
        batchnorm_relu_forward_infer(x, g, be, st + 2 * C, st + 3 * C, B, C, HW, inf);
        res[t][0] = y, res[t][1] = yr, res[t][2] = st, res[t][3] = di, res[t][4] = dir;
        res[t][5] = dg, res[t][6] = inf, res[t][7] = NULL;
    }
    pool_set_threads(1);
    const size_t len[7] = {n, n, 4 * (size_t)C, n, n, 2 * (size_t)C, n};
    const char *what[7] = {"forward", "forward+relu", "saved and running statistics", "dinp",
                           "dinp through relu", "dgamma, dbeta", "inference forward+relu"};
    for (int k = 0; k < 7; k++) {
        CHECK(!memcmp(res[0][k], res[1][k], len[k] * sizeof(float)),
              "B%d C%d HW%d: %s bit-identical with 1 and 3 threads", B, C, HW, what[k]);
        free(res[0][k]);
        free(res[1][k]);
    }
    free(x);
    free(dy);
    free(g);
    free(be);
}

int main(void) {
    Rng r;
    rng_seed(&r, 7);
    check_case(&r, 3, 2, 5, 0.0f);
    check_case(&r, 1, 3, 7, 0.0f);
    check_case(&r, 4, 2, 1, 0.0f);
    check_case(&r, 2, 3, 37, 0.0f); /* HW not a multiple of the 8 lanes */
    check_case(&r, 8, 4, 128, 0.0f);
    check_case(&r, 4, 3, 257, 1000.0f); /* offset: cancellation check */
    check_threads(&r, 8, 16, 256);
    check_threads(&r, 4, 7, 129);
    TEST_END();
}
