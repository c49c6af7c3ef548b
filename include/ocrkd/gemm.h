/* gemm.h - ocrkd's own single-precision GEMM (src/nn/gemm.c), so the
 * speed of the convolutions and the LSTM does not depend on which OpenBLAS
 * kernels a cluster forces (OPENBLAS_CORETYPE=Haswell on an AVX-512 node).
 *
 * Row-major, alpha 1, beta 0 or 1 - exactly what conv.c, lstm.c and ops.c
 * need, nothing more:
 *   C (M,N) = beta * C + op(A) (M,K) . op(B) (K,N)
 * op(A) is A (M,K) with row stride lda, or with transA A^T for A (K,M);
 * op(B) likewise. beta 0 never reads C (it may hold NaN).
 * Threads: gemm_set_threads(n) (= pool_set_threads, pool.h) splits each
 * large enough product over n threads (the caller and the pool's n - 1);
 * results are bit-identical for any n.
 * The path: the best this CPU runs (AVX-512, AVX2, else OpenBLAS's
 * cblas_sgemm), or env OCRKD_GEMM = auto | avx512 | avx2 | openblas.
 * On the AVX paths an NT product with K >= 256 and small M N (a weight
 * gradient of a narrow conv) runs as dot products, unpacked; env
 * OCRKD_GEMM_NODOT=1 keeps it on the blocked kernels (A/B timing).
 * Not for: alpha != 1, other betas, column-major, double.
 */
#ifndef OCRKD_GEMM_H
#define OCRKD_GEMM_H

#include <stddef.h>

void gemm_f32(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc);

/* One product shape op(A) (M,K) . op(B) (K,N) run many times with the
 * same B and other A's (the LSTM's steps: h_{t-1} W_hh^T, dg_t W_hh):
 * gemm_pack_b packs B once in the blocked kernels' layout, and
 * gemm_f32_packed(pb, A, lda, beta, C, ldc) is then gemm_f32(transA,
 * transB, M, N, K, A, lda, B, ldb, beta, C, ldc) bit for bit, without
 * packing B again, on the calling thread (the LSTM calls it from its
 * directions' pool threads). Where gemm_f32 takes the dot or the cblas
 * path for this shape, nothing is packed and the products call gemm_f32
 * with B; likewise after gemm_force_path changes the path. B must not
 * change between gemm_pack_b and the products. buf is grown by
 * gemm_pack_b and kept for the next packing; gemm_packed_b_free frees it. */
typedef struct {
    const float *B;
    int transA, M, transB, K, N, ldb;
    float *buf;
    size_t cap;
    int packed; /* 0: the products call gemm_f32 with B */
    int path;   /* the GemmPath it was packed for */
} GemmPackedB;

void gemm_pack_b(GemmPackedB *pb, int transA, int M, int transB, int K, int N, const float *B,
                 int ldb);
void gemm_f32_packed(const GemmPackedB *pb, const float *A, int lda, float beta, float *C, int ldc);
void gemm_packed_b_free(GemmPackedB *pb);

/* The implementations gemm_f32 can run. GEMM_AUTO: the best this CPU
 * supports (AVX-512 > AVX2 > cblas), chosen once at the first call. */
typedef enum { GEMM_AUTO, GEMM_AVX512, GEMM_AVX2, GEMM_CBLAS } GemmPath;

/* For tests and benchmarks: makes gemm_f32 use `path` from now on.
 * Returns 0, or -1 (nothing changed) when this CPU cannot run it. */
int gemm_force_path(GemmPath path);
/* The path gemm_f32 runs now (never GEMM_AUTO) and its name
 * ("avx512 8x32", "avx2 6x16", "cblas"). */
GemmPath gemm_path(void);
const char *gemm_path_name(GemmPath path);

/* Threads for gemm_f32 (and pool.h's other users) from now on (clamped to
 * 1..POOL_MAX_THREADS);
 * returns the count set. The OpenBLAS path uses OpenBLAS's own threads
 * (openblas_set_num_threads), not these. */
int gemm_set_threads(int threads);
int gemm_threads(void);

/* 2 M N K summed over every gemm_f32 call of this process (any path),
 * plus the credits of gemm_flop_credit: the FLOPs of a phase are the
 * difference of two readings. */
double gemm_flop_count(void);
/* Counts flops more: what a faster algorithm saved against the direct
 * method (Winograd credits the direct convolution's 2 B OC C 9 H W less
 * its own GEMMs'), so rates stay in the model's FLOPs; a negative credit
 * takes back a GEMM that is not the model's work (Winograd's weight
 * transform). */
void gemm_flop_credit(double flops);
/* One core's single-precision FMA peak in GFLOP/s, measured once (about
 * 0.2 s) with an FMA-bound loop in the widest vectors this CPU runs; 0 on
 * a CPU without AVX2/FMA. */
double gemm_peak_gflops(void);

#endif
