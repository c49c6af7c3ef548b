/* test.h - the tiny test harness every tests/test_*.c uses.
 *
 * CHECK counts one assertion; CHECK_CLOSE compares two float arrays and
 * prints the worst difference, so a passing run still shows how close it
 * was. Each test program ends with TEST_END(), which prints
 * "N passed, N failed" and returns non-zero on any failure. */
#ifndef OCRKD_TEST_H
#define OCRKD_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ocrkd/blas_core.h"

static int t_passed, t_failed;

/* Tests run the OpenBLAS kernels that ocrkd itself runs: where `ocrkd`
 * replaces OpenBLAS's fallback kernels (src/util/blas_core.c), so does every
 * test program, before main(). A set OPENBLAS_CORETYPE is kept, as there. */
__attribute__((constructor)) static void test_blas_kernels(void) { blas_core_fix_self(); }

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            t_passed++;                                                                            \
        } else {                                                                                   \
            t_failed++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* |got - want| <= atol + rtol * |want| elementwise; prints the worst case. */
static inline int check_close_impl(const char *file, int line, const char *what, const float *got,
                                   const float *want, size_t n, double atol, double rtol) {
    double worst = 0, worst_ratio = 0;
    size_t at = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double tol = atol + rtol * fabs((double)want[i]);
        if (!(d <= tol)) bad = 1; /* NaN fails */
        double r = d / tol;
        if (!(r <= worst_ratio)) {
            worst_ratio = r;
            worst = d;
            at = i;
        }
    }
    if (bad) {
        t_failed++;
        printf("FAIL %s:%d: %s: max abs diff %.3g at [%zu] (got %.8g, want %.8g; atol %.1g rtol "
               "%.1g)\n",
               file, line, what, worst, at, n ? got[at] : 0.0, n ? want[at] : 0.0, atol, rtol);
    } else {
        t_passed++;
        printf("  ok %-44s max abs diff %.3g\n", what, worst);
    }
    return !bad;
}
#define CHECK_CLOSE(what, got, want, n, atol, rtol)                                                \
    check_close_impl(__FILE__, __LINE__, what, got, want, n, atol, rtol)

/* num[i] = dL/dx[i] by central differences of loss(ctx) with step eps,
 * evaluated in double; x is restored. The one finite-difference loop the
 * layer tests share. */
static inline void fd_central(double (*loss)(void *ctx), void *ctx, float *x, size_t n,
                              float eps, float *num) {
    for (size_t i = 0; i < n; i++) {
        float x0 = x[i];
        x[i] = x0 + eps;
        double lp = loss(ctx);
        x[i] = x0 - eps;
        double lm = loss(ctx);
        x[i] = x0;
        num[i] = (float)((lp - lm) / (2.0 * eps));
    }
}

#define TEST_END()                                                                                 \
    do {                                                                                           \
        printf("%d passed, %d failed\n", t_passed, t_failed);                                      \
        return t_failed ? 1 : 0;                                                                   \
    } while (0)

#endif
