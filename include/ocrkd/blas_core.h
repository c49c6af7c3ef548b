/* blas_core.h - which OpenBLAS kernels the process runs, and the one
 * correction ocrkd makes to OpenBLAS's own choice (blas_core.c).
 *
 * Not for threads (run.threads, dist.h) or anything after MPI_Init.
 */
#ifndef OCRKD_BLAS_CORE_H
#define OCRKD_BLAS_CORE_H

/* The kernel set to ask for instead of `detected` (OpenBLAS's corename) on
 * a CPU with the given features, or NULL to keep it: "SkylakeX" with
 * AVX-512 (F, BW, VL, DQ), "Haswell" with AVX2 and FMA, and only when
 * `detected` is a fallback older than those (Prescott, Core2, Nehalem,
 * Sandybridge, ...). Pure: the policy, testable on any machine. */
const char *blas_core_better(const char *detected, int avx512, int avx2_fma);

/* Call first in main(), before MPI_Init and before any thread: when
 * OPENBLAS_CORETYPE is unset (and OCRKD_BLAS_CORE is not "keep") and
 * blas_core_better() names a better kernel for this CPU, re-executes the
 * program with OPENBLAS_CORETYPE set to it (OpenBLAS reads the variable
 * only when it loads). Returns if nothing is to be done or exec fails. */
void blas_core_fix(char **argv);

/* The same for a program without its argv at hand (the unit tests, from a
 * constructor): the arguments are read from /proc/self/cmdline. */
void blas_core_fix_self(void);

/* One line for banners: "OpenBLAS 0.3.21 SkylakeX kernels (...why...)". */
void blas_core_describe(char *out, unsigned long cap);

#endif
