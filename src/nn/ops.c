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

/* ---- mean over the height, log-softmax and row fills: rows split over the
 * pool (pool_for), each row whole on one thread: the same bits for any
 * thread count ---- */
typedef struct {
    const float *x, *dy;
    float *y;
    int B, C, H, W, K;
    const float *row;
} RowPass;

static void mean_height_rows(void *ctx, size_t lo, size_t hi) {
    const RowPass *p = ctx;
    const size_t stride = (size_t)p->B * p->C; /* between consecutive w in out */
    const float inv_h = 1.0f / (float)p->H;
    const int H = p->H, W = p->W;
    for (size_t bc = lo; bc < hi; bc++) { /* bc = b C + c */
        const float *x = p->x + bc * H * W;
        float *y = p->y + bc;
        for (int w = 0; w < W; w++) {
            float s = 0.0f;
            for (int h = 0; h < H; h++)
                s += x[(size_t)h * W + w];
            y[w * stride] = s * inv_h;
        }
    }
}

/* inp (B,C,H,W) -> out (W,B,C): out[w,b,c] = mean over h of inp[b,c,h,w] */
void mean_height_forward(const float *inp, int B, int C, int H, int W, float *out) {
    RowPass p = {.x = inp, .y = out, .B = B, .C = C, .H = H, .W = W};
    pool_for((size_t)B * C, (size_t)H * W, mean_height_rows, &p);
}

static void mean_height_back_rows(void *ctx, size_t lo, size_t hi) {
    const RowPass *p = ctx;
    const size_t stride = (size_t)p->B * p->C;
    const float inv_h = 1.0f / (float)p->H;
    const int H = p->H, W = p->W;
    for (size_t bc = lo; bc < hi; bc++) {
        const float *dy = p->dy + bc;
        float *dx = p->y + bc * H * W;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                dx[(size_t)h * W + w] += dy[w * stride] * inv_h;
    }
}

/* dout (W,B,C) -> dinp (B,C,H,W) += dout[w,b,c] / H */
void mean_height_backward(const float *dout, int B, int C, int H, int W, float *dinp) {
    if (!dinp) return;
    RowPass p = {.dy = dout, .y = dinp, .B = B, .C = C, .H = H, .W = W};
    pool_for((size_t)B * C, (size_t)H * W, mean_height_back_rows, &p);
}

static void fill_rows_range(void *ctx, size_t lo, size_t hi) {
    const RowPass *p = ctx;
    for (size_t r = lo; r < hi; r++)
        memcpy(p->y + r * p->K, p->row, (size_t)p->K * sizeof(float));
}

static void zero_range(void *ctx, size_t lo, size_t hi) {
    memset((float *)ctx + lo, 0, (hi - lo) * sizeof(float));
}

void zero_floats(float *p, size_t n) {
    pool_for(n, 1, zero_range, p);
}

void fill_rows(float *out, size_t rows, const float *row, int n) {
    RowPass p = {.y = out, .row = row, .K = n};
    pool_for(rows, (size_t)n, fill_rows_range, &p);
}

/* inp (N,IC), w (OC,IC), b (OC) or NULL -> out (N,OC) = inp w^T + b */
void linear_forward(const float *inp, const float *w, const float *b, int N, int IC, int OC,
                    float *out) {
    float beta = 0.0f;
    if (b) {
        fill_rows(out, (size_t)N, b, OC);
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

static void log_softmax_rows(void *ctx, size_t lo, size_t hi) {
    const RowPass *p = ctx;
    const int K = p->K;
    for (size_t n = lo; n < hi; n++) {
        const float *x = p->x + n * K;
        float *y = p->y + n * K;
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

/* inp (N,K) -> out (N,K) = x - max - log(sum exp(x - max)); out may equal inp */
void log_softmax_forward(const float *inp, int N, int K, float *out) {
    RowPass p = {.x = inp, .y = out, .K = K};
    pool_for((size_t)N, 8 * (size_t)K, log_softmax_rows, &p);
}

static void log_softmax_back_rows(void *ctx, size_t lo, size_t hi) {
    const RowPass *p = ctx;
    const int K = p->K;
    for (size_t n = lo; n < hi; n++) {
        const float *y = p->x + n * K, *dy = p->dy + n * K;
        float *dx = p->y + n * K;
        double s = 0;
        for (int k = 0; k < K; k++)
            s += dy[k];
        const float sf = (float)s;
        for (int k = 0; k < K; k++)
            dx[k] += dy[k] - expf(y[k]) * sf;
    }
}

/* out is the forward OUTPUT (N,K); dinp (N,K) += dout - exp(out) * sum(dout) */
void log_softmax_backward(const float *out, const float *dout, int N, int K, float *dinp) {
    if (!dinp) return;
    RowPass p = {.x = out, .dy = dout, .y = dinp, .K = K};
    pool_for((size_t)N, 8 * (size_t)K, log_softmax_back_rows, &p);
}
