/* batchnorm.c - BatchNorm2d forward (training and inference) and backward.
 *
 * For: exactly torch.nn.BatchNorm2d(affine=True, track_running_stats=True):
 * batch statistics normalize with the biased variance, the running variance
 * is updated with the unbiased one, running = (1-m)*running + m*batch, eps
 * BN_EPS. Per-channel sums accumulate in double.
 * Threads: passes split over channels (pool.h); bit-identical for any count.
 * Not for: statistics across MPI ranks (SPEC: BatchNorm statistics are per
 * rank, as DDP without SyncBatchNorm), or allocation.
 *
 * Tensors are (B,C,HW): channel c of sample b is the contiguous run
 * inp + (b*C + c)*HW.
 */
#include "ocrkd/nn.h"

#include <math.h>
#include <string.h>

#include "ocrkd/pool.h"
#include "vec4.h"

/* Row reductions: 8 float lanes (which the compiler vectorizes; a single
 * double chain would not) over one (b,c) run, returned in double so the
 * per-channel totals over B runs accumulate in double. */
#define LANES 8
static double row_sum(const float *x, int n) {
    float a[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            a[j] += x[i + j];
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += a[j];
    for (; i < n; i++)
        s += x[i];
    return s;
}

static double row_sq_dev(const float *x, int n, float m) {
    float a[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++)
            a[j] += (x[i + j] - m) * (x[i + j] - m);
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += a[j];
    for (; i < n; i++)
        s += (double)(x[i] - m) * (x[i] - m);
    return s;
}

/* sum(dy) and sum(dy * (x - m)) over one run. */
static void row_dy_sums(const float *dy, const float *x, int n, float m, double *sdy,
                        double *sdyx) {
    float a[LANES] = {0}, b[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            a[j] += dy[i + j];
            b[j] += dy[i + j] * (x[i + j] - m);
        }
    double sa = 0, sb = 0;
    for (int j = 0; j < LANES; j++)
        sa += a[j], sb += b[j];
    for (; i < n; i++)
        sa += dy[i], sb += (double)dy[i] * (x[i] - m);
    *sdy += sa;
    *sdyx += sb;
}

/* As row_dy_sums with dy replaced by dy * (y > 0), the ReLU's backward. */
static void row_dy_sums_masked(const float *dy, const float *y, const float *x, int n, float m,
                               double *sdy, double *sdyx) {
    /* lanes 0-3 and 4-7 of row_dy_sums' accumulators */
    v4f a0 = splat4(0.0f), a1 = a0, b0 = a0, b1 = a0;
    const v4f vm = splat4(m);
    int i = 0;
    for (; i + LANES <= n; i += LANES) {
        const v4f d0 = keep_where_positive(load4(y + i), load4(dy + i));
        const v4f d1 = keep_where_positive(load4(y + i + 4), load4(dy + i + 4));
        a0 += d0, a1 += d1;
        b0 += d0 * (load4(x + i) - vm);
        b1 += d1 * (load4(x + i + 4) - vm);
    }
    double sa = 0, sb = 0;
    for (int j = 0; j < 4; j++)
        sa += a0[j], sb += b0[j];
    for (int j = 0; j < 4; j++)
        sa += a1[j], sb += b1[j];
    for (; i < n; i++) {
        const float d = y[i] > 0.0f ? dy[i] : 0.0f;
        sa += d, sb += (double)d * (x[i] - m);
    }
    *sdy += sa;
    *sdyx += sb;
}

/* dx (n) = or += k * (dy' - mdy - (x - mean) * invstd * mdyx), where dy' is
 * dy, or dy * (y > 0) when y is not NULL. */
static void row_dx(const float *x, const float *dy, const float *y, int n, float k, float mdy,
                   float mean, float invstd, float mdyx, int accumulate, float *dx) {
    const v4f vk = splat4(k), vmdy = splat4(mdy), vmean = splat4(mean), vinv = splat4(invstd),
              vmdyx = splat4(mdyx);
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f d = load4(dy + i);
        if (y) d = keep_where_positive(load4(y + i), d);
        v4f v = vk * (d - vmdy - (load4(x + i) - vmean) * vinv * vmdyx);
        if (accumulate) v = load4(dx + i) + v;
        store4(dx + i, v);
    }
    x += i, dy += i, dx += i, n -= i;
    if (y) y += i;
    if (y && accumulate) {
        for (int i = 0; i < n; i++)
            dx[i] += k * ((y[i] > 0.0f ? dy[i] : 0.0f) - mdy - (x[i] - mean) * invstd * mdyx);
    } else if (y) {
        for (int i = 0; i < n; i++)
            dx[i] = k * ((y[i] > 0.0f ? dy[i] : 0.0f) - mdy - (x[i] - mean) * invstd * mdyx);
    } else if (accumulate) {
        for (int i = 0; i < n; i++)
            dx[i] += k * (dy[i] - mdy - (x[i] - mean) * invstd * mdyx);
    } else {
        for (int i = 0; i < n; i++)
            dx[i] = k * (dy[i] - mdy - (x[i] - mean) * invstd * mdyx);
    }
}

/* Mean and biased variance of channel c over (B, HW), two passes. */
static void channel_stats(const float *inp, int B, int C, int HW, int c, double *mean,
                          double *var) {
    double sum = 0, sq = 0;
    for (int b = 0; b < B; b++)
        sum += row_sum(inp + ((size_t)b * C + c) * HW, HW);
    const double n = (double)B * HW, m = sum / n;
    /* deviations from the float-rounded mean; correct the sum for the rounding */
    const float mf = (float)m;
    for (int b = 0; b < B; b++)
        sq += row_sq_dev(inp + ((size_t)b * C + c) * HW, HW, mf);
    *mean = m;
    *var = sq / n - (m - mf) * (m - mf);
}

/* out = inp * scale + shift on channel c (out may equal inp), then
 * max(., 0) when relu: the ReLU rides along instead of another pass. */
static void channel_affine(const float *inp, int B, int C, int HW, int c, float scale, float shift,
                           int relu, float *out) {
    for (int b = 0; b < B; b++) {
        const size_t off = ((size_t)b * C + c) * HW;
        const float *x = inp + off;
        float *y = out + off;
        const v4f vs = splat4(scale), vb = splat4(shift);
        int i = 0;
        for (; i + 4 <= HW; i += 4) {
            const v4f v = load4(x + i) * vs + vb;
            store4(y + i, relu ? keep_where_positive(v, v) : v);
        }
        for (; i < HW; i++) {
            const float v = x[i] * scale + shift;
            y[i] = relu && !(v > 0.0f) ? 0.0f : v;
        }
    }
}

/* The arguments of a pass, split over channels on pool.h's threads: every
 * channel's sums stay whole in one thread, so results do not depend on the
 * thread count. */
typedef struct {
    const float *inp, *y, *dout, *gamma, *beta, *save_mean, *save_invstd;
    const float *run_mean_in, *run_var_in;
    float *run_mean, *run_var, *out, *save_mean_out, *save_invstd_out, *dinp, *dgamma, *dbeta;
    float momentum;
    int B, C, HW, relu, accumulate;
} BnPass;

static void forward_train_channels(void *arg, size_t c0, size_t c1) {
    const BnPass *p = arg;
    const float *inp = p->inp, *gamma = p->gamma, *beta = p->beta;
    float *run_mean = p->run_mean, *run_var = p->run_var, *out = p->out;
    float *save_mean = p->save_mean_out, *save_invstd = p->save_invstd_out;
    const float momentum = p->momentum;
    const int B = p->B, C = p->C, HW = p->HW, relu = p->relu;
    const double n = (double)B * HW;
    for (int c = (int)c0; c < (int)c1; c++) {
        double mean, var;
        channel_stats(inp, B, C, HW, c, &mean, &var);
        const double invstd = 1.0 / sqrt(var + BN_EPS);
        save_mean[c] = (float)mean;
        save_invstd[c] = (float)invstd;
        /* torch uses var * n/(n-1); a single value per channel has no spread */
        const double unbiased = n > 1 ? var * n / (n - 1) : var;
        run_mean[c] = (float)((1.0 - momentum) * run_mean[c] + momentum * mean);
        run_var[c] = (float)((1.0 - momentum) * run_var[c] + momentum * unbiased);
        const double scale = gamma[c] * invstd;
        channel_affine(inp, B, C, HW, c, (float)scale, (float)(beta[c] - mean * scale), relu,
                       out);
    }
}

static void forward_train(const float *inp, const float *gamma, const float *beta, float *run_mean,
                          float *run_var, float momentum, int B, int C, int HW, int relu,
                          float *out, float *save_mean, float *save_invstd) {
    BnPass p = {.inp = inp, .gamma = gamma, .beta = beta, .run_mean = run_mean,
                .run_var = run_var, .out = out, .save_mean_out = save_mean,
                .save_invstd_out = save_invstd, .momentum = momentum, .B = B, .C = C, .HW = HW,
                .relu = relu};
    pool_for((size_t)C, 3 * (size_t)B * HW, forward_train_channels, &p);
}

/* inp/out (B,C,HW) (out may equal inp); gamma, beta, run_mean, run_var,
 * save_mean, save_invstd (C). Updates run_* with momentum. */
void batchnorm_forward_train(const float *inp, const float *gamma, const float *beta,
                             float *run_mean, float *run_var, float momentum, int B, int C, int HW,
                             float *out, float *save_mean, float *save_invstd) {
    forward_train(inp, gamma, beta, run_mean, run_var, momentum, B, C, HW, 0, out, save_mean,
                  save_invstd);
}

/* As batchnorm_forward_train, then ReLU: out = max(bn(inp), 0). */
void batchnorm_relu_forward_train(const float *inp, const float *gamma, const float *beta,
                                  float *run_mean, float *run_var, float momentum, int B, int C,
                                  int HW, float *out, float *save_mean, float *save_invstd) {
    forward_train(inp, gamma, beta, run_mean, run_var, momentum, B, C, HW, 1, out, save_mean,
                  save_invstd);
}

static void forward_infer_channels(void *arg, size_t c0, size_t c1) {
    const BnPass *p = arg;
    for (size_t c = c0; c < c1; c++) {
        const double scale = p->gamma[c] / sqrt((double)p->run_var_in[c] + BN_EPS);
        channel_affine(p->inp, p->B, p->C, p->HW, (int)c, (float)scale,
                       (float)(p->beta[c] - p->run_mean_in[c] * scale), p->relu, p->out);
    }
}

static void forward_infer(const float *inp, const float *gamma, const float *beta,
                          const float *run_mean, const float *run_var, int B, int C, int HW,
                          int relu, float *out) {
    BnPass p = {.inp = inp, .gamma = gamma, .beta = beta, .run_mean_in = run_mean,
                .run_var_in = run_var, .out = out, .B = B, .C = C, .HW = HW, .relu = relu};
    pool_for((size_t)C, (size_t)B * HW, forward_infer_channels, &p);
}

/* inp/out (B,C,HW) (out may equal inp); running statistics, no update. */
void batchnorm_forward_infer(const float *inp, const float *gamma, const float *beta,
                             const float *run_mean, const float *run_var, int B, int C, int HW,
                             float *out) {
    forward_infer(inp, gamma, beta, run_mean, run_var, B, C, HW, 0, out);
}

/* As batchnorm_forward_infer, then ReLU. */
void batchnorm_relu_forward_infer(const float *inp, const float *gamma, const float *beta,
                                  const float *run_mean, const float *run_var, int B, int C,
                                  int HW, float *out) {
    forward_infer(inp, gamma, beta, run_mean, run_var, B, C, HW, 1, out);
}

/* The backward of BN (+ ReLU when y, the ReLU output, is not NULL) on
 * channel-major runs; dinp accumulated or overwritten. */
static void backward_train_channels(void *arg, size_t c0, size_t c1) {
    const BnPass *p = arg;
    const float *inp = p->inp, *y = p->y, *dout = p->dout, *gamma = p->gamma;
    const float *save_mean = p->save_mean, *save_invstd = p->save_invstd;
    float *dinp = p->dinp, *dgamma = p->dgamma, *dbeta = p->dbeta;
    const int B = p->B, C = p->C, HW = p->HW, accumulate = p->accumulate;
    const double n = (double)B * HW;
    for (int c = (int)c0; c < (int)c1; c++) {
        const float mean = save_mean[c], invstd = save_invstd[c];
        double sum_dy = 0, sum_dy_xc = 0; /* xc = x - mean */
        for (int b = 0; b < B; b++) {
            const size_t off = ((size_t)b * C + c) * HW;
            if (y)
                row_dy_sums_masked(dout + off, y + off, inp + off, HW, mean, &sum_dy, &sum_dy_xc);
            else
                row_dy_sums(dout + off, inp + off, HW, mean, &sum_dy, &sum_dy_xc);
        }
        const double sum_dy_xhat = sum_dy_xc * invstd;
        if (dbeta) dbeta[c] += (float)sum_dy;
        if (dgamma) dgamma[c] += (float)sum_dy_xhat;
        if (!dinp) continue;
        const float k = gamma[c] * invstd, mdy = (float)(sum_dy / n),
                    mdyx = (float)(sum_dy_xhat / n);
        for (int b = 0; b < B; b++) {
            const size_t off = ((size_t)b * C + c) * HW;
            row_dx(inp + off, dout + off, y ? y + off : NULL, HW, k, mdy, mean, invstd, mdyx,
                   accumulate, dinp + off);
        }
    }
}

static void backward_train(const float *inp, const float *y, const float *dout, const float *gamma,
                           const float *save_mean, const float *save_invstd, int B, int C, int HW,
                           int accumulate, float *dinp, float *dgamma, float *dbeta) {
    BnPass p = {.inp = inp, .y = y, .dout = dout, .gamma = gamma, .save_mean = save_mean,
                .save_invstd = save_invstd, .dinp = dinp, .dgamma = dgamma, .dbeta = dbeta,
                .B = B, .C = C, .HW = HW, .accumulate = accumulate};
    pool_for((size_t)C, 4 * (size_t)B * HW, backward_train_channels, &p);
}

/* inp (B,C,HW) is the forward INPUT, dout (B,C,HW); gamma, save_* (C).
 * dinp (B,C,HW) +=, dgamma (C) +=, dbeta (C) +=; each may be NULL.
 * With xhat = (x - mean) * invstd:
 *   dinp = gamma * invstd * (dout - mean(dout) - xhat * mean(dout * xhat)). */
void batchnorm_backward_train(const float *inp, const float *dout, const float *gamma,
                              const float *save_mean, const float *save_invstd, int B, int C,
                              int HW, float *dinp, float *dgamma, float *dbeta) {
    backward_train(inp, NULL, dout, gamma, save_mean, save_invstd, B, C, HW, 1, dinp, dgamma,
                   dbeta);
}

/* Backward of y = relu(bn(inp)) (y = NULL: bn alone); dout is the gradient
 * w.r.t. y. dinp (B,C,HW) is OVERWRITTEN; dgamma, dbeta +=. */
void batchnorm_relu_backward_train(const float *inp, const float *y, const float *dout,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, int B, int C, int HW, float *dinp,
                                   float *dgamma, float *dbeta) {
    backward_train(inp, y, dout, gamma, save_mean, save_invstd, B, C, HW, 0, dinp, dgamma, dbeta);
}
