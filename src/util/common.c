/* common.c - error reporting, checked allocation, the arena, clock and RNG.
 * Not for models, data or MPI: how a fatal error ends a job of several ranks
 * is the abort hook that dist.c installs. */
#define _POSIX_C_SOURCE 200809L
#include "ocrkd/common.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_rank = 0, g_world = 1;

int ocrkd_rank(void) {
    return g_rank;
}
int ocrkd_world(void) {
    return g_world;
}
void ocrkd_set_rank(int rank, int world) {
    g_rank = rank;
    g_world = world;
}

int err_set(Err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static void vreport(const char *what, const char *fmt, va_list ap) {
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    if (g_world > 1)
        fprintf(stderr, "ocrkd: [rank %d] %s: %s\n", g_rank, what, buf);
    else
        fprintf(stderr, "ocrkd: %s: %s\n", what, buf);
    fflush(stderr);
}

static AbortHook g_abort_hook = NULL;

void set_abort_hook(AbortHook hook) {
    g_abort_hook = hook;
}

static void __attribute__((noreturn)) die_with(int code) {
    if (g_abort_hook) g_abort_hook(code);
    exit(code);
}

void fatal(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport("error", fmt, ap);
    va_end(ap);
    die_with(code);
}

void internal_error_at(const char *file, int line, const char *fmt, ...) {
    char what[256];
    snprintf(what, sizeof what, "internal error at %s:%d", file, line);
    va_list ap;
    va_start(ap, fmt);
    vreport(what, fmt, ap);
    va_end(ap);
    die_with(EXIT_INTERNAL);
}

int str_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

void fatal_err(const Err *err) {
    fatal(err->code ? err->code : 1, "%s", err->msg);
}

void printf0(const char *fmt, ...) {
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void warn0(const char *fmt, ...) {
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vreport("warning", fmt, ap);
    va_end(ap);
}

void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fatal(1, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) fatal(1, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) fatal(1, "out of memory reallocating %zu bytes", bytes);
    return q;
}

char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

float *xalloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        fatal(1, "out of memory allocating %zu floats", n);
    memset(p, 0, bytes);
    return p;
}

float *grow_floats(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        void *p = NULL;
        if (posix_memalign(&p, 64, (n * sizeof(float) + 63) / 64 * 64) != 0)
            fatal(1, "out of memory growing a scratch buffer to %zu floats", n);
        *buf = p;
        *cap = n;
    }
    return *buf;
}

void arena_init(Arena *a) {
    a->base = NULL;
    a->cap = 0;
    a->used = 0;
}

float *arena_floats(Arena *a, size_t n) {
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    size_t off = a->used;
    a->used += bytes;
    if (!a->base) return NULL;
    if (a->used > a->cap) internal_error("arena overflow (%zu > %zu bytes)", a->used, a->cap);
    return (float *)(a->base + off);
}

void arena_commit(Arena *a) {
    free(a->base);
    a->cap = a->used;
    a->base = (char *)xalloc_floats(a->cap / sizeof(float) + 16);
    a->used = 0;
}

void arena_free(Arena *a) {
    free(a->base);
    arena_init(a);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t rng_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t splitmix64(uint64_t *x) {
    return rng_mix64(*x += 0x9e3779b97f4a7c15ULL);
}

void rng_seed(Rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(Rng *r) {
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

float rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t rng_below(Rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = rng_u64(r);
    while (x >= limit);
    return x % n;
}
