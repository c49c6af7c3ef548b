/* ref_io.h - reading the PyTorch reference files (tests/ref/NAME.h5, written by
 * tests/ref/make_refs.py) from C tests: whole datasets as float or int
 * arrays, integer/float attributes, group member names.
 *
 * A missing file, dataset or attribute is a test failure, not a crash: the
 * helper prints what it was reading and a final "0 passed, 1 failed" line,
 * then exits 1. Not for the checkpoint format itself (src/io/checkpoint.c). */
#ifndef OCRKD_TESTS_REF_IO_H
#define OCRKD_TESTS_REF_IO_H

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char ref_path_[1024]; /* the file being read, for messages */

static inline void ref_fail_(const char *what, const char *name) {
    printf("FAIL reading %s %s from %s (regenerate with `make refs`?)\n", what, name, ref_path_);
    printf("0 passed, 1 failed\n");
    exit(1);
}

/* Opens tests/ref/NAME: under $OCRKD_REF_DIR if set, else tests/ref/ from the
 * repository root (where `make test` runs), else ../tests/ref/. */
static inline hid_t ref_open(const char *name) {
    const char *dir = getenv("OCRKD_REF_DIR");
    const char *dirs[] = {dir ? dir : "tests/ref", "../tests/ref"};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(ref_path_, sizeof ref_path_, "%s/%s", dirs[i], name);
        hid_t f = H5Fopen(ref_path_, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) return f;
    }
    snprintf(ref_path_, sizeof ref_path_, "%s/%s", dirs[0], name);
    ref_fail_("file", name);
    return -1;
}

/* Path of the file last opened by ref_open. */
static inline const char *ref_last_path(void) { return ref_path_; }

static inline int ref_exists(hid_t loc, const char *path) {
    return H5Lexists(loc, path, H5P_DEFAULT) > 0;
}

/* Reads dataset `path` converted to mem_type into a malloc'd buffer. */
static inline void *ref_read_(hid_t loc, const char *path, hid_t mem_type, size_t elem,
                              size_t *n_out) {
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0) ref_fail_("dataset", path);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    void *buf = malloc((n > 0 ? (size_t)n : 1) * elem);
    if (n < 0 || !buf || H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        ref_fail_("dataset", path);
    H5Sclose(sp);
    H5Dclose(d);
    if (n_out) *n_out = (size_t)n;
    return buf;
}

/* Dataset as float32 (malloc'd); *n receives the element count (n may be NULL). */
static inline float *ref_floats(hid_t loc, const char *path, size_t *n) {
    return (float *)ref_read_(loc, path, H5T_NATIVE_FLOAT, sizeof(float), n);
}
/* Dataset as int (malloc'd). */
static inline int *ref_ints(hid_t loc, const char *path, size_t *n) {
    return (int *)ref_read_(loc, path, H5T_NATIVE_INT, sizeof(int), n);
}
/* Scalar dataset (stored as a 1-element array) as double. */
static inline double ref_scalar(hid_t loc, const char *path) {
    size_t n;
    float *v = ref_floats(loc, path, &n);
    double x = n ? v[0] : 0.0;
    free(v);
    return x;
}

/* Numeric attribute `attr` of object `obj` (a path relative to loc), as double. */
static inline double ref_attr(hid_t loc, const char *obj, const char *attr) {
    double v = 0;
    hid_t a = H5Aopen_by_name(loc, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0) ref_fail_("attribute", attr);
    H5Aclose(a);
    return v;
}
static inline int ref_attr_int(hid_t loc, const char *obj, const char *attr) {
    return (int)ref_attr(loc, obj, attr);
}

typedef struct {
    char names[128][96];
    int count;
} RefNames;

static inline herr_t ref_names_cb_(hid_t g, const char *name, const H5L_info_t *info, void *p) {
    (void)g;
    (void)info;
    RefNames *r = (RefNames *)p;
    if (r->count >= 128) return -1; /* more than a test needs: fail loudly */
    snprintf(r->names[r->count++], sizeof r->names[0], "%s", name);
    return 0;
}
/* Names of the members of group `path` (up to 128), in name order. */
static inline RefNames ref_names(hid_t loc, const char *path) {
    RefNames r;
    r.count = 0;
    hid_t g = H5Gopen2(loc, path, H5P_DEFAULT);
    if (g < 0 || H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, ref_names_cb_, &r) < 0)
        ref_fail_("group", path);
    H5Gclose(g);
    return r;
}

#endif
