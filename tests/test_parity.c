/* test_parity.c - every layer of nn.h and every optimizer of optim.h against
 * PyTorch (tests/ref/layers.h5, written by tests/ref/make_refs.py).
 *
 * The references are float64 computations on float32 inputs, so the
 * differences printed are this code's float32 error. Tolerances are 1e-5
 * absolute + 1e-5 relative unless a comment says why more. Gradients are
 * checked on buffers pre-filled with ACC (not zero), which also checks that
 * backward functions accumulate (+=) as nn.h promises.
 * Not for: finite-difference or edge-case tests of single layers (those live
 * in each layer's own test_*.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/optim.h"
#include "ref_io.h"
#include "test.h"

#define TOL 1e-5
#define ACC 0.5f /* initial value of gradient buffers: backward must add to it */

static hid_t F; /* layers.h5 */

static float *filled(size_t n, float v) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = v;
    return p;
}

/* Compares got (n floats) with dataset GROUP/NAME, after subtracting `minus`
 * (ACC for accumulated gradients, 0 otherwise). */
static void cmp(const char *group, const char *name, float *got, size_t n, float minus,
                double atol, double rtol) {
    char path[256], what[256];
    snprintf(path, sizeof path, "%s/%s", group, name);
    snprintf(what, sizeof what, "%s %s", group, name);
    size_t nref;
    float *want = ref_floats(F, path, &nref);
    CHECK(nref == n, "%s: %zu elements, reference has %zu", what, n, nref);
    if (nref == n) {
        for (size_t i = 0; i < n; i++) got[i] -= minus;
        CHECK_CLOSE(what, got, want, n, atol, rtol);
        for (size_t i = 0; i < n; i++) got[i] += minus;
    }
    free(want);
}

static void test_conv_case(const char *name) {
    char g[128];
    snprintf(g, sizeof g, "conv/%s", name);
#define A(k) ref_attr_int(F, g, #k)
    ConvShape s = conv_shape(A(B), A(C), A(H), A(W), A(OC), A(KH), A(KW), A(SH), A(SW), A(PH),
                             A(PW));
    CHECK(s.OH == A(OH) && s.OW == A(OW), "%s: output %dx%d, torch %dx%d", g, s.OH, s.OW, A(OH),
          A(OW));
#undef A
    size_t nx, nw, ny;
    char p[160];
    snprintf(p, sizeof p, "%s/x", g);
    float *x = ref_floats(F, p, &nx);
    snprintf(p, sizeof p, "%s/w", g);
    float *w = ref_floats(F, p, &nw);
    snprintf(p, sizeof p, "%s/dy", g);
    float *dy = ref_floats(F, p, &ny);
    float *y = filled(ny, NAN), *dx = filled(nx, ACC), *dw = filled(nw, ACC);
    float *ws = filled(conv_workspace_floats(&s), NAN);
    conv2d_forward(&s, x, w, y, ws);
    cmp(g, "y", y, ny, 0, TOL, TOL);
    conv2d_backward(&s, x, w, dy, dx, dw, ws);
    cmp(g, "dx", dx, nx, ACC, TOL, TOL);
    cmp(g, "dw", dw, nw, ACC, TOL, TOL);
    free(x), free(w), free(dy), free(y), free(dx), free(dw), free(ws);
}

static void test_conv(void) {
    RefNames cases = ref_names(F, "conv");
    CHECK(cases.count >= 7, "conv: %d cases in layers.h5", cases.count);
    for (int i = 0; i < cases.count; i++) test_conv_case(cases.names[i]);
}

static void test_batchnorm(void) {
    int B = ref_attr_int(F, "bn", "B"), C = ref_attr_int(F, "bn", "C");
    int HW = ref_attr_int(F, "bn", "HW");
    float momentum = (float)ref_attr(F, "bn", "momentum");
    size_t n = (size_t)B * C * HW;
    float *x = ref_floats(F, "bn/x", NULL), *dy = ref_floats(F, "bn/dy", NULL);
    float *gamma = ref_floats(F, "bn/gamma", NULL), *beta = ref_floats(F, "bn/beta", NULL);
    float *rm = ref_floats(F, "bn/rm0", NULL), *rv = ref_floats(F, "bn/rv0", NULL);
    float *y = filled(n, NAN), *dx = filled(n, ACC), *dgamma = filled(C, ACC);
    float *dbeta = filled(C, ACC), *mean = filled(C, NAN), *invstd = filled(C, NAN);

    batchnorm_forward_infer(x, gamma, beta, rm, rv, B, C, HW, y);
    cmp("bn", "y_eval", y, n, 0, TOL, TOL);
    batchnorm_forward_train(x, gamma, beta, rm, rv, momentum, B, C, HW, y, mean, invstd);
    cmp("bn", "y", y, n, 0, TOL, TOL);
    cmp("bn", "rm1", rm, C, 0, TOL, TOL);
    cmp("bn", "rv1", rv, C, 0, TOL, TOL);
    batchnorm_backward_train(x, dy, gamma, mean, invstd, B, C, HW, dx, dgamma, dbeta);
    cmp("bn", "dx", dx, n, ACC, TOL, TOL);
    cmp("bn", "dgamma", dgamma, C, ACC, TOL, TOL);
    cmp("bn", "dbeta", dbeta, C, ACC, TOL, TOL);

    /* in place (out == inp), as the model uses it */
    float *xi = ref_floats(F, "bn/x", NULL);
    batchnorm_forward_infer(xi, gamma, beta, rm, rv, B, C, HW, xi);
    batchnorm_forward_infer(x, gamma, beta, rm, rv, B, C, HW, y);
    CHECK_CLOSE("bn infer in place", xi, y, n, 0, 0);
    free(x), free(dy), free(gamma), free(beta), free(rm), free(rv), free(y), free(dx);
    free(dgamma), free(dbeta), free(mean), free(invstd), free(xi);
}

static void test_linear(void) {
    int N = ref_attr_int(F, "linear", "N"), IC = ref_attr_int(F, "linear", "IC");
    int OC = ref_attr_int(F, "linear", "OC");
    float *x = ref_floats(F, "linear/x", NULL), *w = ref_floats(F, "linear/w", NULL);
    float *b = ref_floats(F, "linear/b", NULL), *dy = ref_floats(F, "linear/dy", NULL);
    float *y = filled((size_t)N * OC, NAN), *dx = filled((size_t)N * IC, ACC);
    float *dw = filled((size_t)OC * IC, ACC), *db = filled(OC, ACC);
    linear_forward(x, w, b, N, IC, OC, y);
    cmp("linear", "y", y, (size_t)N * OC, 0, TOL, TOL);
    linear_backward(x, w, dy, N, IC, OC, dx, dw, db);
    cmp("linear", "dx", dx, (size_t)N * IC, ACC, TOL, TOL);
    cmp("linear", "dw", dw, (size_t)OC * IC, ACC, TOL, TOL);
    cmp("linear", "db", db, OC, ACC, TOL, TOL);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

static void test_relu_mean_logsoftmax(void) {
    size_t n;
    float *x = ref_floats(F, "relu/x", &n), *dy = ref_floats(F, "relu/dy", NULL);
    float *y = filled(n, NAN), *dx = filled(n, ACC);
    relu_forward(x, y, n);
    cmp("relu", "y", y, n, 0, 0, 0);
    relu_backward(y, dy, dx, n);
    cmp("relu", "dx", dx, n, ACC, TOL, TOL);
    free(x), free(dy), free(y), free(dx);

    int B = ref_attr_int(F, "mean_height", "B"), C = ref_attr_int(F, "mean_height", "C");
    int H = ref_attr_int(F, "mean_height", "H"), W = ref_attr_int(F, "mean_height", "W");
    x = ref_floats(F, "mean_height/x", &n);
    dy = ref_floats(F, "mean_height/dy", NULL);
    y = filled((size_t)W * B * C, NAN), dx = filled(n, ACC);
    mean_height_forward(x, B, C, H, W, y);
    cmp("mean_height", "y", y, (size_t)W * B * C, 0, TOL, TOL);
    mean_height_backward(dy, B, C, H, W, dx);
    cmp("mean_height", "dx", dx, n, ACC, TOL, TOL);
    free(x), free(dy), free(y), free(dx);

    int N = ref_attr_int(F, "log_softmax", "N"), K = ref_attr_int(F, "log_softmax", "K");
    x = ref_floats(F, "log_softmax/x", &n);
    dy = ref_floats(F, "log_softmax/dy", NULL);
    y = filled(n, NAN), dx = filled(n, ACC);
    log_softmax_forward(x, N, K, y);
    cmp("log_softmax", "y", y, n, 0, TOL, TOL);
    log_softmax_backward(y, dy, N, K, dx);
    cmp("log_softmax", "dx", dx, n, ACC, TOL, TOL);
    free(x), free(dy), free(y), free(dx);
}

/* PyTorch name of tensor j (0 w_ih, 1 w_hh, 2 b_ih, 3 b_hh) of layer l, direction d. */
static void lstm_name(char *buf, size_t cap, int j, int l, int d) {
    static const char *base[] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    snprintf(buf, cap, "%s_l%d%s", base[j], l, d ? "_reverse" : "");
}

static float **lstm_slot(LstmWeights *w, int j) {
    float **slots[] = {&w->w_ih, &w->w_hh, &w->b_ih, &w->b_hh};
    return slots[j];
}

static void test_lstm(void) {
    LstmShape s = {ref_attr_int(F, "lstm", "layers"), ref_attr_int(F, "lstm", "T"),
                   ref_attr_int(F, "lstm", "B"), ref_attr_int(F, "lstm", "I"),
                   ref_attr_int(F, "lstm", "H")};
    LstmWeights w[16], dw[16];
    size_t wn[16][4];
    char name[64], path[96];
    for (int l = 0; l < s.layers; l++)
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < 4; j++) {
                lstm_name(name, sizeof name, j, l, d);
                snprintf(path, sizeof path, "lstm/w/%s", name);
                *lstm_slot(&w[2 * l + d], j) = ref_floats(F, path, &wn[2 * l + d][j]);
                *lstm_slot(&dw[2 * l + d], j) = filled(wn[2 * l + d][j], ACC);
            }
    size_t nx, ny;
    float *x = ref_floats(F, "lstm/x", &nx), *dy = ref_floats(F, "lstm/dy", &ny);
    float *y = filled(ny, NAN), *dx = filled(nx, ACC);
    float *acts = filled(bilstm_acts_floats(&s), NAN);
    float *ws = filled(bilstm_workspace_floats(&s), NAN);
    bilstm_forward(&s, w, x, y, acts);
    cmp("lstm", "y", y, ny, 0, TOL, TOL);
    bilstm_backward(&s, w, dw, x, acts, dy, dx, ws);
    cmp("lstm", "dx", dx, nx, ACC, TOL, TOL);
    for (int l = 0; l < s.layers; l++)
        for (int d = 0; d < 2; d++)
            for (int j = 0; j < 4; j++) {
                lstm_name(name, sizeof name, j, l, d);
                cmp("lstm/grads", name, *lstm_slot(&dw[2 * l + d], j), wn[2 * l + d][j], ACC,
                    TOL, TOL);
            }
    /* frozen encoder: dw == NULL must give the same input gradient */
    float *dx2 = filled(nx, ACC);
    bilstm_backward(&s, w, NULL, x, acts, dy, dx2, ws);
    cmp("lstm", "dx", dx2, nx, ACC, TOL, TOL);
    for (int i = 0; i < 2 * s.layers; i++)
        for (int j = 0; j < 4; j++) free(*lstm_slot(&w[i], j)), free(*lstm_slot(&dw[i], j));
    free(x), free(dy), free(y), free(dx), free(dx2), free(acts), free(ws);
}

static void test_ctc(void) {
    int T = ref_attr_int(F, "ctc", "T"), B = ref_attr_int(F, "ctc", "B");
    int K = ref_attr_int(F, "ctc", "K");
    size_t n;
    float *logp = ref_floats(F, "ctc/logp", &n), *want = ref_floats(F, "ctc/losses", NULL);
    int *labels = ref_ints(F, "ctc/labels", NULL), *lens = ref_ints(F, "ctc/label_lens", NULL);
    int lmax = 0;
    for (int b = 0; b < B; b++) lmax = MAX(lmax, lens[b]);
    double *ws = malloc(ctc_workspace_doubles(T, B, lmax) * sizeof(double));
    double *losses = malloc(B * sizeof(double));
    float *dlogits = filled(n, ACC);
    double loss = ctc_loss(logp, T, B, K, labels, lens, losses, dlogits, 1.0f, ws);
    float got = (float)loss, ref = (float)ref_scalar(F, "ctc/loss");
    CHECK_CLOSE("ctc loss (mean, zero_infinity)", &got, &ref, 1, TOL, TOL);
    for (int b = 0; b < B; b++) {
        if (isinf(want[b])) {
            CHECK(isinf(losses[b]) && losses[b] > 0, "ctc infeasible sample %d: loss %g, want +inf",
                  b, losses[b]);
        } else {
            float g = (float)losses[b];
            char what[64];
            snprintf(what, sizeof what, "ctc losses[%d] (label length %d)", b, lens[b]);
            CHECK_CLOSE(what, &g, &want[b], 1, TOL, TOL);
        }
    }
    cmp("ctc", "dlogits", dlogits, n, ACC, TOL, TOL);
    /* scale multiplies the gradient; losses == NULL is allowed */
    float *half = filled(n, 0);
    ctc_loss(logp, T, B, K, labels, lens, NULL, half, 0.5f, ws);
    for (size_t i = 0; i < n; i++) half[i] *= 2;
    cmp("ctc", "dlogits", half, n, 0, TOL, TOL);
    free(logp), free(want), free(labels), free(lens), free(ws), free(losses), free(dlogits);
    free(half);
}

static void test_distances(void) {
    static const char *kinds[] = {"l1", "l2", "cosine", "kl"};
    for (int k = 0; k < 4; k++) {
        char g[32], p[64];
        snprintf(g, sizeof g, "dist/%s", kinds[k]);
        int kind = distance_from_name(kinds[k]);
        CHECK(kind >= 0 && strcmp(distance_name((DistKind)kind), kinds[k]) == 0,
              "distance name %s does not round-trip", kinds[k]);
        if (kind < 0) continue;
        int N = ref_attr_int(F, g, "N"), C = ref_attr_int(F, g, "C");
        float tau = (float)ref_attr(F, g, "tau");
        snprintf(p, sizeof p, "%s/et", g);
        float *et = ref_floats(F, p, NULL);
        snprintf(p, sizeof p, "%s/es", g);
        float *es = ref_floats(F, p, NULL);
        snprintf(p, sizeof p, "%s/value", g);
        float want = (float)ref_scalar(F, p);
        float *des = filled((size_t)N * C, ACC);
        float got = (float)distance_forward_backward((DistKind)kind, et, es, N, C, tau, des, 1.0f);
        char what[64];
        snprintf(what, sizeof what, "%s value", g);
        CHECK_CLOSE(what, &got, &want, 1, TOL, TOL);
        cmp(g, "des", des, (size_t)N * C, ACC, TOL, TOL);
        free(et), free(es), free(des);
    }
    CHECK(distance_from_name("nope") == -1, "distance_from_name accepts an unknown name");
}

static void test_optim_case(const char *name) {
    char g[64];
    snprintf(g, sizeof g, "optim/%s", name);
    int n = ref_attr_int(F, g, "n"), steps = ref_attr_int(F, g, "steps");
    OptimConf c = {(OptKind)ref_attr_int(F, g, "kind"), (float)ref_attr(F, g, "lr"),
                   (float)ref_attr(F, g, "weight_decay"), (float)ref_attr(F, g, "momentum"),
                   0.9f, 0.999f, 1e-8f};
    char p[96];
    snprintf(p, sizeof p, "%s/p0", g);
    float *params = ref_floats(F, p, NULL);
    snprintf(p, sizeof p, "%s/grads", g);
    float *grads = ref_floats(F, p, NULL);
    snprintf(p, sizeof p, "%s/lrs", g);
    float *lrs = ref_floats(F, p, NULL);
    snprintf(p, sizeof p, "%s/p", g);
    float *want = ref_floats(F, p, NULL);
    Optim o;
    optim_init(&o, &c, (size_t)n);
    for (int s = 0; s < steps; s++) {
        optim_step(&o, params, grads + (size_t)s * n, lrs[s]);
        char what[96];
        snprintf(what, sizeof what, "%s params after step %d", g, s + 1);
        CHECK_CLOSE(what, params, want + (size_t)s * n, (size_t)n, TOL, TOL);
    }
    optim_free(&o);
    free(params), free(grads), free(lrs), free(want);
}

static void test_clip(const char *name) {
    char g[64], p[96];
    snprintf(g, sizeof g, "clip/%s", name);
    int n = ref_attr_int(F, g, "n");
    float max_norm = (float)ref_attr(F, g, "max_norm");
    snprintf(p, sizeof p, "%s/g", g);
    float *grad = ref_floats(F, p, NULL);
    snprintf(p, sizeof p, "%s/norm", g);
    float want = (float)ref_scalar(F, p);
    float n1 = (float)grad_norm(grad, (size_t)n);
    float n2 = (float)clip_grad_norm(grad, (size_t)n, max_norm);
    char what[96];
    snprintf(what, sizeof what, "%s grad_norm", g);
    CHECK_CLOSE(what, &n1, &want, 1, TOL, TOL);
    snprintf(what, sizeof what, "%s clip_grad_norm return", g);
    CHECK_CLOSE(what, &n2, &want, 1, TOL, TOL);
    cmp(g, "clipped", grad, (size_t)n, 0, TOL, TOL);
    free(grad);
}

int main(void) {
    F = ref_open("layers.h5");
    test_conv();
    test_batchnorm();
    test_linear();
    test_relu_mean_logsoftmax();
    test_lstm();
    test_ctc();
    test_distances();
    RefNames opts = ref_names(F, "optim");
    CHECK(opts.count == 4, "optim: %d cases in layers.h5", opts.count);
    for (int i = 0; i < opts.count; i++) test_optim_case(opts.names[i]);
    test_clip("clipped");
    test_clip("unclipped");
    H5Fclose(F);
    TEST_END();
}
