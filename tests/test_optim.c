/* test_optim.c - optimizers against hand-computed 2-3 step trajectories of
 * one scalar parameter starting at 1 (worked out on paper; torch.optim
 * gives the same numbers), gradient clipping, and the learning-rate
 * schedules at their boundary steps. */
#include "ocrkd/common.h"
#include "ocrkd/optim.h"
#include "test.h"

/* Runs the optimizer on p = {1, 1} with gradient {g[k], 2*g[k]} at step k
 * and checks p[0] after each step against want[k] (the second element only
 * makes the slice longer than one). */
static void trajectory(const char *what, OptimConf c, const float *g, const float *want, int n) {
    Optim o;
    optim_init(&o, &c, 2);
    float p[2] = {1, 1}, got[3];
    for (int k = 0; k < n; k++) {
        float grads[2] = {g[k], 2 * g[k]};
        optim_step(&o, p, grads, c.lr);
        got[k] = p[0];
    }
    CHECK_CLOSE(what, got, want, n, 1e-6, 1e-6);
    CHECK(o.t == n, "%s: t = %ld after %d steps", what, o.t, n);
    CHECK(c.kind == OPT_SGD ? o.v == NULL : o.v != NULL, "%s: v allocated only for adam", what);
    optim_free(&o);
}

static void test_optimizers(void) {
    const float ones[3] = {1, 1, 1}, halves[3] = {0.5f, 0.5f, 0.5f}, flip[2] = {1, -1};
    OptimConf sgd = {OPT_SGD, 0.1f, 0, 0.9f, 0, 0, 0};
    /* buf 1 -> p .9; buf 1.9 -> p .71; buf 2.71 -> p .439 */
    trajectory("sgd momentum 0.9", sgd, ones, (float[]){0.9f, 0.71f, 0.439f}, 3);
    sgd.weight_decay = 0.1f; /* g' = 1.1, buf 1.1, p .89; g' = 1.089, buf 2.079, p .6821 */
    trajectory("sgd momentum + weight decay", sgd, ones, (float[]){0.89f, 0.6821f}, 2);
    sgd.momentum = 0; /* p -= .1 (1 + .1 p): .89, .7811 */
    trajectory("plain sgd + weight decay", sgd, ones, (float[]){0.89f, 0.7811f}, 2);

    OptimConf adam = {OPT_ADAM, 0.1f, 0, 0, 0.9f, 0.999f, 1e-8f};
    /* constant gradient: m_hat = g, v_hat = g^2, each step moves lr */
    trajectory("adam constant gradient", adam, halves, (float[]){0.9f, 0.8f, 0.7f}, 3);
    /* g 1 then -1: m = -.01, m_hat = -.01/.19; v_hat = .001999/.001999 = 1 */
    trajectory("adam sign flip", adam, flip, (float[]){0.9f, 0.9f + 0.1f * 0.01f / 0.19f}, 2);
    adam.weight_decay = 0.1f; /* g' = .6 then .59: m_hat .594737, v_hat .354047 */
    trajectory("adam L2 weight decay", adam, halves, (float[]){0.9f, 0.80004734f}, 2);
    adam.kind = OPT_ADAMW; /* p *= .99 then -= .1: .89, .7811, .673289 */
    trajectory("adamw decoupled decay", adam, halves, (float[]){0.89f, 0.7811f, 0.673289f}, 3);
    OptimConf zeroed = {OPT_ADAM, 0.1f, 0, 0, 0, 0, 0}; /* betas/eps 0: torch defaults */
    trajectory("adam with default betas", zeroed, flip,
               (float[]){0.9f, 0.9f + 0.1f * 0.01f / 0.19f}, 2);
}

static void test_clip(void) {
    float g[2] = {3, 4}, want[2] = {0.6f, 0.8f};
    double n = clip_grad_norm(g, 2, 1.0f);
    CHECK(fabs(n - 5) < 1e-12, "norm before clipping %g, want 5", n);
    CHECK_CLOSE("clipped to norm 1", g, want, 2, 1e-6, 0);
    float h[2] = {3, 4}, same[2] = {3, 4};
    clip_grad_norm(h, 2, 10.0f);
    CHECK_CLOSE("norm below max: untouched", h, same, 2, 0, 0);
    clip_grad_norm(h, 2, 0.0f);
    CHECK_CLOSE("max 0: no clipping", h, same, 2, 0, 0);
    enum { N = 100000 };
    float *big = xalloc_floats(N);
    for (int i = 0; i < N; i++)
        big[i] = 1e-3f;
    double bn = grad_norm(big, N);
    CHECK(fabs(bn - sqrt(N) * (double)1e-3f) < 1e-12, "grad_norm of %d x 1e-3 = %.12g", N, bn);
    free(big);
    /* lengths around the 8 lanes: 3 4 12 0 ... (squares sum to 13^2) */
    float odd[11] = {0};
    odd[0] = 3, odd[1] = 4, odd[2] = 12;
    for (int n = 3; n <= 11; n++)
        CHECK(grad_norm(odd, (size_t)n) == 13.0, "grad_norm of %d values = %.17g, want 13", n,
              grad_norm(odd, (size_t)n));
    odd[9] = 5; /* 3 4 12 0 ... 5 0: a value past the last 8 */
    CHECK(fabs(grad_norm(odd, 11) - sqrt(194.0)) < 1e-12, "grad_norm with a value in the tail");
    float a[3] = {3, 4, 12}, b[3] = {3, 4, 12};
    double na = clip_grad_norm(a, 3, 1.0f), nb = clip_grad_to_norm(b, 3, 1.0f, grad_norm(b, 3));
    CHECK(na == nb && a[0] == b[0] && a[1] == b[1] && a[2] == b[2],
          "clip_grad_to_norm with the norm given differs from clip_grad_norm");
}

static void test_schedules(void) {
    Schedule cos = {SCHED_COSINE, 10, 110, 0.1f, 0, 0, 0};
    struct {
        const Schedule *s;
        long step;
        float want;
    } cases[] = {
        {&cos, 0, 0.1f},   {&cos, 4, 0.5f},   {&cos, 9, 1.0f},   /* warmup (step+1)/10 */
        {&cos, 10, 1.0f},  {&cos, 60, 0.55f}, {&cos, 110, 0.1f}, /* half way: (1+.1)/2 */
        {&cos, 500, 0.1f},
    };
    Schedule stp = {SCHED_STEP, 0, 0, 0, 5, 0.5f, 0};
    Schedule con = {SCHED_CONSTANT, 5, 0, 0, 0, 0, 0};
    Schedule open_cos = {SCHED_COSINE, 0, 0, 0, 0, 0, 0}; /* no known end: constant */
    Schedule warm_step = {SCHED_STEP, 4, 0, 0, 3, 0.1f, 0};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        float lr = lr_at_step(cases[i].s, 1.0f, cases[i].step);
        CHECK(fabsf(lr - cases[i].want) < 1e-6f, "cosine step %ld: lr %g, want %g", cases[i].step,
              lr, cases[i].want);
    }
    float st[4] = {lr_at_step(&stp, 2, 0), lr_at_step(&stp, 2, 4), lr_at_step(&stp, 2, 5),
                   lr_at_step(&stp, 2, 10)};
    CHECK_CLOSE("step schedule at 0, 4, 5, 10", st, ((float[]){2, 2, 1, 0.5f}), 4, 1e-7, 0);
    float ws[4] = {lr_at_step(&warm_step, 1, 3), lr_at_step(&warm_step, 1, 4),
                   lr_at_step(&warm_step, 1, 6), lr_at_step(&warm_step, 1, 7)};
    CHECK_CLOSE("step after warmup 4 at 3, 4, 6, 7", ws, ((float[]){1, 1, 1, 0.1f}), 4, 1e-7, 0);
    float cs[3] = {lr_at_step(&con, 3, 0), lr_at_step(&con, 3, 4), lr_at_step(&con, 3, 99)};
    CHECK_CLOSE("constant with warmup 5 at 0, 4, 99", cs, ((float[]){0.6f, 3, 3}), 3, 1e-6, 0);
    CHECK(lr_at_step(&open_cos, 0.5f, 1000) == 0.5f, "cosine without total_steps is constant");
    /* over time: warmup by steps, then the cosine at the share of the time used */
    Schedule tcos = {SCHED_COSINE, 10, 0, 0.1f, 0, 0, 1};
    float tl[6] = {lr_at(&tcos, 1, 4, 0.9), lr_at(&tcos, 1, 10, 0.0), lr_at(&tcos, 1, 11, 0.5),
                   lr_at(&tcos, 1, 500, 1.0), lr_at(&tcos, 1, 20, 1.7), lr_at(&tcos, 1, 12, -0.2)};
    CHECK_CLOSE("cosine over time: warmup, 0, half, end, past the end, clock before start", tl,
                ((float[]){0.5f, 1, 0.55f, 0.1f, 0.1f, 1}), 6, 1e-6, 0);
    Schedule tstep = {SCHED_COSINE, 10, 110, 0.1f, 0, 0, 0};
    CHECK(lr_at(&tstep, 1, 60, 0.9) == lr_at_step(&tstep, 1, 60), "over steps ignores the clock");
}

int main(void) {
    test_optimizers();
    test_clip();
    test_schedules();
    TEST_END();
}
