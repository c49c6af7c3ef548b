/* vec4.h - 4-float vectors (GCC/Clang vector extension, SSE2 at the
 * baseline ISA) shared by the elementwise kernels of src/nn. GCC 12 at -O2
 * vectorizes few loops that need a scalar tail or an alias check, so those
 * loops run 4 lanes by hand with the same per-element arithmetic: results
 * are bit-identical to the scalar loops. Private to src/nn. */
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
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
static inline v4f splat4(float x) { return (v4f){x, x, x, x}; }
/* a where keep > 0, else +0 (NaN keep gives 0), as `keep > 0 ? a : 0` */
static inline v4f keep_where_positive(v4f keep, v4f a) {
    return (v4f)((v4i)a & (keep > splat4(0.0f)));
}

#endif
