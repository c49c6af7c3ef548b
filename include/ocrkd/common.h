/* common.h - exit codes, error reporting, allocation and the activation arena.
 *
 * Shared by every module. Not for anything MPI-specific (see dist.h) or
 * numerical (see nn.h).
 */
#ifndef OCRKD_COMMON_H
#define OCRKD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define OCRKD_VERSION "0.1.0"

/* Exit codes fixed by SPEC "Command line". */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 2,      /* usage or config error (incl. a student that does not fit) */
    EXIT_DATA = 3,       /* dataset error */
    EXIT_CKPT = 4,       /* checkpoint error */
    EXIT_NUMERIC = 5,    /* NaN/Inf that recovery could not absorb */
    EXIT_INTERNAL = 70,  /* a bug in ocrkd: an internal check failed (EX_SOFTWARE) */
    EXIT_PREEMPTED = 75, /* stopped by a signal after writing a checkpoint */
};

/* The one size of every path buffer (a run directory plus a file name). */
#define OCRKD_PATH_MAX 4200

/* An error travelling up to the caller: the exit code it maps to and a
 * message that names the file and the problem. Library code fills one of
 * these and returns its code; only the CLI layer decides to exit. */
#define OCRKD_ERR_LEN 1024
typedef struct {
    int code;
    char msg[OCRKD_ERR_LEN];
} Err;

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return err_set(err, EXIT_DATA, "%s: ...", path);` */
int err_set(Err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prints "ocrkd: error: MSG" (with "[rank r]" when running on several
 * ranks) and ends the job with code: through the abort hook when one is
 * installed (dist_init installs MPI_Abort for jobs of several ranks, so no
 * rank is left hanging), exit() otherwise. */
void fatal(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void fatal_err(const Err *err) __attribute__((noreturn));
/* Called by fatal() with the exit code after the message is printed; it
 * may return (then fatal() calls exit(code)). NULL removes it. */
typedef void (*AbortHook)(int code);
void set_abort_hook(AbortHook hook);

/* A broken invariant of ocrkd itself (not of the input): prints
 * "internal error at FILE:LINE: MSG" and ends the job with EXIT_INTERNAL. */
#define internal_error(...) internal_error_at(__FILE__, __LINE__, __VA_ARGS__)
void internal_error_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* 1 if s ends with suffix. */
int str_ends_with(const char *s, const char *suffix);

/* Rank-0 printing; before MPI_Init every process counts as rank 0. */
void printf0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ocrkd_rank(void);
int ocrkd_world(void);
void ocrkd_set_rank(int rank, int world);

/* Allocation that cannot fail silently: on failure it calls fatal(). */
void *xmalloc(size_t bytes);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t bytes);
char *xstrdup(const char *s);
/* 64-byte aligned, zeroed; free with free(). */
float *xalloc_floats(size_t n);
/* A kept scratch buffer: *buf (64-byte aligned, not zeroed) grown to at
 * least n floats when *cap is less, its contents then lost; returns *buf.
 * For buffers allocated once and reused (packing, per-thread scratch). */
float *grow_floats(float **buf, size_t *cap, size_t n);

/* A bump allocator for activations: sized once, reset never in the step loop.
 * Two passes: arena_init(&a, 0) then "allocate" to measure (base NULL),
 * arena_commit() to allocate the measured size, then allocate again. */
typedef struct {
    char *base;
    size_t cap, used;
} Arena;
void arena_init(Arena *a);
float *arena_floats(Arena *a, size_t n); /* 64-byte aligned; NULL while measuring */
void arena_commit(Arena *a);             /* allocate what was measured, rewind */
void arena_free(Arena *a);

/* Monotonic wall clock in seconds. */
double now_seconds(void);

/* FNV-1a, for checksums and the ranks' agreement checks of configs and
 * tensor tables. */
uint64_t hash_bytes(uint64_t h, const void *p, size_t n);
#define HASH_SEED 1469598103934665603ULL

/* The splitmix64 finalizer: a bijective 64-bit mix, for deriving
 * independent seeds from tuples of numbers. */
uint64_t rng_mix64(uint64_t z);

/* Deterministic RNG (splitmix64-seeded xoshiro256**); the state is 4 words
 * so checkpoints can store it. */
typedef struct {
    uint64_t s[4];
} Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
double rng_uniform(Rng *r);            /* [0, 1) */
float rng_normal(Rng *r);              /* N(0, 1) */
uint64_t rng_below(Rng *r, uint64_t n); /* [0, n) without modulo bias */

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
