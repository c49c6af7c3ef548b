/* vec4.h - 4-float vectors (GCC/Clang vector extension, SSE2 at the
 * baseline ISA) shared by the elementwise kernels of src/nn. GCC 12 at -O2
 * vectorizes few loops that need a scalar tail or an alias check, so those
 * loops run 4 lanes by hand with the same per-element arithmetic: results
 * are bit-identical to the scalar loops. Private to src/nn; not for the
 * LSTM gate functions (exp, sigmoid, tanh: lstm.c). */
#ifndef OCRKD_NN_VEC4_H
#define OCRKD_NN_VEC4_H

#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f load4(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store4(float *p, v4f v) {
    memcpy(p, &v, sizeof v);
}
static inline v4f splat4(float x) {
    return (v4f){x, x, x, x};
}
/* a where keep > 0, else +0 (NaN keep gives 0), as `keep > 0 ? a : 0` */
static inline v4f keep_where_positive(v4f keep, v4f a) {
    return (v4f)((v4i)a & (keep > splat4(0.0f)));
}
/* lanes of a where mask is all ones, else of b */
static inline v4f select4(v4i mask, v4f a, v4f b) {
    return (v4f)((mask & (v4i)a) | (~mask & (v4i)b));
}
/* the first n (1..4) floats of p; lanes past n are 0. Always inlined so
 * that a constant n makes the copy a plain move. */
static inline __attribute__((always_inline)) v4f load4_n(const float *p, int n) {
    v4f v = {0, 0, 0, 0};
    memcpy(&v, p, (size_t)n * sizeof(float));
    return v;
}
static inline __attribute__((always_inline)) void store4_n(float *p, v4f v, int n) {
    memcpy(p, &v, (size_t)n * sizeof(float));
}

#endif
