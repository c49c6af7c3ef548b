/* ops.c - the small layers between the convolutions and the LSTM: ReLU,
 * residual add, mean over height (with the (B,C,W) -> (W,B,C) transpose),
 * linear (nn.Linear) and log-softmax, forward and backward.
 *
 * For: the CNN tail, the `neck` and the classifier of a CRNN.
 * Not for: convolutions (conv.c), BatchNorm (batchnorm.c), losses (ctc.c,
 * distance.c), or allocation: every buffer comes from the caller.
 * Backward functions accumulate (+=); NULL gradients are skipped.
 */
#include "ocrkd/nn.h"

#include <math.h>
#include <string.h>

#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include "vec4.h"

/* inp, out (n); out may equal inp */
static void relu_forward_serial(const float *inp, float *out, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4f x = load4(inp + i);
        store4(out + i, keep_where_positive(x, x));
    }
    for (; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* out is the forward OUTPUT (n); dinp (n) += dout * (out > 0) */
static void relu_backward_serial(const float *out, const float *dout, float *dinp, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        store4(dinp + i, load4(dinp + i) + keep_where_positive(load4(out + i), load4(dout + i)));
    for (; i < n; i++)
        dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

/* out (n) and g (n): g = 0 where out <= 0 (in place; out may equal g) */
static void relu_mask_serial(const float *out, float *g, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        store4(g + i, keep_where_positive(load4(out + i), load4(g + i)));
    for (; i < n; i++)
        g[i] = out[i] > 0.0f ? g[i] : 0.0f;
}

/* a, b, out (n): out = a + b; out may equal a or b */
static void add_forward_serial(const float *a, const float *b, float *out, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        store4(out + i, load4(a + i) + load4(b + i));
    for (; i < n; i++)
        out[i] = a[i] + b[i];
}

/* a, b, out (n): out = max(a + b, 0), a residual add and its ReLU in one pass */
static void add_relu_forward_serial(const float *a, const float *b, float *out, size_t n) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4f v = load4(a + i) + load4(b + i);
        store4(out + i, keep_where_positive(v, v));
    }
    for (; i < n; i++) {
        const float v = a[i] + b[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}

/* ---- the element-wise passes over the pool ----
 * Each splits [0, n) into contiguous ranges (pool_for); outputs are
 * disjoint, so results do not depend on the thread count. */
typedef enum { EW_RELU, EW_RELU_BACKWARD, EW_RELU_MASK, EW_ADD, EW_ADD_RELU } EwKind;

typedef struct {
    EwKind kind;
    const float *a, *b;
    float *out;
} EwPass;

static void elementwise_range(void *ctx, size_t lo, size_t hi) {
    const EwPass *p = ctx;
    size_t n = hi - lo;
    switch (p->kind) {
    case EW_RELU: relu_forward_serial(p->a + lo, p->out + lo, n); break;
    case EW_RELU_BACKWARD: relu_backward_serial(p->a + lo, p->b + lo, p->out + lo, n); break;
    case EW_RELU_MASK: relu_mask_serial(p->a + lo, p->out + lo, n); break;
    case EW_ADD: add_forward_serial(p->a + lo, p->b + lo, p->out + lo, n); break;
    case EW_ADD_RELU: add_relu_forward_serial(p->a + lo, p->b + lo, p->out + lo, n); break;
    }
}

static void elementwise(EwKind kind, const float *a, const float *b, float *out, size_t n) {
    EwPass p = {kind, a, b, out};
    pool_for(n, 1, elementwise_range, &p);
}

/* inp, out (n); out may equal inp */
void relu_forward(const float *inp, float *out, size_t n) {
    elementwise(EW_RELU, inp, NULL, out, n);
}

/* out is the forward OUTPUT (n); dinp (n) += dout * (out > 0) */
void relu_backward(const float *out, const float *dout, float *dinp, size_t n) {
    if (dinp) elementwise(EW_RELU_BACKWARD, out, dout, dinp, n);
}

/* out (n) and g (n): g = 0 where out <= 0 (in place; out may equal g) */
void relu_mask(const float *out, float *g, size_t n) {
    elementwise(EW_RELU_MASK, out, NULL, g, n);
}

/* a, b, out (n): out = a + b; out may equal a or b */
void add_forward(const float *a, const float *b, float *out, size_t n) {
    elementwise(EW_ADD, a, b, out, n);
}

/* a, b, out (n): out = max(a + b, 0), a residual add and its ReLU in one pass */
void add_relu_forward(const float *a, const float *b, float *out, size_t n) {
    elementwise(EW_ADD_RELU, a, b, out, n);
}

/* inp (B,C,H,W) -> out (W,B,C): out[w,b,c] = mean over h of inp[b,c,h,w] */
void mean_height_forward(const float *inp, int B, int C, int H, int W, float *out) {
    const size_t stride = (size_t)B * C; /* between consecutive w in out */
    const float inv_h = 1.0f / (float)H;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *x = inp + ((size_t)b * C + c) * H * W;
            float *y = out + (size_t)b * C + c;
            for (int w = 0; w < W; w++) {
                float s = 0.0f;
                for (int h = 0; h < H; h++)
                    s += x[(size_t)h * W + w];
                y[w * stride] = s * inv_h;
            }
        }
}

/* dout (W,B,C) -> dinp (B,C,H,W) += dout[w,b,c] / H */
void mean_height_backward(const float *dout, int B, int C, int H, int W, float *dinp) {
    if (!dinp) return;
    const size_t stride = (size_t)B * C;
    const float inv_h = 1.0f / (float)H;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float *dy = dout + (size_t)b * C + c;
            float *dx = dinp + ((size_t)b * C + c) * H * W;
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dx[(size_t)h * W + w] += dy[w * stride] * inv_h;
        }
}

/* inp (N,IC), w (OC,IC), b (OC) or NULL -> out (N,OC) = inp w^T + b */
void linear_forward(const float *inp, const float *w, const float *b, int N, int IC, int OC,
                    float *out) {
    float beta = 0.0f;
    if (b) {
        for (int n = 0; n < N; n++)
            memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    gemm_f32(0, 1, N, OC, IC, inp, IC, w, IC, beta, out, OC);
}

/* dout (N,OC) -> dinp (N,IC) += dout w, dw (OC,IC) += dout^T inp,
 * db (OC) += column sums of dout; each may be NULL */
void linear_backward(const float *inp, const float *w, const float *dout, int N, int IC, int OC,
                     float *dinp, float *dw, float *db) {
    if (dinp) gemm_f32(0, 0, N, IC, OC, dout, OC, w, IC, 1.0f, dinp, IC);
    if (dw) gemm_f32(1, 0, OC, IC, N, dout, OC, inp, IC, 1.0f, dw, IC);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *dy = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++)
                db[o] += dy[o];
        }
}

/* inp (N,K) -> out (N,K) = x - max - log(sum exp(x - max)); out may equal inp */
void log_softmax_forward(const float *inp, int N, int K, float *out) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * K;
        float *y = out + (size_t)n * K;
        float mx = x[0];
        for (int k = 1; k < K; k++)
            mx = x[k] > mx ? x[k] : mx;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += expf(x[k] - mx);
        const float shift = mx + (float)log(s);
        for (int k = 0; k < K; k++)
            y[k] = x[k] - shift;
    }
}

/* out is the forward OUTPUT (N,K); dinp (N,K) += dout - exp(out) * sum(dout) */
void log_softmax_backward(const float *out, const float *dout, int N, int K, float *dinp) {
    if (!dinp) return;
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * K, *dy = dout + (size_t)n * K;
        float *dx = dinp + (size_t)n * K;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += dy[k];
        const float sf = (float)s;
        for (int k = 0; k < K; k++)
            dx[k] += dy[k] - expf(y[k]) * sf;
    }
}
