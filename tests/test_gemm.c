/* test_gemm.c - gemm_f32 on every path this CPU runs (AVX-512, AVX2,
 * cblas), forced one after the other, against a double-precision naive
 * product: NN, NT, TN, TT; beta 0 and 1; sizes 1, 3, 17, 33... that leave
 * partial tiles in M, N and K; shapes that cross the KC, MC and NC blocks;
 * leading dimensions wider than the matrices.
 *
 * Tolerance, per element: |got - ref| <= (K + 2) u S with u = 2^-24 and
 * S = sum_k |a_ik b_kj| + beta |c_ij|. Any order of summing K products and
 * C in float (with or without FMA, blocked or not) stays within
 * gamma_(K+1) S (Higham, Accuracy and Stability, 3.1), plus u/2 |ref| for
 * the final rounding: (K + 2) u S covers both and holds for OpenBLAS too.
 * It is tight enough to fail on any wrong, missing or doubled term: one
 * term is ~S/K, far above K u S for every K here (K <= 2061: 1.2e-4 S).
 *
 * Poison: padding of A and B (between width and leading dimension) is NaN,
 * so reading it fails; padding of C is a sentinel that must survive; with
 * beta 0, C starts as NaN, so reading it fails too.
 *
 * Threads: with 2, 3 and 5 threads, C must be bit-identical to the one
 * thread result (each element keeps its summation order), for shapes split
 * along N and along M, and products too small to split.
 *
 * Packed B (gemm_pack_b, gemm_f32_packed): bit-identical to gemm_f32 on
 * every path, several products per packing. */
#include <math.h>
#include <string.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"
#include "test.h"

static Rng rng;

#define SENTINEL 12345.0f
#define LD_PAD 3

/* rows x cols matrix with row stride cols + LD_PAD: values N(0,1), padding p */
static float *matrix(int rows, int cols, float pad) {
    const int ld = cols + LD_PAD;
    float *x = xalloc_floats((size_t)rows * ld + 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < ld; c++)
            x[(size_t)r * ld + c] = c < cols ? rng_normal(&rng) : pad;
    return x;
}

/* 1 when columns [N, ldc) of C's M rows still hold SENTINEL */
static int padding_kept(const float *C, int M, int N, int ldc) {
    for (int r = 0; r < M; r++)
        for (int c = N; c < ldc; c++)
            if (C[(size_t)r * ldc + c] != SENTINEL) return 0;
    return 1;
}

/* worst |got - ref| / tol over C, and whether C's padding is intact */
typedef struct {
    double worst;
    int pad_ok;
} Result;

static Result run_case(int tA, int tB, int M, int N, int K, float beta) {
    /* stored shapes: A (M,K) or (K,M); B (K,N) or (N,K) */
    const int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
    const int lda = ac + LD_PAD, ldb = bc + LD_PAD, ldc = N + LD_PAD;
    float *A = matrix(ar, ac, NAN), *B = matrix(br, bc, NAN), *C = matrix(M, N, SENTINEL);
    float *C0 = xalloc_floats((size_t)M * ldc);
    if (beta == 0.0f)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = NAN;
    memcpy(C0, C, (size_t)M * ldc * sizeof(float));
    gemm_f32(tA, tB, M, N, K, A, lda, B, ldb, beta, C, ldc);
    Result r = {0, 1};
    const double u = ldexp(1.0, -24);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            const float got = C[(size_t)i * ldc + j];
            if (j >= N) {
                r.pad_ok &= got == SENTINEL;
                continue;
            }
            double ref = 0, S = 0;
            if (beta != 0.0f) {
                ref = C0[(size_t)i * ldc + j];
                S = fabs(ref);
            }
            for (int k = 0; k < K; k++) {
                double a = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                ref += a * b;
                S += fabs(a * b);
            }
            const double tol = (K + 2) * u * S + 1e-30;
            const double e = fabs((double)got - ref) / tol;
            if (!(e <= r.worst)) r.worst = isnan(e) ? INFINITY : e;
        }
    free(A);
    free(B);
    free(C);
    free(C0);
    return r;
}

static const int SMALL[] = {1, 3, 8, 17, 33, 50};
#define NSMALL (int)(sizeof SMALL / sizeof SMALL[0])

/* (M, N, K) that cross the block caps: KC 256 (K split in two), MC 144/192,
 * NC 2048, with partial tiles left in each; and NT products the dot path
 * takes (K >= 256, M N <= 64 x 64): partial 4 x 4 blocks, K past a vector
 * multiple and across its 1024-float K blocks. */
static const int LARGE[][3] = {{197, 2081, 300}, {9, 4500, 27}, {611, 40, 520}, {64, 130, 577},
                               {17, 33, 1500},   {16, 16, 512}, {3, 50, 300},   {64, 64, 2061}};
#define NLARGE (int)(sizeof LARGE / sizeof LARGE[0])

static void test_path(GemmPath p) {
    if (gemm_force_path(p) != 0) {
        printf("  -- %s: not supported on this CPU, skipped\n", gemm_path_name(p));
        return;
    }
    CHECK(gemm_path() == p, "forced %s, running %s", gemm_path_name(p),
          gemm_path_name(gemm_path()));
    for (int t = 0; t < 4; t++)
        for (int bi = 0; bi < 2; bi++) {
            const int tA = t >> 1, tB = t & 1;
            const float beta = (float)bi;
            double worst = 0;
            int pad_ok = 1, cases = 0;
            for (int m = 0; m < NSMALL; m++)
                for (int n = 0; n < NSMALL; n++)
                    for (int k = 0; k < NSMALL; k++, cases++) {
                        Result r = run_case(tA, tB, SMALL[m], SMALL[n], SMALL[k], beta);
                        worst = fmax(worst, r.worst);
                        pad_ok &= r.pad_ok;
                    }
            for (int l = 0; l < NLARGE; l++, cases++) {
                Result r = run_case(tA, tB, LARGE[l][0], LARGE[l][1], LARGE[l][2], beta);
                worst = fmax(worst, r.worst);
                pad_ok &= r.pad_ok;
            }
            CHECK(worst <= 1.0, "%s %c%c beta %g: error %.3g x tolerance", gemm_path_name(p),
                  tA ? 'T' : 'N', tB ? 'T' : 'N', beta, worst);
            CHECK(pad_ok, "%s %c%c beta %g: wrote into C's padding", gemm_path_name(p),
                  tA ? 'T' : 'N', tB ? 'T' : 'N', beta);
            printf("  %-12s %c%c beta %g: %d shapes, worst error %.3g x tolerance\n",
                   gemm_path_name(p), tA ? 'T' : 'N', tB ? 'T' : 'N', beta, cases, worst);
        }
}

/* K = 0: C = beta C (ocrkd never asks, but it must not read A or B). */
static void test_empty_k(GemmPath p) {
    if (p == GEMM_CBLAS || gemm_force_path(p) != 0) return;
    float c[6] = {1, 2, 3, 4, 5, 6};
    gemm_f32(0, 0, 2, 3, 0, NULL, 1, NULL, 3, 1.0f, c, 3);
    CHECK(c[0] == 1 && c[5] == 6, "%s K=0 beta 1 changed C", gemm_path_name(p));
    gemm_f32(0, 0, 2, 3, 0, NULL, 1, NULL, 3, 0.0f, c, 3);
    CHECK(c[0] == 0 && c[5] == 0, "%s K=0 beta 0 did not zero C", gemm_path_name(p));
}

/* Threaded products equal the single-threaded one bit for bit, padding kept. */
static void test_threads(GemmPath p) {
    if (p == GEMM_CBLAS || gemm_force_path(p) != 0) return;
    /* split along N, along M (few N tiles), below the threading size, K blocked */
    static const int SHAPES[][3] = {{16, 1024, 144}, {128, 64, 1152},  {300, 40, 520},
                                    {8, 8, 8},       {197, 2081, 300}, {64, 256, 64},
                                    {48, 40, 2100},  {6, 64, 4096}}; /* the last two: NT by dots */
    int identical = 1, pad_ok = 1, cases = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
        for (int t = 0; t < 4; t++) {
            const int tA = t >> 1, tB = t & 1, M = SHAPES[s][0], N = SHAPES[s][1], K = SHAPES[s][2];
            const int ar = tA ? K : M, ac = tA ? M : K, br = tB ? N : K, bc = tB ? K : N;
            const int lda = ac + LD_PAD, ldb = bc + LD_PAD, ldc = N + LD_PAD;
            float *A = matrix(ar, ac, NAN), *B = matrix(br, bc, NAN);
            float *C1 = matrix(M, N, SENTINEL), *Cn = matrix(M, N, SENTINEL);
            memcpy(Cn, C1, (size_t)M * ldc * sizeof(float));
            const float beta = (float)(t & 1);
            gemm_set_threads(1);
            gemm_f32(tA, tB, M, N, K, A, lda, B, ldb, beta, C1, ldc);
            static const int THREADS[] = {2, 3, 5};
            for (int i = 0; i < 3; i++, cases++) {
                float *C = matrix(M, N, SENTINEL);
                memcpy(C, Cn, (size_t)M * ldc * sizeof(float));
                gemm_set_threads(THREADS[i]);
                gemm_f32(tA, tB, M, N, K, A, lda, B, ldb, beta, C, ldc);
                identical &= memcmp(C, C1, (size_t)M * ldc * sizeof(float)) == 0;
                pad_ok &= padding_kept(C, M, N, ldc);
                free(C);
            }
            free(A);
            free(B);
            free(C1);
            free(Cn);
        }
    gemm_set_threads(1);
    CHECK(identical, "%s: threaded products differ from the one-thread product", gemm_path_name(p));
    CHECK(pad_ok, "%s: threaded products wrote into C's padding", gemm_path_name(p));
    CHECK(gemm_threads() == 1, "gemm_threads() after gemm_set_threads(1)");
    printf("  %-12s threads 2, 3, 5: %d products bit-identical to one thread\n", gemm_path_name(p),
           cases);
}

/* gemm_f32_packed with B packed once (gemm_pack_b) equals gemm_f32 bit for
 * bit, for several A against the same packing (as the LSTM's steps use
 * it), padding kept; shapes gemm_f32 runs unpacked (cblas, the dot path)
 * are left unpacked and go through gemm_f32 itself. */
static void test_packed(GemmPath p) {
    if (gemm_force_path(p) != 0) return;
    /* the LSTM's steps (B 8, H 64: NT 8x256x64, NN 8x64x256), partial
     * slivers and tiles, two KC blocks, M over MC, a dot-path NT */
    static const int SHAPES[][3] = {{8, 256, 64}, {8, 64, 256},  {3, 50, 17},  {17, 33, 300},
                                    {197, 40, 577}, {1, 1, 1},   {8, 1024, 256}, {64, 130, 64}};
    GemmPackedB pb = {0};
    int identical = 1, pad_ok = 1, packed_ok = 1, flops_ok = 1, cases = 0, packed_shapes = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++)
        for (int t = 0; t < 8; t++) {
            const int tA = t >> 2 & 1, tB = t >> 1 & 1, M = SHAPES[s][0], N = SHAPES[s][1],
                      K = SHAPES[s][2];
            const float beta = (float)(t & 1);
            const int br = tB ? N : K, bc = tB ? K : N, ldb = bc + LD_PAD, ldc = N + LD_PAD;
            const int ar = tA ? K : M, ac = tA ? M : K, lda = ac + LD_PAD;
            float *B = matrix(br, bc, NAN);
            gemm_pack_b(&pb, tA, M, tB, K, N, B, ldb);
            /* packed unless gemm_f32 itself packs nothing for the shape: cblas,
             * or the dot path (gemm.c: NT, K >= 256, M N <= 1152 or a side <= 16) */
            const int dot = !tA && tB && K >= 256 && (M * N <= 1152 || M <= 16 || N <= 16);
            packed_ok &= pb.packed == (p != GEMM_CBLAS && !dot);
            packed_shapes += pb.packed;
            for (int rep = 0; rep < 3; rep++, cases++) { /* new A and C each time */
                float *A = matrix(ar, ac, NAN), *C1 = matrix(M, N, SENTINEL);
                float *C = xalloc_floats((size_t)M * ldc + 1);
                memcpy(C, C1, ((size_t)M * ldc + 1) * sizeof(float));
                gemm_f32(tA, tB, M, N, K, A, lda, B, ldb, beta, C1, ldc);
                const double f0 = gemm_flop_count();
                gemm_f32_packed(&pb, A, lda, beta, C, ldc);
                flops_ok &= gemm_flop_count() - f0 == 2.0 * M * N * K;
                identical &= memcmp(C, C1, (size_t)M * ldc * sizeof(float)) == 0;
                pad_ok &= padding_kept(C, M, N, ldc);
                free(A);
                free(C1);
                free(C);
            }
            free(B);
        }
    /* packed for one AVX path, run on the other (another sliver width):
     * gemm_f32 with B, same bits */
    const GemmPath other = p == GEMM_AVX512 ? GEMM_AVX2 : GEMM_AVX512;
    if (p != GEMM_CBLAS && gemm_force_path(other) == 0) {
        const int M = 5, N = 40, K = 70, ldb = N + LD_PAD, lda = K + LD_PAD, ldc = N + LD_PAD;
        float *A = matrix(M, K, NAN), *B = matrix(K, N, NAN), *C1 = matrix(M, N, SENTINEL);
        float *C = matrix(M, N, SENTINEL);
        gemm_force_path(p);
        gemm_pack_b(&pb, 0, M, 0, K, N, B, ldb);
        gemm_force_path(other);
        gemm_f32(0, 0, M, N, K, A, lda, B, ldb, 0.0f, C1, ldc);
        gemm_f32_packed(&pb, A, lda, 0.0f, C, ldc);
        CHECK(!memcmp(C, C1, (size_t)M * ldc * sizeof(float)),
              "a packing for %s run on %s differs from gemm_f32", gemm_path_name(p),
              gemm_path_name(other));
        gemm_force_path(p);
        free(A), free(B), free(C1), free(C);
    }
    gemm_packed_b_free(&pb);
    CHECK(identical, "%s: gemm_f32_packed differs from gemm_f32", gemm_path_name(p));
    CHECK(pad_ok, "%s: gemm_f32_packed wrote into C's padding", gemm_path_name(p));
    CHECK(packed_ok, "%s: gemm_pack_b %s", gemm_path_name(p),
          p == GEMM_CBLAS ? "packed for the cblas path" : "did not pack");
    CHECK(flops_ok, "%s: gemm_f32_packed did not count 2 M N K flops", gemm_path_name(p));
    CHECK(pb.buf == NULL && pb.cap == 0, "gemm_packed_b_free left its buffer");
    printf("  %-12s packed B: %d products bit-identical to gemm_f32 (%d of %d packings packed)\n",
           gemm_path_name(p), cases, packed_shapes, cases / 3);
}

int main(void) {
    rng_seed(&rng, 7);
    printf("gemm_f32 default path on this CPU: %s\n", gemm_path_name(GEMM_AUTO));
    const GemmPath paths[] = {GEMM_AVX512, GEMM_AVX2, GEMM_CBLAS};
    for (int i = 0; i < 3; i++) {
        test_path(paths[i]);
        test_empty_k(paths[i]);
        test_threads(paths[i]);
        test_packed(paths[i]);
    }
    CHECK(gemm_force_path(GEMM_AUTO) == 0, "GEMM_AUTO refused");
    CHECK(gemm_path() != GEMM_AUTO, "gemm_path() returned GEMM_AUTO");
    TEST_END();
}
