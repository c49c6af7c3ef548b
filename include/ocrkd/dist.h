/* dist.h - the MPI layer: start-up, thread caps, broadcasts and the two
 * allreduces of a training step (the trainable-gradient slice, and a small
 * vector of loss sums and flags on which every stop decision rides).
 * Works unchanged with one rank and without mpirun. Not for deciding what
 * to communicate (trainer.c) or anything about files. */
#ifndef OCRKD_DIST_H
#define OCRKD_DIST_H

#include <stddef.h>
#include <stdint.h>

/* MPI_Init, rank/world for printf0/fatal, and the OpenBLAS thread cap:
 * threads > 0 as given, else env OCRKD_THREADS, else cores / ranks on this
 * node (at least 1). Returns the thread count used. */
void dist_init(int *argc, char ***argv);
int dist_set_threads(int threads);
void dist_finalize(void);
int dist_rank(void);
int dist_world(void);

/* In-place sum over ranks, divided by the world size (one call; split only
 * past INT_MAX elements). */
void dist_allreduce_mean_f32(float *buf, size_t n);
/* Non-blocking in-place sum over ranks (MPI_Iallreduce), for buckets of
 * gradients reduced while backward goes on: buf must not be touched until
 * dist_isum_wait() returns. Each start also lets earlier buckets progress.
 * Every rank must start the same buckets in the same order. At most
 * DIST_MAX_PENDING buckets in flight (more: the oldest is waited for). */
#define DIST_MAX_PENDING 64
void dist_isum_f32_start(float *buf, size_t n);
/* Waits for every started bucket. */
void dist_isum_wait(void);
/* In-place sum over ranks of a small double vector. */
void dist_allreduce_sum_f64(double *v, int n);
void dist_bcast_f32(float *buf, size_t n, int root);
void dist_bcast_f64(double *buf, size_t n, int root);
void dist_bcast_i64(int64_t *buf, size_t n, int root);
/* Broadcast a malloc'd string from root; other ranks receive a new malloc'd
 * copy in *s (their old value is freed). */
void dist_bcast_string(char **s, int root);
/* The ranks' strings concatenated in rank order, malloc'd, on root (other
 * ranks get NULL). Collective. */
char *dist_gather_string(const char *s, int root);
/* The same for n bytes of each rank (a NUL is appended on root);
 * *total_out (if not NULL) gets the byte count on root. */
void *dist_gather_bytes(const void *mine, size_t n, int root, size_t *total_out);
/* The largest v over ranks, on every rank. */
long dist_max_long(long v);
/* 1 if every rank passed the same value. */
int dist_all_equal_u64(uint64_t v);
void dist_barrier(void);


#endif
