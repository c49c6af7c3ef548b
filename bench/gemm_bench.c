/* gemm_bench.c - gemm_f32 (src/nn/gemm.c) against cblas_sgemm on the GEMMs
 * one ocrkd training step really runs, one thread.
 *
 *   make bench-gemm                                (builds bin/bench_gemm)
 *   OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell  bin/bench_gemm [MODEL...]
 *   OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=SkylakeX bin/bench_gemm [MODEL...]
 *   OPENBLAS_NUM_THREADS=1 bin/bench_gemm [MODEL...]  (OPENBLAS_CORETYPE unset)
 * MODEL: small (bench/small.yaml: ResNet-18 w16, BiLSTM 2x64, D 64, batch
 * 32), small-teacher (ResNet-34 w16), full (bench/full.yaml: ResNet-18 w64,
 * BiLSTM 2x256, D 256, batch 64), full-teacher (ResNet-101 w64); default
 * small and full. Images are 32 x 128 (T = 32). --min-time S: seconds per
 * measurement (default 0.3). --path avx512|avx2: gemm_f32's kernel.
 * --list: print the shapes and calls per step, time nothing.
 *
 * Unset OPENBLAS_CORETYPE is not what ocrkd runs with on a CPU OpenBLAS
 * 0.3.21 does not know: bin/ocrkd re-executes itself with SkylakeX (or
 * Haswell) then (src/util/blas_core.c); this binary does not, so unset
 * measures OpenBLAS's own fallback choice. Set the variable to compare
 * with what ocrkd runs.
 *
 * The shapes follow conv.c, lstm.c, ops.c and resnet.c's plan: a conv with
 * at least 256 output positions runs one GEMM per sample (N = OH*OW), a
 * smaller one folds the batch into N (chunked so K*N + OC*N <= 8M floats);
 * 1x1 stride-1 convs run on the input directly; forward NN (OC, N, K),
 * weight gradient NT (OC, K, N), input gradient TN (K, N, OC). The LSTM:
 * input projection NT (T*B, 4H, In), recurrence NT (B, 4H, H) per step,
 * backward dh NN (B, H, 4H) per step, dx NN (T*B, In, 4H), weight gradients
 * TN (4H, In, T*B) and (4H, H, (T-1)*B). Linear layers (neck, classifier)
 * NT forward, NN dinp, TN dw. Every call counts once per training step
 * (everything trained), so the totals weigh shapes as a step does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"

typedef struct {
    const char *site; /* call site, as in the source */
    int tA, tB, M, N, K;
    float beta;
    int calls; /* per training step */
} Shape;

typedef struct {
    Shape *v;
    int n, cap;
} Shapes;

static void add(Shapes *s, const char *site, int tA, int tB, int M, int N, int K, float beta,
                int calls) {
    for (int i = 0; i < s->n; i++) {
        Shape *o = &s->v[i];
        if (!strcmp(o->site, site) && o->tA == tA && o->tB == tB && o->M == M && o->N == N &&
            o->K == K && o->beta == beta) {
            o->calls += calls;
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (Shape){site, tA, tB, M, N, K, beta, calls};
}

#define CONV_WS_CAP ((size_t)8 << 20) /* resnet.c */
#define PER_SAMPLE_MIN_POSITIONS 256  /* conv.c */

/* The GEMMs of one conv (forward and backward) on B samples of (C,H,W). */
static void conv(Shapes *s, int B, int C, int H, int W, int OC, int k, int sh, int sw,
                 int need_dinp, int *OH, int *OW) {
    const int p = k / 2, oh = (H + 2 * p - k) / sh + 1, ow = (W + 2 * p - k) / sw + 1;
    const int P = oh * ow, K = C * k * k;
    *OH = oh;
    *OW = ow;
    if (k == 1 && sh == 1 && sw == 1) { /* pointwise: per sample, on the input */
        add(s, "conv fwd 1x1", 0, 0, OC, H * W, C, 0, B);
        add(s, "conv dw 1x1", 0, 1, OC, C, H * W, 1, B);
        if (need_dinp) add(s, "conv dinp 1x1", 1, 0, C, H * W, OC, 1, B);
        return;
    }
    int chunk = B, calls = B, N = P;
    if (P < PER_SAMPLE_MIN_POSITIONS) {
        while (chunk > 1 && (size_t)(K + OC) * chunk * P > CONV_WS_CAP)
            chunk = (chunk + 1) / 2;
        N = chunk * P;
        calls = (B + chunk - 1) / chunk; /* the last chunk may be smaller; counted full */
    }
    add(s, "conv fwd", 0, 0, OC, N, K, 0, calls);
    add(s, "conv dw", 0, 1, OC, K, N, 1, calls);
    if (need_dinp) add(s, "conv dinp", 1, 0, K, N, OC, 0, calls);
}

typedef struct {
    const char *name;
    int blocks[4], bottleneck, width, D, H, layers, batch, classes;
} Model;

static const Model MODELS[] = {
    {"small", {2, 2, 2, 2}, 0, 16, 64, 64, 2, 32, 37},
    {"small-teacher", {3, 4, 6, 3}, 0, 16, 64, 64, 2, 32, 37},
    {"full", {2, 2, 2, 2}, 0, 64, 256, 256, 2, 64, 37},
    {"full-teacher", {3, 4, 23, 3}, 1, 64, 256, 256, 2, 64, 37},
};

static const int STRIDE_H[4] = {2, 2, 2, 2}, STRIDE_W[4] = {2, 2, 1, 1}; /* params.c */

static void model_shapes(const Model *m, Shapes *s) {
    const int B = m->batch;
    int H, W, ch = m->width;
    conv(s, B, 1, 32, 128, m->width, 3, 1, 1, 0, &H, &W); /* stem: no image gradient */
    for (int st = 0; st < 4; st++)
        for (int i = 0; i < m->blocks[st]; i++) {
            const int planes = m->width << st, sh = i ? 1 : STRIDE_H[st], sw = i ? 1 : STRIDE_W[st];
            const int out = m->bottleneck ? 4 * planes : planes;
            int h, w, h2, w2, hd, wd;
            if (m->bottleneck) {
                conv(s, B, ch, H, W, planes, 1, 1, 1, 1, &h, &w);
                conv(s, B, planes, h, w, planes, 3, sh, sw, 1, &h2, &w2);
                conv(s, B, planes, h2, w2, out, 1, 1, 1, 1, &h2, &w2);
            } else {
                conv(s, B, ch, H, W, planes, 3, sh, sw, 1, &h, &w);
                conv(s, B, planes, h, w, planes, 3, 1, 1, 1, &h2, &w2);
            }
            if (sh != 1 || sw != 1 || ch != out) conv(s, B, ch, H, W, out, 1, sh, sw, 1, &hd, &wd);
            ch = out;
            H = h2;
            W = w2;
        }
    const int T = W, N = T * B, D = m->D, Hh = m->H;
    add(s, "neck fwd", 0, 1, N, D, ch, 0, 1); /* linear_forward: (N,IC) . w^T */
    add(s, "neck dw", 1, 0, D, ch, N, 1, 1);
    add(s, "neck dinp", 0, 0, N, ch, D, 1, 1);
    for (int l = 0; l < m->layers; l++) {
        const int In = l ? 2 * Hh : D;
        add(s, "lstm in-proj", 0, 1, N, 4 * Hh, In, 1, 2);
        add(s, "lstm recur", 0, 1, B, 4 * Hh, Hh, 1, 2 * (T - 1));
        add(s, "lstm bwd dh", 0, 0, B, Hh, 4 * Hh, 1, 2 * (T - 1));
        add(s, "lstm dw_ih", 1, 0, 4 * Hh, In, N, 1, 2);
        add(s, "lstm dw_hh", 1, 0, 4 * Hh, Hh, (T - 1) * B, 1, 2);
        add(s, "lstm dx", 0, 0, N, In, 4 * Hh, 1, 2);
    }
    add(s, "cls fwd", 0, 1, N, m->classes, 2 * Hh, 0, 1);
    add(s, "cls dw", 1, 0, m->classes, 2 * Hh, N, 1, 1);
    add(s, "cls dinp", 0, 0, N, 2 * Hh, m->classes, 1, 1);
}

/* Groups the shapes by site (sites in order of first appearance, shapes in
 * order within each), so each site gets one subtotal. */
static void group_by_site(Shapes *s) {
    Shape *v = xcalloc((size_t)s->n + 1, sizeof *v);
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(s->v[j].site, s->v[i].site);
        if (seen) continue;
        for (int j = i; j < s->n; j++)
            if (!strcmp(s->v[j].site, s->v[i].site)) v[n++] = s->v[j];
    }
    memcpy(s->v, v, (size_t)n * sizeof *v);
    free(v);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static void run_ours(const Shape *s, const float *A, const float *B, float *C) {
    gemm_f32(s->tA, s->tB, s->M, s->N, s->K, A, s->tA ? s->M : s->K, B, s->tB ? s->K : s->N,
             s->beta, C, s->N);
}

static void run_cblas(const Shape *s, const float *A, const float *B, float *C) {
    cblas_sgemm(CblasRowMajor, s->tA ? CblasTrans : CblasNoTrans, s->tB ? CblasTrans : CblasNoTrans,
                s->M, s->N, s->K, 1.0f, A, s->tA ? s->M : s->K, B, s->tB ? s->K : s->N, s->beta, C,
                s->N);
}

/* seconds per call of ours and of cblas: the fastest single call of each
 * over min_time seconds of calls, the two alternating. The fastest call,
 * not the mean: on a machine other processes share, a call that ran
 * without being descheduled is the one that measures the code, and taking
 * it for both sides compares them alike (warm caches, as a step's repeated
 * calls mostly are). */
static void time_both(const Shape *s, const float *A, const float *B, float *C, double min_time,
                      double *ours, double *blas) {
    run_ours(s, A, B, C); /* warm: packing buffers, caches */
    run_cblas(s, A, B, C);
    *ours = *blas = 1e30;
    const double t_end = now() + min_time;
    for (int r = 0; r < 10 || now() < t_end; r++) {
        double t0 = now();
        run_ours(s, A, B, C);
        double t1 = now();
        run_cblas(s, A, B, C);
        double t2 = now();
        *ours = MIN(*ours, t1 - t0);
        *blas = MIN(*blas, t2 - t1);
    }
}

static void bench_model(const Model *m, double min_time, int list_only) {
    Shapes s = {0};
    model_shapes(m, &s);
    group_by_site(&s);
    printf("\n%s: ResNet %s w%d, BiLSTM %dx%d, D %d, batch %d, 32x128 images\n", m->name,
           m->bottleneck ? "bottleneck" : "basic", m->width, m->layers, m->H, m->D, m->batch);
    printf("%-14s %2s %5s %5s %5s %4s %5s | %8s %8s %6s\n", "site", "op", "M", "N", "K", "beta",
           "calls", "ours", "cblas", "ratio");
    double t_ours = 0, t_cblas = 0;
    const char *site = NULL;
    double site_ours = 0, site_cblas = 0;
    Rng rng;
    rng_seed(&rng, 1);
    for (int i = 0; i <= s.n; i++) {
        if (site && !list_only && (i == s.n || strcmp(site, s.v[i].site))) {
            printf("%-14s %41s | %7.2fms %7.2fms %6.2f  (per step)\n", site, "", 1e3 * site_ours,
                   1e3 * site_cblas, site_cblas / site_ours);
            site_ours = site_cblas = 0;
        }
        if (i == s.n) break;
        const Shape *sh = &s.v[i];
        site = sh->site;
        if (list_only) {
            printf("%-14s %c%c %5d %5d %5d %4g %5d\n", sh->site, sh->tA ? 'T' : 'N',
                   sh->tB ? 'T' : 'N', sh->M, sh->N, sh->K, sh->beta, sh->calls);
            continue;
        }
        const size_t na = (size_t)sh->M * sh->K, nb = (size_t)sh->K * sh->N,
                     nc = (size_t)sh->M * sh->N;
        float *A = xalloc_floats(na), *B = xalloc_floats(nb), *C = xalloc_floats(nc);
        for (size_t j = 0; j < na; j++)
            A[j] = (float)rng_uniform(&rng) - 0.5f;
        for (size_t j = 0; j < nb; j++)
            B[j] = (float)rng_uniform(&rng) - 0.5f;
        memset(C, 0, nc * sizeof(float));
        double ours, blas;
        time_both(sh, A, B, C, min_time, &ours, &blas);
        const double gflop = 2e-9 * sh->M * sh->N * sh->K;
        printf("%-14s %c%c %5d %5d %5d %4g %5d | %8.1f %8.1f %6.2f\n", sh->site, sh->tA ? 'T' : 'N',
               sh->tB ? 'T' : 'N', sh->M, sh->N, sh->K, sh->beta, sh->calls, gflop / ours,
               gflop / blas, blas / ours);
        site_ours += ours * sh->calls;
        site_cblas += blas * sh->calls;
        t_ours += ours * sh->calls;
        t_cblas += blas * sh->calls;
        free(A);
        free(B);
        free(C);
    }
    if (!list_only)
        printf("%s: GEMM time per training step: gemm_f32 %.1f ms, cblas_sgemm %.1f ms, "
               "cblas/ours %.2f\n",
               m->name, 1e3 * t_ours, 1e3 * t_cblas, t_cblas / t_ours);
    free(s.v);
}

int main(int argc, char **argv) {
    double min_time = 0.3;
    int list_only = 0;
    const Model *run[8];
    int nrun = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            min_time = atof(argv[++i]);
            continue;
        }
        if (!strcmp(argv[i], "--list")) {
            list_only = 1;
            continue;
        }
        if (!strcmp(argv[i], "--path") && i + 1 < argc) {
            const char *p = argv[++i];
            GemmPath path = !strcmp(p, "avx512") ? GEMM_AVX512
                            : !strcmp(p, "avx2") ? GEMM_AVX2
                                                 : GEMM_AUTO;
            if (path == GEMM_AUTO || gemm_force_path(path) != 0)
                fatal(2, "--path %s: not avx512/avx2, or this CPU cannot run it", p);
            continue;
        }
        int found = 0;
        for (size_t j = 0; j < ARRAY_LEN(MODELS) && !found; j++)
            if (!strcmp(argv[i], MODELS[j].name) && nrun < 8) run[nrun++] = &MODELS[j], found = 1;
        if (!found)
            fatal(2, "usage: bench_gemm [small|small-teacher|full|full-teacher]... "
                     "[--min-time S] [--path avx512|avx2] [--list]");
    }
    if (!nrun) {
        run[nrun++] = &MODELS[0];
        run[nrun++] = &MODELS[2];
    }
    const char *core = getenv("OPENBLAS_CORETYPE");
    printf("gemm_f32 %s vs cblas_sgemm (%s, %s kernels, OPENBLAS_CORETYPE=%s), 1 thread\n"
           "GFLOP/s; ratio = cblas time / gemm_f32 time (> 1: gemm_f32 faster)\n",
           gemm_path_name(gemm_path()), openblas_get_config(), openblas_get_corename(),
           core ? core : "(unset)");
    openblas_set_num_threads(1);
    for (int i = 0; i < nrun; i++)
        bench_model(run[i], min_time, list_only);
    return 0;
}
