/* denormals.h - whether the CPU flushes denormal floats to zero (FTZ: results
 * below FLT_MIN become 0; DAZ: such inputs are read as 0), per thread
 * (src/util/denormals.c).
 *
 * Why: a trained LSTM saturates its gates, so o * tanh(c) and f * c fall
 * below FLT_MIN (1.2e-38) and the step GEMMs and convolutions then multiply
 * denormals, each one a microcode assist of ~100 cycles on x86. With them
 * flushed the experiment's distillation bench ran in 0.835 of the time, its
 * teacher's training step in 0.753 and its eval at 1.3x the images/s
 * (doc/bench.md, stop 31). A denormal is 1e-38 of the values
 * next to it, so the loss and every figure are unchanged to their printed
 * digits; the bits can differ (the experiment's step-limited runs came out
 * h5diff-equal: README, stop 32).
 *
 * The ocrkd program flushes by default (main.c, from OCRKD_DENORMALS); the
 * thread pool runs each job's parts in the caller's mode (pool.c), so results
 * stay bit-identical for any thread count. Library callers (the unit tests)
 * keep the CPU's default unless they call denormals_set.
 * Not for: OpenBLAS's own threads (the cblas GEMM path, OCRKD_GEMM=openblas
 * with several threads), which keep the mode they started with.
 */
#ifndef OCRKD_DENORMALS_H
#define OCRKD_DENORMALS_H

/* 1 where this build can flush (x86 with SSE: the MXCSR's FTZ and DAZ bits),
 * else 0 and the calls below do nothing. */
int denormals_supported(void);

/* The calling thread's floating-point control bits (x86: the MXCSR without
 * its sticky exception flags), and setting them: for the pool to give its
 * workers the caller's mode. 0 where unsupported. */
unsigned denormals_mode_get(void);
void denormals_mode_set(unsigned mode);

/* Flush (1) or keep (0) denormals in the calling thread. */
void denormals_set(int flush);
/* 1 if the calling thread flushes. */
int denormals_flushing(void);

/* From the environment: OCRKD_DENORMALS = flush (the default when unset or
 * empty) | keep; anything else is a usage error (exit 2, naming the
 * variable). Sets the calling thread's mode; returns 1 if it now flushes.
 * Call before starting threads. */
int denormals_from_env(void);

/* One line for banners: "flushed to zero (FTZ + DAZ; ...)" or "kept (...)". */
void denormals_describe(char *out, unsigned long cap);

#endif
