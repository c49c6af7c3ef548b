/* gemm.c - gemm_f32 (gemm.h): cache-blocked, packed single-precision GEMM
 * with an AVX-512 and an AVX2 micro-kernel, cblas_sgemm as the fallback.
 *
 * For: the row-major, alpha 1, beta 0/1 products of conv.c, lstm.c, ops.c,
 * split over the threads of pool.c. Not for: alpha, column-major callers.
 *
 * The scheme is the textbook Goto/BLIS one. C (M,N) is cut into column
 * panels of NC, K into blocks of KC, rows into blocks of MC:
 *   for jc (NC):  for pc (KC):  pack op(B)[pc:+KC, jc:+NC]   -> bpack (L2/L3)
 *                                for ic (MC): pack op(A)[ic:+MC, pc:+KC] -> apack (L2)
 *                                  for jr (NR): for ir (MR): micro-kernel
 * The micro-kernel multiplies an MR x KC sliver of apack (stored k-major:
 * MR consecutive rows per k) by a KC x NR sliver of bpack (NR consecutive
 * columns per k, in L1 while ir sweeps the block), holding the MR x NR tile
 * of C in registers: each k is NR/W vector loads of B, MR broadcasts of A
 * and MR*NR/W FMAs. Packing pads partial slivers with zeros, so the kernel
 * always runs full tiles; a partial tile of C goes through a small buffer.
 * Both operands are packed whatever their transposes, so one kernel serves
 * NN, NT, TN and TT; packing is where the layouts differ: a row-contiguous
 * source sliver is copied, a k-contiguous one (A not transposed, B
 * transposed) goes through 8 x 8 AVX transposes.
 *
 * The AVX kernels are compiled with target attributes, so the rest of the
 * build keeps its flags; which one runs is decided once, at the first call,
 * with __builtin_cpu_supports (which also checks the OS saves the registers).
 *
 * Summation order: within a KC block each C element is one FMA chain in k
 * order; blocks are added in order. Rounding differs from OpenBLAS's only
 * in the order of those additions (error bound of any order: K u sum|ab|).
 */
#include "ocrkd/gemm.h"
#include "ocrkd/pool.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <immintrin.h>

#include "ocrkd/common.h"

/* C tile (MR,NR) at c (row stride ldc) = (accumulate ? c : 0) + a . b, with
 * a an MR x kc sliver (k-major) and b a kc x NR sliver (k-major). */
typedef void (*MicroKernel)(int kc, const float *a, const float *b, float *c, size_t ldc,
                            int accumulate);

typedef struct {
    const char *name;
    MicroKernel fn;
    int mr, nr;     /* tile */
    int kc, mc, nc; /* block caps (mc a multiple of mr, nc of nr) */
} Kernel;

#define MR_MAX 16
#define NR_MAX 64

/* One micro-kernel per (ISA, MR, NV vectors of W floats): the accumulators
 * are a 2-D array the unrolled loops turn into registers (MR*NV of them). */
#define DEFINE_KERNEL(fname, ISA, VEC, W, MR, NV, LOAD, STORE, SET1, FMA, ADD, ZERO)               \
    __attribute__((target(ISA))) static void fname(int kc, const float *a, const float *b,         \
                                                   float *c, size_t ldc, int accumulate) {         \
        VEC acc[MR][NV];                                                                           \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                      \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i][v] = ZERO();               \
        for (int k = 0; k < kc; k++) {                                                             \
            VEC bv[NV];                                                                            \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) bv[v] = LOAD(b + W * v);          \
            _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                \
                VEC ai = SET1(a[i]);                                                               \
                _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) acc[i][v] =                   \
                    FMA(ai, bv[v], acc[i][v]);                                                     \
            }                                                                                      \
            a += MR;                                                                               \
            b += W * NV;                                                                           \
        }                                                                                          \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                      \
            _Pragma("GCC unroll 8") for (int v = 0; v < NV; v++) {                                 \
            float *p = c + i * ldc + W * v;                                                        \
            STORE(p, accumulate ? ADD(LOAD(p), acc[i][v]) : acc[i][v]);                            \
        }                                                                                          \
    }

#define MR512 8
#define NV512 2
DEFINE_KERNEL(kernel_avx512, "avx512f,fma", __m512, 16, MR512, NV512, _mm512_loadu_ps,
              _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_setzero_ps)
#define MR256 6
#define NV256 2
DEFINE_KERNEL(kernel_avx2, "avx2,fma", __m256, 8, MR256, NV256, _mm256_loadu_ps, _mm256_storeu_ps,
              _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_setzero_ps)

/* kc: B sliver (kc x NR) stays in L1 (48 KB here) beside two A slivers;
 * mc x kc of A fits L2 many times over; kc x nc of B stays in L2. */
static const Kernel KERNELS[] = {
    [GEMM_AVX512] = {"avx512 8x32", kernel_avx512, MR512, 16 * NV512, 256, 192, 2048},
    [GEMM_AVX2] = {"avx2 6x16", kernel_avx2, MR256, 8 * NV256, 256, 144, 2048},
    [GEMM_CBLAS] = {"cblas", NULL, 0, 0, 0, 0, 0},
};

static int path_supported(GemmPath p) {
    __builtin_cpu_init();
    switch (p) {
    case GEMM_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case GEMM_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case GEMM_CBLAS:
        return 1;
    default:
        return 0;
    }
}

static GemmPath current = GEMM_AUTO;

/* The best path this CPU runs, unless env OCRKD_GEMM names one
 * (gemm.h); a name this CPU cannot run, or no name at all, is fatal. */
static GemmPath best_path(void) {
    const char *env = getenv("OCRKD_GEMM");
    if (env && *env && strcmp(env, "auto") != 0) {
        static const struct {
            const char *name;
            GemmPath path;
        } NAMES[] = {{"avx512", GEMM_AVX512},
                     {"avx2", GEMM_AVX2},
                     {"openblas", GEMM_CBLAS},
                     {"cblas", GEMM_CBLAS}};
        for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
            if (!strcmp(env, NAMES[i].name)) {
                if (!path_supported(NAMES[i].path))
                    fatal(EXIT_USAGE,
                          "OCRKD_GEMM=%s: this CPU cannot run it (try avx2 or openblas)", env);
                return NAMES[i].path;
            }
        fatal(EXIT_USAGE, "OCRKD_GEMM=%s: unknown; one of auto, avx512, avx2, openblas", env);
    }
    if (path_supported(GEMM_AVX512)) return GEMM_AVX512;
    if (path_supported(GEMM_AVX2)) return GEMM_AVX2;
    return GEMM_CBLAS;
}

GemmPath gemm_path(void) {
    if (current == GEMM_AUTO) current = best_path();
    return current;
}

int gemm_force_path(GemmPath path) {
    if (path == GEMM_AUTO) path = best_path();
    if (!path_supported(path)) return -1;
    current = path;
    return 0;
}

const char *gemm_path_name(GemmPath path) {
    if (path == GEMM_AUTO) path = best_path();
    return KERNELS[path].name;
}

/* ---- packing ---- */

/* dst[k * dstride + r] = src[r * ld + k] for r, k < 8: rows of src become
 * columns of dst (unpack pairs, then quads, then 128-bit halves). */
__attribute__((target("avx2"))) static void transpose8(const float *src, size_t ld, float *dst,
                                                       size_t dstride) {
    __m256 r[8], t[8], u[8];
    _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + i * ld);
    _Pragma("GCC unroll 4") for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);     /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    _Pragma("GCC unroll 2") for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);         /* a0 b0 c0 d0 | a4 .. d4 */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);     /* k 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44); /* k 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE); /* k 3 | 7 */
    }
    _Pragma("GCC unroll 4") for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(dst + k * dstride, _mm256_permute2f128_ps(u[k], u[k + 4], 0x20));
        _mm256_storeu_ps(dst + (k + 4) * dstride, _mm256_permute2f128_ps(u[k], u[k + 4], 0x31));
    }
}

/* Packs rows [r0, r0+rows) x k [k0, k0+kc) of a matrix X into slivers of
 * w rows, each k-major (w consecutive rows per k), rows past `rows` zero.
 * Element (r, k) is X[r*ld + k] when rk_layout, else X[k*ld + r]: A is
 * rk_layout unless transposed, B (as rows j of op(B)^T) only when it is. */
static void pack(const float *X, int ld, int rk_layout, int r0, int rows, int k0, int kc, int w,
                 float *dst) {
    const int fast = w % 8 == 0 && path_supported(GEMM_AVX2);
    for (int p = 0; p < rows; p += w) {
        const int n = MIN(w, rows - p);
        float *d = dst + (size_t)p * kc;
        if (rk_layout) {
            /* rows below r8, k below k8: 8 x 8 transposes; the rest one by one */
            const int r8 = fast ? n / 8 * 8 : 0, k8 = r8 ? kc / 8 * 8 : 0;
            for (int r = 0; r < r8; r += 8)
                for (int k = 0; k < k8; k += 8)
                    transpose8(X + (size_t)(r0 + p + r) * ld + k0 + k, (size_t)ld,
                               d + (size_t)k * w + r, (size_t)w);
            for (int r = 0; r < n; r++) {
                const float *s = X + (size_t)(r0 + p + r) * ld + k0;
                for (int k = r < r8 ? k8 : 0; k < kc; k++)
                    d[(size_t)k * w + r] = s[k];
            }
            if (n < w)
                for (int k = 0; k < kc; k++)
                    memset(d + (size_t)k * w + n, 0, (size_t)(w - n) * sizeof(float));
        } else {
            const float *s = X + (size_t)k0 * ld + r0 + p;
            if (n == 32 && w == 32) /* full slivers of constant size: inline copies */
                for (int k = 0; k < kc; k++)
                    memcpy(d + (size_t)k * 32, s + (size_t)k * ld, 32 * sizeof(float));
            else if (n == 16 && w == 16)
                for (int k = 0; k < kc; k++)
                    memcpy(d + (size_t)k * 16, s + (size_t)k * ld, 16 * sizeof(float));
            else if (n == 8 && w == 8)
                for (int k = 0; k < kc; k++)
                    memcpy(d + (size_t)k * 8, s + (size_t)k * ld, 8 * sizeof(float));
            else
                for (int k = 0; k < kc; k++) {
                    float *dk = d + (size_t)k * w;
                    memcpy(dk, s + (size_t)k * ld, (size_t)n * sizeof(float));
                    memset(dk + n, 0, (size_t)(w - n) * sizeof(float));
                }
        }
    }
}

/* Packing buffers, grown once to the largest blocks seen (per thread, so
 * threads can come later); never freed. */
static _Thread_local float *apack, *bpack;
static _Thread_local size_t apack_cap, bpack_cap;

/* Block length for a dimension of n with cap `cap`: as many blocks as the
 * cap needs, made equal (so K = 300 is 2 x 150, not 256 + 44), rounded up
 * to a multiple of unit. */
static int block_len(int n, int cap, int unit) {
    int nblocks = (n + cap - 1) / cap;
    int len = (n + nblocks - 1) / nblocks;
    return (len + unit - 1) / unit * unit;
}

/* c (m,n) (row stride ldc) = (accumulate ? c : 0) + t (m,n) (row stride nr) */
static void store_partial(float *c, size_t ldc, const float *t, int nr, int m, int n,
                          int accumulate) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++)
            c[i * ldc + j] = accumulate ? c[i * ldc + j] + t[i * nr + j] : t[i * nr + j];
}

/* C (M,n) (row stride ldc) = (acc ? C : 0) + op(A)[:, pc:+k] . bp, with bp
 * one KC block of n columns of op(B) as pack() lays them out: A packed MC
 * rows at a time into ap, then the micro-kernel over the tiles. Both
 * gemm_blocked and gemm_f32_packed run their products through this
 * (inlined: called once per KC block, a call measured 1 % of the step). */
static inline __attribute__((always_inline)) void
block_product(const Kernel *kr, int transA, int M, int n, int pc, int k, int acc, const float *A,
              int lda, const float *bp, float *ap, int mc, float *C, int ldc) {
    const int mr = kr->mr, nr = kr->nr;
    _Alignas(64) float tile[MR_MAX * NR_MAX];
    for (int ic = 0; ic < M; ic += mc) {
        const int m = MIN(mc, M - ic);
        pack(A, lda, !transA, ic, m, pc, k, mr, ap);
        for (int jr = 0; jr < n; jr += nr)
            for (int ir = 0; ir < m; ir += mr) {
                const float *a = ap + (size_t)ir * k, *b = bp + (size_t)jr * k;
                float *c = C + (size_t)(ic + ir) * ldc + jr;
                const int mm = MIN(mr, m - ir), nn = MIN(nr, n - jr);
                if (mm == mr && nn == nr) {
                    kr->fn(k, a, b, c, (size_t)ldc, acc);
                } else {
                    kr->fn(k, a, b, tile, (size_t)nr, 0);
                    store_partial(c, (size_t)ldc, tile, nr, mm, nn, acc);
                }
            }
    }
}

static void gemm_blocked(const Kernel *kr, int transA, int transB, int M, int N, int K,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc) {
    const int nr = kr->nr;
    const int kc = block_len(K, kr->kc, 1), mc = block_len(M, kr->mc, kr->mr),
              nc = block_len(N, kr->nc, nr);
    float *ap = grow_floats(&apack, &apack_cap, (size_t)mc * kc);
    float *bp = grow_floats(&bpack, &bpack_cap, (size_t)kc * nc);
    for (int jc = 0; jc < N; jc += nc) {
        const int n = MIN(nc, N - jc);
        for (int pc = 0; pc < K; pc += kc) {
            const int k = MIN(kc, K - pc), acc = pc > 0 || beta != 0.0f;
            pack(B, ldb, transB, jc, n, pc, k, nr, bp);
            block_product(kr, transA, M, n, pc, k, acc, A, lda, bp, ap, mc, C + jc, ldc);
        }
    }
}

/* ---- NT products with a long K: dot products, nothing packed ----
 *
 * C (M,N) (beta)+= A (M,K) . B (N,K)^T with both operands' rows
 * k-contiguous: the weight gradients (dY . col^T, Winograd's D V^T), whose
 * M and N are channel counts (16..128) and K the positions or tiles. The
 * blocked path packs both through 8 x 8 transposes and pads N = 16 to the
 * kernel's 32 columns (7.6 % of the demo teacher's training step in
 * transpose8 alone). Here a DR x DR block of C is DR^2 vector accumulators
 * over k, each a partial dot product per lane, summed across lanes at the
 * end of a KC block: per W floats of k, 2 DR loads and DR^2 FMAs. K runs in
 * blocks of DOT_KC (the DR + DR rows of a block stay in L1, all the
 * block's rows in L2), added into C in order. Rows past M or N repeat the
 * last row and are not stored. Each element of C is a fixed sum whatever
 * the split over threads (by rows or columns), so results stay
 * bit-identical for any thread count; they differ from the blocked path's
 * only in the order of the additions. */
#define DR 4
#define DOT_KC 1024
/* Where it wins (1 thread, Zen 4, AVX-512; row strides as Winograd's
 * planes): M = N = 16 2.0x the blocked path's rate (which pads N to 32),
 * 16 x 9 (the stem's im2col) 2.6x, 16 x 24 1.6x, 24 x 48 and 32 x 32 at
 * K 512 1.2x; it loses at 32 x 64 (0.77x) and 64 x 64 (0.74x), and below
 * K 256 the lane sums cost more than the packing saved. */
#define DOT_MIN_K 256
#define DOT_MAX_MN 1152 /* M N up to this, or a side of 16 or fewer */

#define DEFINE_DOT(fname, ISA, VEC, W, LOAD, FMA, ZERO, HSUM)                                      \
    __attribute__((target(ISA))) static void fname(int M, int N, int K, const float *A, int lda,   \
                                                   const float *B, int ldb, float beta, float *C,  \
                                                   int ldc) {                                      \
        for (int k0 = 0; k0 < K; k0 += DOT_KC) {                                                   \
            const int kc = MIN(DOT_KC, K - k0), kv = kc / W * W, acc = k0 > 0 || beta != 0.0f;     \
            for (int i0 = 0; i0 < M; i0 += DR)                                                     \
                for (int j0 = 0; j0 < N; j0 += DR) {                                               \
                    const float *a[DR], *b[DR];                                                    \
                    for (int r = 0; r < DR; r++) {                                                 \
                        a[r] = A + (size_t)MIN(i0 + r, M - 1) * lda + k0;                          \
                        b[r] = B + (size_t)MIN(j0 + r, N - 1) * ldb + k0;                          \
                    }                                                                              \
                    VEC s[DR][DR];                                                                 \
                    _Pragma("GCC unroll 4") for (int r = 0; r < DR; r++)                           \
                        _Pragma("GCC unroll 4") for (int q = 0; q < DR; q++) s[r][q] = ZERO();     \
                    for (int k = 0; k < kv; k += W) {                                              \
                        VEC av[DR], bv[DR];                                                        \
                        _Pragma("GCC unroll 4") for (int r = 0; r < DR; r++) {                     \
                            av[r] = LOAD(a[r] + k);                                                \
                            bv[r] = LOAD(b[r] + k);                                                \
                        }                                                                          \
                        _Pragma("GCC unroll 4") for (int r = 0; r < DR; r++)                       \
                            _Pragma("GCC unroll 4") for (int q = 0; q < DR; q++) s[r][q] =         \
                                FMA(av[r], bv[q], s[r][q]);                                        \
                    }                                                                              \
                    const int mr = MIN(DR, M - i0), nr = MIN(DR, N - j0);                          \
                    for (int r = 0; r < mr; r++)                                                   \
                        for (int q = 0; q < nr; q++) {                                             \
                            float t = HSUM(s[r][q]);                                               \
                            for (int k = kv; k < kc; k++)                                          \
                                t += a[r][k] * b[q][k];                                            \
                            float *c = C + (size_t)(i0 + r) * ldc + j0 + q;                        \
                            *c = acc ? *c + t : t;                                                 \
                        }                                                                          \
                }                                                                                  \
        }                                                                                          \
    }

__attribute__((target("avx2,fma"))) static float hsum256(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}
DEFINE_DOT(dot_avx512, "avx512f,fma", __m512, 16, _mm512_loadu_ps, _mm512_fmadd_ps,
           _mm512_setzero_ps, _mm512_reduce_add_ps)
DEFINE_DOT(dot_avx2, "avx2,fma", __m256, 8, _mm256_loadu_ps, _mm256_fmadd_ps, _mm256_setzero_ps,
           hsum256)

typedef void (*DotFn)(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc);

/* the dot path for this product, or NULL */
static DotFn dot_for(GemmPath p, int transA, int transB, int M, int N, int K) {
    if (transA || !transB || K < DOT_MIN_K || ((long)M * N > DOT_MAX_MN && MIN(M, N) > 16))
        return NULL;
    static int off = -1; /* env OCRKD_GEMM_NODOT=1: the blocked path only (for A/B benchmarks) */
    if (off < 0) off = getenv("OCRKD_GEMM_NODOT") && strcmp(getenv("OCRKD_GEMM_NODOT"), "0") != 0;
    if (off) return NULL;
    return p == GEMM_AVX512 ? dot_avx512 : p == GEMM_AVX2 ? dot_avx2 : NULL;
}

/* ---- threads: each thread of the pool (pool.h) one slice of C ----
 *
 * C is cut into pool_threads() slices of whole tiles, along N when it has
 * tiles enough, else along M; every thread runs gemm_blocked on its slice
 * with its own packing buffers. Each element of C is still one FMA chain
 * per KC block (KC depends on K only) and the blocks are added in the same
 * order, so the result is bit-identical for any number of threads. */

typedef struct {
    const Kernel *kr;
    DotFn dot; /* NULL: the blocked path */
    int transA, transB, M, N, K, lda, ldb, ldc, by_n, unit;
    const float *A, *B;
    float beta;
    float *C;
} Job;

#define MIN_THREADED_MACS (1L << 18) /* below: one thread (hand-off costs more) */

/* slice `part` of the job: tiles [part*n/parts, (part+1)*n/parts) */
static void run_part(void *arg, int part, int parts) {
    const Job *j = arg;
    const int len = j->by_n ? j->N : j->M;
    const int tiles = (len + j->unit - 1) / j->unit;
    const int t0 = (int)((long)tiles * part / parts), t1 = (int)((long)tiles * (part + 1) / parts);
    const int lo = t0 * j->unit, hi = MIN(len, t1 * j->unit);
    if (hi <= lo) return;
    if (j->dot) { /* A . B^T: a slice of B's rows, or of A's */
        if (j->by_n)
            j->dot(j->M, hi - lo, j->K, j->A, j->lda, j->B + (size_t)lo * j->ldb, j->ldb, j->beta,
                   j->C + lo, j->ldc);
        else
            j->dot(hi - lo, j->N, j->K, j->A + (size_t)lo * j->lda, j->lda, j->B, j->ldb, j->beta,
                   j->C + (size_t)lo * j->ldc, j->ldc);
        return;
    }
    if (j->by_n) {
        const float *b = j->transB ? j->B + (size_t)lo * j->ldb : j->B + lo;
        gemm_blocked(j->kr, j->transA, j->transB, j->M, hi - lo, j->K, j->A, j->lda, b, j->ldb,
                     j->beta, j->C + lo, j->ldc);
    } else {
        const float *a = j->transA ? j->A + lo : j->A + (size_t)lo * j->lda;
        gemm_blocked(j->kr, j->transA, j->transB, hi - lo, j->N, j->K, a, j->lda, j->B, j->ldb,
                     j->beta, j->C + (size_t)lo * j->ldc, j->ldc);
    }
}

int gemm_set_threads(int threads) {
    return pool_set_threads(threads);
}

int gemm_threads(void) {
    return pool_threads();
}

/* 2 M N K of every product so far, plus the credits (gemm_flop_count);
 * atomic: Winograd runs its GEMMs from the pool's threads */
static atomic_ullong g_flops;

double gemm_flop_count(void) {
    return (double)atomic_load_explicit(&g_flops, memory_order_relaxed);
}

void gemm_flop_credit(double flops) {
    if (flops > 0)
        atomic_fetch_add_explicit(&g_flops, (unsigned long long)flops, memory_order_relaxed);
    else if (flops < 0) /* a GEMM that is not the work counted (a transform) */
        atomic_fetch_sub_explicit(&g_flops, (unsigned long long)-flops, memory_order_relaxed);
}

/* ---- the core's FMA peak, measured ----
 * 12 independent accumulator chains (more than FMA latency x ports), so the
 * loop is bound by FMA throughput alone; FLOPs per FMA = 2 x lanes. */
#define PEAK_CHAINS 12
static volatile float peak_sink;
#define DEFINE_PEAK(fname, ISA, VEC, W, SET1, FMA, ADD, CVT)                                       \
    __attribute__((target(ISA))) static double fname(long iters) {                                 \
        VEC acc[PEAK_CHAINS];                                                                      \
        const VEC a = SET1(0.999999f), b = SET1(1e-7f);                                            \
        _Pragma("GCC unroll 12") for (int i = 0; i < PEAK_CHAINS; i++) acc[i] = SET1((float)i);    \
        for (long n = 0; n < iters; n++) {                                                         \
            _Pragma("GCC unroll 12") for (int i = 0; i < PEAK_CHAINS; i++) acc[i] =                \
                FMA(acc[i], a, b);                                                                 \
            __asm__ volatile("" : "+x"(acc[0]));                                                   \
        }                                                                                          \
        VEC s = acc[0];                                                                            \
        for (int i = 1; i < PEAK_CHAINS; i++)                                                      \
            s = ADD(s, acc[i]);                                                                    \
        peak_sink = CVT(s); /* the chains' result is used: the loop stays */                     \
        return 2.0 * W * PEAK_CHAINS * (double)iters;                                              \
    }
DEFINE_PEAK(peak_avx512, "avx512f,fma", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
            _mm512_reduce_add_ps)
__attribute__((target("avx"))) static float first256(__m256 v) {
    return _mm256_cvtss_f32(v);
}
DEFINE_PEAK(peak_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps,
            first256)

double gemm_peak_gflops(void) {
    static double peak;
    if (peak > 0) return peak;
    double (*loop)(long) = path_supported(GEMM_AVX512) ? peak_avx512
                           : path_supported(GEMM_AVX2) ? peak_avx2
                                                       : NULL;
    if (!loop) return 0;
    /* warm up (about 0.1 s): the clock ramps to its sustained FMA frequency
     * (and Intel grants its AVX-512 licence) only after a while; measured
     * cold, the peak came out below what long GEMM runs then reached */
    loop(30000000);
    for (int rep = 0; rep < 5; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        double flops = loop(4000000);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (sec > 0 && flops / sec / 1e9 > peak) peak = flops / sec / 1e9;
    }
    return peak;
}

void gemm_f32(int transA, int transB, int M, int N, int K, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K > 0)
        atomic_fetch_add_explicit(&g_flops, 2ull * (unsigned)M * (unsigned)N * (unsigned)K,
                                  memory_order_relaxed);
    GemmPath p = gemm_path();
    if (p == GEMM_CBLAS) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, beta, C,
                    ldc);
        return;
    }
    if (K <= 0) {
        if (beta == 0.0f)
            for (int i = 0; i < M; i++)
                memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        return;
    }
    const Kernel *kr = &KERNELS[p];
    const DotFn dot = dot_for(p, transA, transB, M, N, K);
    const int unit_n = dot ? DR : kr->nr, unit_m = dot ? DR : kr->mr;
    const int nt = (N + unit_n - 1) / unit_n, mt = (M + unit_m - 1) / unit_m;
    int parts = pool_threads();
    if (parts > 1 && (long)M * N * K >= MIN_THREADED_MACS && (nt >= parts || mt >= parts)) {
        const int by_n = nt >= parts * 2 || nt >= mt;
        Job job = {.kr = kr, .dot = dot, .transA = transA, .transB = transB, .M = M, .N = N,
                   .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .by_n = by_n,
                   .unit = by_n ? unit_n : unit_m, .A = A, .B = B, .beta = beta, .C = C};
        pool_run(MIN(parts, by_n ? nt : mt), run_part, &job);
        return;
    }
    if (dot)
        dot(M, N, K, A, lda, B, ldb, beta, C, ldc);
    else
        gemm_blocked(kr, transA, transB, M, N, K, A, lda, B, ldb, beta, C, ldc);
}

/* ---- a B operand packed once (gemm.h: GemmPackedB) ----
 *
 * Layout: for each KC block pc (the same block_len split as gemm_blocked),
 * all of op(B)'s columns as pack() lays out one panel: slivers of nr
 * columns, k-major, the last one zero-padded; the block starts at
 * Npad * pc floats (Npad = N rounded up to nr). The product then runs
 * gemm_blocked's loops without the jc panels (block_product for each KC
 * block): each C element is still one FMA chain per KC block, the blocks
 * added in order, through the same micro-kernel and partial-tile path -
 * the same arithmetic, bit for bit. */

void gemm_pack_b(GemmPackedB *pb, int transA, int M, int transB, int K, int N, const float *B,
                 int ldb) {
    pb->B = B, pb->transA = transA, pb->M = M, pb->transB = transB, pb->K = K, pb->N = N;
    pb->ldb = ldb, pb->packed = 0;
    const GemmPath p = gemm_path();
    if (p == GEMM_CBLAS || M <= 0 || N <= 0 || K <= 0 || dot_for(p, transA, transB, M, N, K))
        return; /* gemm_f32 does these without packing B (or packs nothing of ours) */
    const Kernel *kr = &KERNELS[p];
    const int nr = kr->nr, kc = block_len(K, kr->kc, 1);
    const size_t npad = (size_t)(N + nr - 1) / nr * nr;
    grow_floats(&pb->buf, &pb->cap, npad * (size_t)K);
    for (int pc = 0; pc < K; pc += kc)
        pack(B, ldb, transB, 0, N, pc, MIN(kc, K - pc), nr, pb->buf + npad * (size_t)pc);
    pb->packed = 1, pb->path = (int)p;
}

void gemm_f32_packed(const GemmPackedB *pb, const float *A, int lda, float beta, float *C, int ldc) {
    const int M = pb->M, N = pb->N, K = pb->K, transA = pb->transA;
    const GemmPath p = gemm_path();
    if (!pb->packed || (int)p != pb->path) {
        gemm_f32(transA, pb->transB, M, N, K, A, lda, pb->B, pb->ldb, beta, C, ldc);
        return;
    }
    atomic_fetch_add_explicit(&g_flops, 2ull * (unsigned)M * (unsigned)N * (unsigned)K,
                              memory_order_relaxed);
    const Kernel *kr = &KERNELS[p];
    const int nr = kr->nr;
    const int kc = block_len(K, kr->kc, 1), mc = block_len(M, kr->mc, kr->mr);
    const size_t npad = (size_t)(N + nr - 1) / nr * nr;
    float *ap = grow_floats(&apack, &apack_cap, (size_t)mc * kc);
    for (int pc = 0; pc < K; pc += kc)
        block_product(kr, transA, M, N, pc, MIN(kc, K - pc), pc > 0 || beta != 0.0f, A, lda,
                      pb->buf + npad * (size_t)pc, ap, mc, C, ldc);
}

void gemm_packed_b_free(GemmPackedB *pb) {
    free(pb->buf);
    pb->buf = NULL, pb->cap = 0, pb->packed = 0;
}
