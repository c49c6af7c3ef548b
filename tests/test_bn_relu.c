/* test_bn_relu.c - the fused BatchNorm + ReLU kernels of nn.h against the
 * unfused composition (batchnorm_* then relu_*), which test_batchnorm.c and
 * test_ops.c check against formulas and finite differences; likewise
 * add_relu_forward and relu_mask. Also checks
 * that batchnorm_relu_backward_train overwrites dinp and that y = NULL is
 * plain BN backward. */
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "test.h"

enum { B = 3, C = 5, HW = 37, N = B * C * HW }; /* HW: 4 full 8-lanes + tail */

static void fill(Rng *r, float *x, int n, float lo, float span) {
    for (int i = 0; i < n; i++)
        x[i] = lo + span * (float)rng_uniform(r);
}

int main(void) {
    static float x[N], y_ref[N], y[N], dout[N], d_ref[N], d[N], masked[N];
    float gamma[C], beta[C], rm[C], rv[C], rm2[C], rv2[C], sm[C], si[C], sm2[C], si2[C];
    float dg_ref[C] = {0}, db_ref[C] = {0}, dg[C] = {0}, db[C] = {0};
    Rng r;
    rng_seed(&r, 7);
    fill(&r, x, N, -1.0f, 2.0f); /* about half the BN outputs clip at 0 */
    fill(&r, dout, N, -1.0f, 2.0f);
    fill(&r, gamma, C, 0.5f, 1.0f);
    fill(&r, beta, C, -0.3f, 0.6f);
    fill(&r, rm, C, -0.2f, 0.4f);
    fill(&r, rv, C, 0.5f, 1.0f);
    memcpy(rm2, rm, sizeof rm);
    memcpy(rv2, rv, sizeof rv);

    /* training forward: fused vs BN then ReLU */
    batchnorm_forward_train(x, gamma, beta, rm, rv, 0.1f, B, C, HW, y_ref, sm, si);
    relu_forward(y_ref, y_ref, N);
    batchnorm_relu_forward_train(x, gamma, beta, rm2, rv2, 0.1f, B, C, HW, y, sm2, si2);
    CHECK_CLOSE("train forward fused vs bn;relu", y, y_ref, N, 0, 0);
    CHECK_CLOSE("running mean", rm2, rm, C, 0, 0);
    CHECK_CLOSE("running var", rv2, rv, C, 0, 0);
    CHECK_CLOSE("saved invstd", si2, si, C, 0, 0);
    int zeros = 0;
    for (int i = 0; i < N; i++)
        zeros += y[i] == 0.0f;
    CHECK(zeros > N / 5 && zeros < N - N / 5, "ReLU clips %d of %d: a weak test", zeros, N);

    /* inference forward */
    batchnorm_forward_infer(x, gamma, beta, rm, rv, B, C, HW, y_ref);
    relu_forward(y_ref, y_ref, N);
    batchnorm_relu_forward_infer(x, gamma, beta, rm, rv, B, C, HW, d);
    CHECK_CLOSE("infer forward fused vs bn;relu", d, y_ref, N, 0, 0);

    /* backward: relu_backward into a zeroed buffer, then BN backward (+=) */
    memset(masked, 0, sizeof masked);
    relu_backward(y, dout, masked, N);
    memset(d_ref, 0, sizeof d_ref);
    batchnorm_backward_train(x, masked, gamma, sm, si, B, C, HW, d_ref, dg_ref, db_ref);
    for (int i = 0; i < N; i++)
        d[i] = 1e3f; /* garbage: must be overwritten */
    batchnorm_relu_backward_train(x, y, dout, gamma, sm, si, B, C, HW, d, dg, db);
    CHECK_CLOSE("dinp fused vs relu_backward;bn backward", d, d_ref, N, 1e-6, 1e-5);
    CHECK_CLOSE("dgamma", dg, dg_ref, C, 1e-6, 1e-5);
    CHECK_CLOSE("dbeta", db, db_ref, C, 1e-6, 1e-5);

    /* y == NULL: plain BN backward, dinp still overwritten */
    memset(d_ref, 0, sizeof d_ref);
    batchnorm_backward_train(x, dout, gamma, sm, si, B, C, HW, d_ref, NULL, NULL);
    for (int i = 0; i < N; i++)
        d[i] = -1e3f;
    batchnorm_relu_backward_train(x, NULL, dout, gamma, sm, si, B, C, HW, d, NULL, NULL);
    CHECK_CLOSE("dinp without ReLU vs bn backward", d, d_ref, N, 0, 0);

    /* add_relu_forward == add_forward;relu_forward, relu_mask == relu_backward
     * into zeros (odd n: vector lanes + tail) */
    add_forward(x, dout, y_ref, N);
    relu_forward(y_ref, y_ref, N);
    memcpy(d, x, sizeof x);
    add_relu_forward(d, dout, d, N);
    CHECK_CLOSE("add_relu_forward vs add;relu", d, y_ref, N, 0, 0);
    memset(d_ref, 0, sizeof d_ref);
    relu_backward(y, dout, d_ref, N);
    memcpy(d, dout, sizeof dout);
    relu_mask(y, d, N);
    CHECK_CLOSE("relu_mask vs relu_backward", d, d_ref, N, 0, 0);
    TEST_END();
}
