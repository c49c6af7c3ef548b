/* blas_core.c - ocrkd's one intervention in how OpenBLAS runs.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from a table
 * of CPU models when it loads. Debian 12's OpenBLAS 0.3.21 does not know the
 * Xeons that came after it and falls back to its Prescott (SSE3) kernels on
 * them: measured on this project's 2-core AVX-512 machine, 13.5 GFLOP/s
 * sgemm instead of 41-60 and training steps 2.4x slower (doc/bench.md). When
 * the user has not chosen (OPENBLAS_CORETYPE unset), ocrkd asks for the
 * kernels the CPU supports by running itself again with the variable set.
 * A set OPENBLAS_CORETYPE is never touched, nor is anything when
 * OCRKD_BLAS_CORE=keep.
 *
 * Not for: thread counts (dist.c), or anything once MPI or threads are up
 * (the exec replaces the process image).
 */
#include "ocrkd/blas_core.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/common.h"

/* OpenBLAS x86 corenames below AVX2: what its detection falls back to, or
 * what a CPU really is when it has no AVX2 (then the features keep it). */
static const char *const OLDER[] = {"Prescott", "Core2",     "Penryn",      "Dunnington",
                                    "Nehalem",  "Sandybridge", "Atom",      "Katmai",
                                    "Coppermine", "Northwood", "Banias",    "Opteron",
                                    "Opteron_SSE3", "Barcelona", "Bobcat",  "Unknown"};

const char *blas_core_better(const char *detected, int avx512, int avx2_fma) {
    if (!detected) return NULL;
    int older = 0;
    for (size_t i = 0; i < sizeof OLDER / sizeof OLDER[0] && !older; i++)
        older = strcasecmp(detected, OLDER[i]) == 0;
    if (!older) return NULL;
    if (avx512) return "SkylakeX";
    if (avx2_fma) return "Haswell";
    return NULL;
}

#define REPLACED_ENV "OCRKD_BLAS_REPLACED" /* set for the re-executed process */

void blas_core_fix(char **argv) {
    if (getenv("OPENBLAS_CORETYPE")) return;
    const char *keep = getenv("OCRKD_BLAS_CORE");
    if (keep && !strcmp(keep, "keep")) return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const char *detected = openblas_get_corename();
    const char *pick = blas_core_better(detected, avx512, avx2);
    if (!pick) return;
    char was[64];
    snprintf(was, sizeof was, "%s", detected);
    if (setenv("OPENBLAS_CORETYPE", pick, 1) || setenv(REPLACED_ENV, was, 1)) return;
    /* exec the binary by its own path, not /proc/self/exe: the process
     * name (comm, what ps, pgrep and top show) comes from that path */
    char self[OCRKD_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        fflush(NULL);
        execv(self, argv);
    }
    /* exec failed (no /proc?): carry on with OpenBLAS's own choice */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(REPLACED_ENV);
#else
    (void)argv;
#endif
}

void blas_core_fix_self(void) {
    if (getenv("OPENBLAS_CORETYPE")) return; /* the common case: nothing to read */
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (!f) return;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    if (n == 0 || n == sizeof buf - 1) return; /* unreadable or too long: keep going as is */
    buf[n] = 0;
    char *argv[256];
    int argc = 0;
    for (size_t i = 0; i < n && argc < 255; i += strlen(buf + i) + 1)
        argv[argc++] = buf + i;
    argv[argc] = NULL;
    blas_core_fix(argv);
}

void blas_core_describe(char *out, unsigned long cap) {
    const char *replaced = getenv(REPLACED_ENV);
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *name = openblas_get_corename();
    if (replaced && set)
        snprintf(out, cap,
                 "OpenBLAS %s kernels (OpenBLAS took this CPU for a %s; OPENBLAS_CORETYPE=%s "
                 "set by ocrkd: set it yourself, or OCRKD_BLAS_CORE=keep, to choose)",
                 name, replaced, set);
    else if (set)
        snprintf(out, cap, "OpenBLAS %s kernels (OPENBLAS_CORETYPE=%s)", name, set);
    else
        snprintf(out, cap, "OpenBLAS %s kernels (its CPU detection)", name);
}
