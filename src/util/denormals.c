/* denormals.c - FTZ/DAZ per thread (denormals.h): the x86 MXCSR bits, read
 * and written with stmxcsr/ldmxcsr.
 * Not for: other floating-point modes (rounding stays round-to-nearest) or
 * the x87 unit (ocrkd computes in SSE/AVX registers only).
 */
#include "ocrkd/denormals.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocrkd/common.h"

#if defined(__x86_64__) || (defined(__i386__) && defined(__SSE__))
#define HAVE_MXCSR 1
enum { MXCSR_FLAGS = 0x3fu, MXCSR_DAZ = 1u << 6, MXCSR_FTZ = 1u << 15 };
#else
#define HAVE_MXCSR 0
#endif

int denormals_supported(void) {
    return HAVE_MXCSR;
}

unsigned denormals_mode_get(void) {
#if HAVE_MXCSR
    unsigned m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m & ~MXCSR_FLAGS; /* the control bits; the sticky exception flags vary */
#else
    return 0;
#endif
}

void denormals_mode_set(unsigned mode) {
#if HAVE_MXCSR
    __asm__ volatile("ldmxcsr %0" : : "m"(mode));
#else
    (void)mode;
#endif
}

void denormals_set(int flush) {
#if HAVE_MXCSR
    unsigned m = denormals_mode_get();
    m = flush ? m | MXCSR_DAZ | MXCSR_FTZ : m & ~(unsigned)(MXCSR_DAZ | MXCSR_FTZ);
    denormals_mode_set(m);
#else
    (void)flush;
#endif
}

int denormals_flushing(void) {
#if HAVE_MXCSR
    const unsigned both = MXCSR_DAZ | MXCSR_FTZ;
    return (denormals_mode_get() & both) == both;
#else
    return 0;
#endif
}

int denormals_from_env(void) {
    const char *env = getenv("OCRKD_DENORMALS");
    int flush = 1;
    if (env && *env) {
        if (!strcmp(env, "keep"))
            flush = 0;
        else if (strcmp(env, "flush"))
            fatal(EXIT_USAGE, "OCRKD_DENORMALS=%s: unknown; flush (the default) or keep", env);
    }
    denormals_set(flush);
    return denormals_flushing();
}

void denormals_describe(char *out, unsigned long cap) {
    if (!denormals_supported())
        snprintf(out, cap, "denormals kept (this CPU's build cannot flush them)");
    else if (denormals_flushing())
        snprintf(out, cap,
                 "denormals flushed to zero (FTZ + DAZ; OCRKD_DENORMALS=keep keeps them)");
    else
        snprintf(out, cap, "denormals kept (OCRKD_DENORMALS=keep, or a library caller's default)");
}
