/* nn.h - the numerical layers of a CRNN: plain functions on float buffers.
 *
 * Conventions (every function below):
 * - Tensors are dense row-major float32; the comment on each function gives
 *   every shape. Images/feature maps are (B,C,H,W); sequences are (T,B,C).
 * - Backward functions ACCUMULATE (+=) into every gradient they write, so
 *   residual branches just add; callers zero gradients once per step.
 *   Any gradient pointer may be NULL, meaning "not needed": frozen weights
 *   pass NULL for their weight gradients and the work is skipped.
 * - No function allocates: scratch memory comes in as `ws` (workspace) sized
 *   by the matching *_floats() function, allocated once by the caller.
 * - BLAS is OpenBLAS cblas_sgemm; thread count is set by the caller.
 */
#ifndef OCRKD_NN_H
#define OCRKD_NN_H

#include <stddef.h>

#define BN_EPS 1e-5f

/* ---- 2-D convolution (no bias), im2col + GEMM, batch folded into GEMM ---- */
typedef struct {
    int B, C, H, W;  /* input */
    int OC, KH, KW;  /* weight (OC,C,KH,KW) */
    int SH, SW;      /* stride (height, width) */
    int PH, PW;      /* zero padding */
    int OH, OW;      /* output, derived: (H + 2PH - KH) / SH + 1 */
} ConvShape;

ConvShape conv_shape(int B, int C, int H, int W, int OC, int KH, int KW, int SH, int SW, int PH,
                     int PW);
/* Scratch floats needed by conv2d_forward and conv2d_backward for shape s
 * (the same buffer serves both). 1x1 stride-1 convs may need less. */
size_t conv_workspace_floats(const ConvShape *s);
/* inp (B,C,H,W), w (OC,C,KH,KW) -> out (B,OC,OH,OW) (overwritten) */
void conv2d_forward(const ConvShape *s, const float *inp, const float *w, float *out, float *ws);
/* Inference with BatchNorm folded into w: out = conv(inp, w) + bias (OC)
 * (+ res (B,OC,OH,OW) when not NULL), then ReLU when relu; out aliases
 * neither inp nor res. wt: w as conv_transform_weights left it (kept while
 * w does not change), or NULL. ws as for conv2d_forward. */
void conv2d_bias_forward(const ConvShape *s, const float *inp, const float *w, const float *wt,
                         const float *bias, const float *res, int relu, float *out, float *ws);
/* Floats of w transformed for s's fast path (Winograd), 0 when s has none;
 * conv_transform_weights fills them from w (OC,C,KH,KW). */
size_t conv_transformed_weights_floats(const ConvShape *s);
/* 1 when s's forward or backward runs im2col (whose workspace grows with
 * the batch) under the mode in force; 0 when both run Winograd (which
 * chunks the batch itself) */
int conv_runs_im2col(const ConvShape *s);
void conv_transform_weights(const ConvShape *s, const float *w, float *wt);
/* 3x3 stride-1 pad-1 convs run by Winograd F(2x2,3x3) (src/nn/winograd.c):
 * WINO_AUTO (the default; env OCRKD_WINOGRAD=auto) where it measured
 * faster: the forward with both channel counts >= 16, the backward >= 32;
 * WINO_ON (=on) both from 16 channels; WINO_OFF (=off) never. Set before sizing workspaces; tests size them
 * with the widest mode they use. */
enum { WINO_OFF = 0, WINO_ON = 1, WINO_AUTO = 2 };
void conv_set_winograd(int mode);
/* Its output tile for inference (conv2d_bias_forward with transformed
 * weights kept): 0 (the default; env OCRKD_WINOGRAD_TILE=auto) F(4x4, 3x3)
 * where its products are fewer than F(2x2, 3x3)'s (maps 3 or more high),
 * else F(2x2); 2 or 4 (=2, =4) that tile on every map. Training runs
 * F(2x2) in every case. Set before sizing workspaces. */
void conv_set_winograd_tile(int m);
/* The vector width of F(2x2)'s tile transforms: 4 or 8 floats (8 needs
 * AVX2), 0 the default (env OCRKD_WINOGRAD_LANES = 4 | 8, else 8 on the
 * AVX2 and AVX-512 GEMM paths, 4 on cblas's). Bit-identical results either
 * way. Returns the width in force (4 when 8 is asked of a CPU without AVX2). */
int conv_set_winograd_lanes(int lanes);
/* The stem's shape (1 input channel, 3x3, stride 1, pad 1) runs directly,
 * bit-identical to im2col + GEMM, on the AVX2/AVX-512 GEMM paths: on 1 (the
 * default; env OCRKD_STEM_DIRECT=0 sets 0), else im2col. No workspace. */
void conv_set_stem_direct(int on);
/* dout (B,OC,OH,OW) -> dinp (B,C,H,W) +=, dw (OC,C,KH,KW) +=; either may be NULL */
void conv2d_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                     float *dinp, float *dw, float *ws);

/* ---- BatchNorm2d (eps BN_EPS), as PyTorch ---- */
/* Training mode: normalizes with batch statistics (biased variance), saves
 * mean and 1/sqrt(var+eps) per channel for backward, and updates the running
 * stats with `momentum` using the unbiased variance.
 * inp/out (B,C,HW) (out may equal inp), gamma/beta/run_mean/run_var/save_* (C) */
void batchnorm_forward_train(const float *inp, const float *gamma, const float *beta,
                             float *run_mean, float *run_var, float momentum, int B, int C, int HW,
                             float *out, float *save_mean, float *save_invstd);
/* Inference mode: running statistics. inp/out (B,C,HW), out may equal inp. */
void batchnorm_forward_infer(const float *inp, const float *gamma, const float *beta,
                             const float *run_mean, const float *run_var, int B, int C, int HW,
                             float *out);
/* Backward of training mode. inp is the forward INPUT (B,C,HW).
 * dinp (B,C,HW) +=, dgamma (C) +=, dbeta (C) += */
void batchnorm_backward_train(const float *inp, const float *dout, const float *gamma,
                              const float *save_mean, const float *save_invstd, int B, int C,
                              int HW, float *dinp, float *dgamma, float *dbeta);
/* Fused BatchNorm + ReLU (one pass less over the map each way):
 * forward: out = max(bn(inp), 0), same arguments as the unfused ones. */
void batchnorm_relu_forward_train(const float *inp, const float *gamma, const float *beta,
                                  float *run_mean, float *run_var, float momentum, int B, int C,
                                  int HW, float *out, float *save_mean, float *save_invstd);
void batchnorm_relu_forward_infer(const float *inp, const float *gamma, const float *beta,
                                  const float *run_mean, const float *run_var, int B, int C,
                                  int HW, float *out);
/* Backward of y = relu(bn(inp)) given y (B,C,HW) and dout = dL/dy; y = NULL
 * means no ReLU (bn alone). Unlike the rest of this file dinp (B,C,HW) is
 * OVERWRITTEN (=, saving the caller a zeroing pass); dgamma, dbeta +=. */
void batchnorm_relu_backward_train(const float *inp, const float *y, const float *dout,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, int B, int C, int HW, float *dinp,
                                   float *dgamma, float *dbeta);

/* ---- elementwise ---- */
void relu_forward(const float *inp, float *out, size_t n); /* out may equal inp */
/* out is the forward OUTPUT; dinp += dout * (out > 0) */
void relu_backward(const float *out, const float *dout, float *dinp, size_t n);
void add_forward(const float *a, const float *b, float *out, size_t n); /* out = a + b */
/* out = max(a + b, 0): a residual add and its ReLU; out may equal a or b */
void add_relu_forward(const float *a, const float *b, float *out, size_t n);
/* In-place ReLU backward: g (n) = 0 where the forward output out (n) <= 0 */
void relu_mask(const float *out, float *g, size_t n);

/* ---- mean over height, with the (B,C,W) -> (T=W,B,C) transpose folded in ---- */
/* inp (B,C,H,W) -> out (W,B,C) */
void mean_height_forward(const float *inp, int B, int C, int H, int W, float *out);
/* dout (W,B,C) -> dinp (B,C,H,W) += */
void mean_height_backward(const float *dout, int B, int C, int H, int W, float *dinp);

/* ---- linear layer, as nn.Linear: y = x W^T + b ---- */
/* inp (N,IC), w (OC,IC), b (OC) or NULL -> out (N,OC) (overwritten) */
void linear_forward(const float *inp, const float *w, const float *b, int N, int IC, int OC,
                    float *out);
/* dout (N,OC) -> dinp (N,IC) +=, dw (OC,IC) +=, db (OC) += */
void linear_backward(const float *inp, const float *w, const float *dout, int N, int IC, int OC,
                     float *dinp, float *dw, float *db);

/* out (rows, n): every row a copy of row (n floats; row must not lie in out) */
void fill_rows(float *out, size_t rows, const float *row, int n);
/* p (n) = 0, split over the pool when large */
void zero_floats(float *p, size_t n);

/* ---- log-softmax over the last axis ---- */
/* inp (N,K) -> out (N,K); out may equal inp */
void log_softmax_forward(const float *inp, int N, int K, float *out);
/* out is the forward OUTPUT (N,K); dinp (N,K) += dout - exp(out) * sum(dout) */
void log_softmax_backward(const float *out, const float *dout, int N, int K, float *dinp);

/* ---- bidirectional multi-layer LSTM, as nn.LSTM(I, H, layers, bidirectional=True) ---- */
/* Weights of one direction of one layer (PyTorch names weight_ih_l{k}[_reverse], ...):
 * w_ih (4H, I_l) with I_0 = In and I_l = 2H above, w_hh (4H,H), b_ih (4H), b_hh (4H);
 * gate order i, f, g, o. An array of them is indexed [2*layer + dir], dir 0 =
 * forward, 1 = reverse. */
typedef struct {
    float *w_ih, *w_hh, *b_ih, *b_hh;
} LstmWeights;

typedef struct {
    int layers, T, B, In, H; /* In: input size (not I, which <complex.h> — pulled in by cblas.h — defines) */
} LstmShape;

/* Floats of forward state kept for backward (gates, cells, layer outputs). */
size_t bilstm_acts_floats(const LstmShape *s);
/* Scratch floats for bilstm_backward. */
size_t bilstm_workspace_floats(const LstmShape *s);
/* inp (T,B,In) -> out (T,B,2H): forward direction in [..., 0:H], reverse in
 * [..., H:2H]. Zero initial states. The input projections of all T steps are
 * one GEMM per direction and layer. acts: bilstm_acts_floats(s) floats. */
void bilstm_forward(const LstmShape *s, const LstmWeights *w, const float *inp, float *out,
                    float *acts);
/* dout (T,B,2H) -> dinp (T,B,In) +=, weight gradients += into dw[2*layers]
 * (same layout as w). dw == NULL: input gradient only (frozen encoder): no
 * weight-gradient GEMMs are run. dinp may be NULL. */
void bilstm_backward(const LstmShape *s, const LstmWeights *w, const LstmWeights *dw,
                     const float *inp, const float *acts, const float *dout, float *dinp,
                     float *ws);

/* ---- CTC loss (blank = class 0), as torch.nn.CTCLoss(reduction='mean') ---- */
/* Doubles of scratch for a batch of B sequences of length T with labels of at
 * most Lmax symbols. */
size_t ctc_workspace_doubles(int T, int B, int Lmax);
/* logp (T,B,K) log-probabilities (log-softmax outputs); every sequence has
 * length T. labels: the B label sequences concatenated (ids 1..K-1),
 * label_lens (B) (0 allowed). Returns mean over b of loss_b / max(len_b, 1).
 * A sample whose label cannot fit in T steps has loss +inf in losses[b] and
 * contributes 0 to the mean and zero gradient (PyTorch zero_infinity=True).
 * losses (B), may be NULL: per-sample negative log-likelihood.
 * dlogits (T,B,K), may be NULL: += scale * d(mean loss)/d(logits), where
 * logits are the inputs of the log-softmax that produced logp (that is,
 * softmax - posterior, per sample scaled by 1/(B*max(len,1))). */
double ctc_loss(const float *logp, int T, int B, int K, const int *labels, const int *label_lens,
                double *losses, float *dlogits, float scale, double *ws);
/* ctc_loss on the labeled subset of the batch: samples with labeled[b] == 0
 * (unlabeled data) are not part of the loss at all (losses[b] = 0, no
 * gradient, label_lens[b] symbols of labels skipped, normally 0) and the
 * mean is over the n labeled samples: sum over them of loss_b / max(len_b, 1),
 * divided by n, as CTCLoss(reduction='mean') on that subset; 0 when n = 0.
 * labeled NULL: every sample is labeled (= ctc_loss). */
double ctc_loss_labeled(const float *logp, int T, int B, int K, const int *labels,
                        const int *label_lens, const unsigned char *labeled, double *losses,
                        float *dlogits, float scale, double *ws);
/* Greedy decoding of sample b: argmax per step, collapse repeats, drop
 * blanks. out receives at most T class ids; returns their count. */
int ctc_greedy_decode(const float *logp, int T, int B, int K, int b, int *out);

/* ---- distances between teacher and student sequences (SPEC "The method") ---- */
typedef enum { DIST_L1 = 0, DIST_L2, DIST_COSINE, DIST_KL, DIST_COUNT } DistKind;
const char *distance_name(DistKind k);   /* "l1", "l2", "cosine", "kl" */
int distance_from_name(const char *name); /* -1 if unknown */
/* et (teacher), es (student): (N,C) with N = T*B rows.
 * l1: mean |es-et| over N*C; l2: mean (es-et)^2 over N*C;
 * cosine: mean over rows of 1 - cos(et_n, es_n) (norms clamped at 1e-8 as torch);
 * kl: mean over rows of tau^2 * KL(softmax(et_n/tau) || softmax(es_n/tau)).
 * Returns the distance; des (N,C), may be NULL: += scale * d(distance)/d(es). */
double distance_forward_backward(DistKind k, const float *et, const float *es, int N, int C,
                                 float temperature, float *des, float scale);

#endif
