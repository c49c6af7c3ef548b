/* test_ops.c - relu, add, mean_height, linear and log_softmax: forward
 * against their definitions, backward against central finite differences of
 * L = sum(out * R) for a fixed random R, accumulation (+=) and NULL skips;
 * and the denormal mode (denormals.h) in the caller and the pool's workers. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/denormals.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"
#include "test.h"

static Rng rng;

static float *randn(size_t n) {
    float *x = xalloc_floats(n);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_normal(&rng);
    return x;
}

/* The layer under test as a closure: forward fills out from the parameters. */
typedef struct Op {
    void (*forward)(struct Op *);
    float *out;
    const float *R;
    size_t n_out;
    int B, C, H, W, N, IC, OC, K;
    float *x, *w, *b;
} Op;

static double loss(Op *op) {
    op->forward(op);
    double L = 0;
    for (size_t i = 0; i < op->n_out; i++)
        L += (double)op->out[i] * op->R[i];
    return L;
}

static double loss_of(void *op) { return loss(op); }

/* Central differences of L wrt p (n), compared with the analytic grad. */
static void check_fd(const char *what, Op *op, float *p, size_t n, const float *grad, float eps) {
    float *num = xalloc_floats(n);
    fd_central(loss_of, op, p, n, eps, num);
    op->forward(op); /* leave out as at the unperturbed parameters */
    CHECK_CLOSE(what, grad, num, n, 2e-3, 1e-2);
    free(num);
}

static void relu_op(Op *op) {
    relu_forward(op->x, op->out, op->n_out);
}
static void mean_h_op(Op *op) {
    mean_height_forward(op->x, op->B, op->C, op->H, op->W, op->out);
}
static void linear_op(Op *op) {
    linear_forward(op->x, op->w, op->b, op->N, op->IC, op->OC, op->out);
}
static void lsm_op(Op *op) {
    log_softmax_forward(op->x, op->N, op->K, op->out);
}

static void test_relu_add(void) {
    printf("relu, add\n");
    const size_t n = 257;
    float *x = randn(n), *R = randn(n), *out = xalloc_floats(n), *dx = xalloc_floats(n),
          *want = xalloc_floats(n);
    for (size_t i = 0; i < n; i++) /* keep clear of the kink for finite differences */
        if (fabsf(x[i]) < 0.05f) x[i] = x[i] < 0 ? -0.05f : 0.05f;
    for (size_t i = 0; i < n; i++)
        want[i] = x[i] > 0 ? x[i] : 0;
    Op op = {.forward = relu_op, .out = out, .R = R, .n_out = n, .x = x};
    op.forward(&op);
    CHECK_CLOSE("relu forward", out, want, n, 0, 0);
    relu_backward(out, R, dx, n);
    check_fd("relu dinp vs finite differences", &op, x, n, dx, 1e-2f);
    for (size_t i = 0; i < n; i++)
        want[i] = 2 * dx[i];
    relu_backward(out, R, dx, n);
    CHECK_CLOSE("relu backward accumulates (x2)", dx, want, n, 0, 0);
    memcpy(dx, x, n * sizeof(float));
    relu_forward(dx, dx, n);
    CHECK_CLOSE("relu in place", dx, out, n, 0, 0);

    for (size_t i = 0; i < n; i++)
        want[i] = x[i] + R[i];
    add_forward(x, R, out, n);
    CHECK_CLOSE("add forward", out, want, n, 0, 0);
    free(x), free(R), free(out), free(dx), free(want);
}

static void test_mean_height(int B, int C, int H, int W) {
    printf("mean_height B%d C%d H%d W%d\n", B, C, H, W);
    size_t ni = (size_t)B * C * H * W, no = (size_t)W * B * C;
    float *x = randn(ni), *R = randn(no), *out = xalloc_floats(no), *want = xalloc_floats(no),
          *dx = xalloc_floats(ni), *dx2 = xalloc_floats(ni);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            for (int w = 0; w < W; w++) {
                double s = 0;
                for (int h = 0; h < H; h++)
                    s += x[(((size_t)b * C + c) * H + h) * W + w];
                want[((size_t)w * B + b) * C + c] = (float)(s / H);
            }
    Op op = {.forward = mean_h_op,
             .out = out,
             .R = R,
             .n_out = no,
             .B = B,
             .C = C,
             .H = H,
             .W = W,
             .x = x};
    op.forward(&op);
    CHECK_CLOSE("mean_height forward (W,B,C)", out, want, no, 1e-6, 1e-5);
    mean_height_backward(R, B, C, H, W, dx);
    check_fd("mean_height dinp vs finite differences", &op, x, ni, dx, 1e-2f);
    for (size_t i = 0; i < ni; i++)
        dx2[i] = 2 * dx[i];
    mean_height_backward(R, B, C, H, W, dx);
    CHECK_CLOSE("mean_height backward accumulates (x2)", dx, dx2, ni, 0, 1e-6);
    free(x), free(R), free(out), free(want), free(dx), free(dx2);
}

static void test_linear(int N, int IC, int OC, int with_bias) {
    printf("linear N%d IC%d OC%d bias %d\n", N, IC, OC, with_bias);
    size_t ni = (size_t)N * IC, nw = (size_t)OC * IC, no = (size_t)N * OC;
    float *x = randn(ni), *w = randn(nw), *b = with_bias ? randn(OC) : NULL, *R = randn(no),
          *out = xalloc_floats(no), *want = xalloc_floats(no), *dx = xalloc_floats(ni),
          *dw = xalloc_floats(nw), *db = xalloc_floats(OC), *dx2 = xalloc_floats(ni),
          *dw2 = xalloc_floats(nw), *db2 = xalloc_floats(OC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < IC; i++)
                s += (double)x[(size_t)n * IC + i] * w[(size_t)o * IC + i];
            want[(size_t)n * OC + o] = (float)s;
        }
    for (size_t i = 0; i < no; i++)
        out[i] = 1e6f; /* overwritten, not accumulated */
    Op op = {.forward = linear_op,
             .out = out,
             .R = R,
             .n_out = no,
             .N = N,
             .IC = IC,
             .OC = OC,
             .x = x,
             .w = w,
             .b = b};
    op.forward(&op);
    CHECK_CLOSE("linear forward", out, want, no, 1e-5, 1e-5);
    linear_backward(x, w, R, N, IC, OC, dx, dw, db);
    check_fd("linear dinp vs finite differences", &op, x, ni, dx, 1e-2f);
    check_fd("linear dw vs finite differences", &op, w, nw, dw, 1e-2f);
    if (b) check_fd("linear db vs finite differences", &op, b, (size_t)OC, db, 1e-2f);
    for (size_t i = 0; i < ni; i++)
        dx2[i] = 2 * dx[i];
    for (size_t i = 0; i < nw; i++)
        dw2[i] = 2 * dw[i];
    for (int i = 0; i < OC; i++)
        db2[i] = 2 * db[i];
    linear_backward(x, w, R, N, IC, OC, NULL, dw, NULL);
    linear_backward(x, w, R, N, IC, OC, dx, NULL, db);
    CHECK_CLOSE("linear dinp accumulates (x2), NULL skips", dx, dx2, ni, 1e-5, 1e-5);
    CHECK_CLOSE("linear dw accumulates (x2)", dw, dw2, nw, 1e-5, 1e-5);
    CHECK_CLOSE("linear db accumulates (x2)", db, db2, (size_t)OC, 1e-5, 1e-5);
    float *bufs[] = {x, w, b, R, out, want, dx, dw, db, dx2, dw2, db2};
    for (size_t i = 0; i < ARRAY_LEN(bufs); i++)
        free(bufs[i]);
}

static void test_log_softmax(int N, int K) {
    printf("log_softmax N%d K%d\n", N, K);
    size_t n = (size_t)N * K;
    float *x = randn(n), *R = randn(n), *out = xalloc_floats(n), *want = xalloc_floats(n),
          *dx = xalloc_floats(n), *dx2 = xalloc_floats(n);
    for (size_t i = 0; i < n; i++)
        x[i] *= 3.0f;
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int k = 0; k < K; k++)
            s += exp((double)x[(size_t)r * K + k]);
        for (int k = 0; k < K; k++)
            want[(size_t)r * K + k] = (float)(x[(size_t)r * K + k] - log(s));
    }
    Op op = {.forward = lsm_op, .out = out, .R = R, .n_out = n, .N = N, .K = K, .x = x};
    op.forward(&op);
    CHECK_CLOSE("log_softmax forward", out, want, n, 1e-5, 1e-5);
    log_softmax_backward(out, R, N, K, dx);
    check_fd("log_softmax dinp vs finite differences", &op, x, n, dx, 1e-2f);
    for (size_t i = 0; i < n; i++)
        dx2[i] = 2 * dx[i];
    log_softmax_backward(out, R, N, K, dx);
    CHECK_CLOSE("log_softmax backward accumulates (x2)", dx, dx2, n, 1e-6, 1e-6);

    /* stability: huge logits, in place; rows must still be log-probabilities */
    for (size_t i = 0; i < n; i++)
        x[i] = 1e4f * x[i];
    log_softmax_forward(x, N, K, x);
    int finite = 1;
    double worst = 0;
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int k = 0; k < K; k++) {
            finite &= isfinite(x[(size_t)r * K + k]) && x[(size_t)r * K + k] <= 0;
            s += exp((double)x[(size_t)r * K + k]);
        }
        worst = fmax(worst, fabs(s - 1));
    }
    CHECK(finite && worst < 1e-5, "log_softmax of huge logits: finite %d, |sum p - 1| %g", finite,
          worst);
    free(x), free(R), free(out), free(want), free(dx), free(dx2);
}

/* The element-wise passes split over the pool (above POOL_MIN_WORK): on 2
 * and 3 threads every output equals the definition, an odd n included. */
static void test_elementwise_threads(void) {
    const size_t n = 4 * POOL_MIN_WORK + 3;
    float *a = randn(n), *b = randn(n), *out = xalloc_floats(n), *g = xalloc_floats(n);
    for (int th = 2; th <= 3; th++) {
        pool_set_threads(th);
        int bad = 0;
        relu_forward(a, out, n);
        for (size_t i = 0; i < n; i++)
            bad += out[i] != (a[i] > 0 ? a[i] : 0.0f);
        add_relu_forward(a, b, out, n);
        for (size_t i = 0; i < n; i++)
            bad += out[i] != (a[i] + b[i] > 0 ? a[i] + b[i] : 0.0f);
        add_forward(a, b, out, n);
        for (size_t i = 0; i < n; i++)
            bad += out[i] != a[i] + b[i];
        memcpy(g, b, n * sizeof(float));
        relu_backward(a, b, g, n); /* g = b + b where a > 0 */
        for (size_t i = 0; i < n; i++)
            bad += g[i] != (a[i] > 0 ? b[i] + b[i] : b[i]);
        memcpy(g, b, n * sizeof(float));
        relu_mask(a, g, n);
        for (size_t i = 0; i < n; i++)
            bad += g[i] != (a[i] > 0 ? b[i] : 0.0f);
        pool_set_threads(1);
        CHECK(bad == 0, "relu, add, add_relu, relu_backward, relu_mask on %d threads: %d wrong", th,
              bad);
    }
    free(a), free(b), free(out), free(g);
}

/* part p of a pool job: a product below FLT_MIN (1e-30 * 1e-10 = 1e-40, a
 * denormal) and a denormal input times 2, in the mode the part runs in */
typedef struct {
    volatile float a, b, d;
    float out[2][4];
} DenormJob;
static void denorm_part(void *arg, int part, int parts) {
    (void)parts;
    DenormJob *j = arg;
    j->out[0][part] = j->a * j->b;
    j->out[1][part] = j->d * 2.0f;
}

/* OCRKD_DENORMALS' mechanism (denormals.h): flushing turns a denormal result
 * and a denormal input into 0, keeping leaves both, and the pool's workers
 * follow the caller's mode in every job, also when it changes between two. */
static void test_denormals(void) {
    if (!denormals_supported()) {
        CHECK(!denormals_flushing(), "no flushing where unsupported");
        return;
    }
    DenormJob j = {.a = 1e-30f, .b = 1e-10f, .d = 1e-40f};
    pool_set_threads(3);
    const int modes[3] = {1, 0, 1};
    for (int m = 0; m < 3; m++) {
        denormals_set(modes[m]);
        memset(j.out, 0xff, sizeof j.out);
        pool_run(3, denorm_part, &j);
        int bad = 0;
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < 2; k++) { /* by their bits: under DAZ a denormal compares == 0 */
                uint32_t bits;
                memcpy(&bits, &j.out[k][p], sizeof bits);
                bad += modes[m] ? bits != 0 : !(bits > 0 && bits < 0x00800000u);
            }
        CHECK(denormals_flushing() == modes[m] && bad == 0,
              "denormals %s on 3 threads (job %d): %d of 6 results wrong",
              modes[m] ? "flushed" : "kept", m, bad);
    }
    denormals_set(0);
    pool_set_threads(1);
}

/* mean_height (both ways), log_softmax (both ways) and fill_rows at sizes
 * the pool splits: bit for bit the same on 1 and 3 threads */
static void test_rows_threads(void) {
    enum { B = 4, C = 16, H = 8, W = 33, N = 400, K = 37 };
    const size_t nx = (size_t)B * C * H * W, nl = (size_t)N * K;
    float *x = randn(nx), *dy = randn((size_t)W * B * C), *l = randn(nl), *dl = randn(nl);
    float *got[2][5];
    const int threads[2] = {1, 3};
    for (int r = 0; r < 2; r++) {
        pool_set_threads(threads[r]);
        got[r][0] = xalloc_floats((size_t)W * B * C);
        mean_height_forward(x, B, C, H, W, got[r][0]);
        got[r][1] = xalloc_floats(nx);
        mean_height_backward(dy, B, C, H, W, got[r][1]);
        got[r][2] = xalloc_floats(nl);
        log_softmax_forward(l, N, K, got[r][2]);
        got[r][3] = xalloc_floats(nl);
        log_softmax_backward(got[r][2], dl, N, K, got[r][3]);
        got[r][4] = xalloc_floats(nl);
        fill_rows(got[r][4], N, l, K);
    }
    pool_set_threads(1);
    const size_t n[5] = {(size_t)W * B * C, nx, nl, nl, nl};
    const char *what[5] = {"mean_height forward", "mean_height backward", "log_softmax forward",
                           "log_softmax backward", "fill_rows"};
    for (int k = 0; k < 5; k++) {
        CHECK(!memcmp(got[0][k], got[1][k], n[k] * sizeof(float)),
              "%s bit-identical on 1 and 3 threads", what[k]);
        free(got[0][k]), free(got[1][k]);
    }
    int bad = 0;
    float *f = xalloc_floats(nl);
    pool_set_threads(3);
    fill_rows(f, N, l, K);
    pool_set_threads(1);
    for (int r = 0; r < N; r++)
        bad += memcmp(f + (size_t)r * K, l, K * sizeof(float)) != 0;
    CHECK(bad == 0, "fill_rows on 3 threads: %d of %d rows not the row", bad, N);
    /* zero_floats: large enough to split (POOL_MIN_WORK), the floats past n untouched */
    enum { NZ = 5 * POOL_MIN_WORK + 7, TAIL = 16 };
    float *z = xalloc_floats(NZ + TAIL);
    for (int i = 0; i < NZ + TAIL; i++)
        z[i] = 1.0f;
    pool_set_threads(3);
    zero_floats(z, NZ);
    pool_set_threads(1);
    int nonzero = 0, tail = 0;
    for (int i = 0; i < NZ; i++)
        nonzero += z[i] != 0.0f;
    for (int i = NZ; i < NZ + TAIL; i++)
        tail += z[i] != 1.0f;
    CHECK(nonzero == 0 && tail == 0, "zero_floats on 3 threads: %d of %d not zeroed, %d past n",
          nonzero, NZ, tail);
    free(x), free(dy), free(l), free(dl), free(f), free(z);
}

int main(void) {
    rng_seed(&rng, 123);
    test_rows_threads();
    test_denormals();
    test_relu_add();
    test_elementwise_threads();
    test_mean_height(1, 3, 2, 5);
    test_mean_height(3, 4, 3, 7);
    test_linear(5, 7, 3, 1);
    test_linear(4, 6, 5, 0);
    test_linear(1, 9, 4, 1);
    test_log_softmax(4, 7);
    test_log_softmax(3, 37);
    TEST_END();
}
