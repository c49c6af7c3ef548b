/* dist.c - MPI start-up, thread caps and the collectives the trainer uses.
 * Every call is checked by MPI's default handler (errors abort the job with
 * a message), so a rank's failure can never leave the others hanging.
 * Not for what is reduced or when (trainer.c decides). */
#include "ocrkd/dist.h"

#include <cblas.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/common.h"
#include "ocrkd/gemm.h"

static int g_local = 1;

/* fatal()'s way out while MPI is up with several ranks: MPI_Abort, so no
 * rank is left waiting in a collective. Returns otherwise (fatal exits). */
static void abort_job(int code) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&down);
    if (up && !down && ocrkd_world() > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

void dist_init(int *argc, char ***argv) {
    int up = 0;
    MPI_Initialized(&up);
    if (!up) MPI_Init(argc, argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    ocrkd_set_rank(rank, world);
    set_abort_hook(abort_job);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &g_local);
    MPI_Comm_free(&node);
    dist_set_threads(0);
}

int dist_set_threads(int threads) {
    if (threads <= 0) {
        const char *env = getenv("OCRKD_THREADS");
        if (env && atoi(env) > 0) threads = atoi(env);
    }
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = (int)(cores / g_local);
        if (threads < 1) threads = 1;
    }
    /* one pool at a time: ocrkd's GEMM threads, or OpenBLAS's when it is the path */
    const int own = gemm_path() != GEMM_CBLAS;
    gemm_set_threads(own ? threads : 1);
    openblas_set_num_threads(own ? 1 : threads);
    return threads;
}

void dist_finalize(void) {
    int up = 0, down = 0;
    MPI_Initialized(&up);
    if (up) MPI_Finalized(&down);
    if (up && !down) MPI_Finalize();
}

int dist_rank(void) {
    return ocrkd_rank();
}
int dist_world(void) {
    return ocrkd_world();
}

void dist_allreduce_mean_f32(float *buf, size_t n) {
    int world = dist_world();
    if (world == 1) return;
    for (size_t off = 0; off < n; off += INT_MAX) {
        int cnt = (int)MIN(n - off, (size_t)INT_MAX);
        MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
    float inv = 1.0f / (float)world;
    for (size_t i = 0; i < n; i++)
        buf[i] *= inv;
}

static MPI_Request g_pending[DIST_MAX_PENDING];
static int g_npending;

void dist_isum_f32_start(float *buf, size_t n) {
    if (dist_world() == 1 || n == 0) return;
    for (size_t off = 0; off < n; off += INT_MAX) {
        if (g_npending == DIST_MAX_PENDING) dist_isum_wait();
        int cnt = (int)MIN(n - off, (size_t)INT_MAX);
        MPI_Iallreduce(MPI_IN_PLACE, buf + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &g_pending[g_npending++]);
    }
    int done;
    MPI_Testall(g_npending, g_pending, &done, MPI_STATUSES_IGNORE); /* progress */
}

void dist_isum_wait(void) {
    if (g_npending) MPI_Waitall(g_npending, g_pending, MPI_STATUSES_IGNORE);
    g_npending = 0;
}

/* Reduce to rank 0 then broadcast, rather than MPI_Allreduce: every rank
 * must see bit-identical sums, because stop decisions are computed from
 * them on every rank and must agree. */
void dist_allreduce_sum_f64(double *v, int n) {
    if (dist_world() == 1) return;
    if (dist_rank() == 0)
        MPI_Reduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    else
        MPI_Reduce(v, NULL, n, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    MPI_Bcast(v, n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

static void bcast_chunked(void *buf, size_t n, size_t elem, MPI_Datatype t, int root) {
    if (dist_world() == 1) return;
    for (size_t off = 0; off < n; off += INT_MAX) {
        int cnt = (int)MIN(n - off, (size_t)INT_MAX);
        MPI_Bcast((char *)buf + off * elem, cnt, t, root, MPI_COMM_WORLD);
    }
}

void dist_bcast_f32(float *buf, size_t n, int root) {
    bcast_chunked(buf, n, sizeof(float), MPI_FLOAT, root);
}
void dist_bcast_f64(double *buf, size_t n, int root) {
    bcast_chunked(buf, n, sizeof(double), MPI_DOUBLE, root);
}
void dist_bcast_i64(int64_t *buf, size_t n, int root) {
    bcast_chunked(buf, n, sizeof(int64_t), MPI_INT64_T, root);
}

void dist_bcast_string(char **s, int root) {
    if (dist_world() == 1) return;
    int64_t len = dist_rank() == root ? (int64_t)strlen(*s) : 0;
    dist_bcast_i64(&len, 1, root);
    if (dist_rank() != root) {
        free(*s);
        *s = xcalloc((size_t)len + 1, 1);
    }
    bcast_chunked(*s, (size_t)len, 1, MPI_CHAR, root);
}

void *dist_gather_bytes(const void *mine, size_t n, int root, size_t *total_out) {
    int world = dist_world(), rank = dist_rank();
    if (n > INT_MAX) fatal(1, "gathering %zu bytes from one rank: too large", n);
    int len = (int)n, *lens = NULL, *offs = NULL;
    char *all = NULL;
    size_t total = 0;
    if (world == 1) {
        all = xmalloc(n + 1);
        memcpy(all, mine, n);
        all[n] = 0;
        if (total_out) *total_out = n;
        return all;
    }
    if (rank == root) {
        lens = xcalloc((size_t)world, sizeof(int));
        offs = xcalloc((size_t)world, sizeof(int));
    }
    MPI_Gather(&len, 1, MPI_INT, lens, 1, MPI_INT, root, MPI_COMM_WORLD);
    if (rank == root) {
        for (int r = 0; r < world; r++) {
            offs[r] = (int)total;
            total += (size_t)lens[r];
        }
        if (total > INT_MAX) fatal(1, "gathering %zu bytes: too large", total);
        all = xcalloc(total + 1, 1);
    }
    MPI_Gatherv(mine, len, MPI_BYTE, all, lens, offs, MPI_BYTE, root, MPI_COMM_WORLD);
    free(lens);
    free(offs);
    if (total_out) *total_out = total;
    return all;
}

char *dist_gather_string(const char *s, int root) {
    return dist_gather_bytes(s, strlen(s), root, NULL);
}

long dist_max_long(long v) {
    if (dist_world() == 1) return v;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return v;
}

int dist_all_equal_u64(uint64_t v) {
    if (dist_world() == 1) return 1;
    uint64_t mn = v, mx = v;
    MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    return mn == mx;
}

void dist_barrier(void) {
    if (dist_world() > 1) MPI_Barrier(MPI_COMM_WORLD);
}
