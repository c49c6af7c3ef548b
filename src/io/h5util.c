/* h5util.c - checked HDF5 attribute helpers and the fsync+rename that makes
 * file writes atomic. Readers accept what h5py and other writers produce
 * (vlen or fixed-length strings, any integer type); writers use UTF-8 vlen
 * strings and int64. Not for reading samples or tensors. */
#include "ocrkd/h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data) {
    (void)n;
    /* the walk goes from the innermost (n == 0) outward; keep the first */
    char *buf = data;
    if (buf[0] == 0 && e->desc) snprintf(buf, 256, "%s", e->desc);
    return 0;
}

const char *h5_last_error(void) {
    static char buf[256];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, buf);
    if (!buf[0]) snprintf(buf, sizeof buf, "HDF5 error");
    return buf;
}

hid_t h5_open_ro(const char *path) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1); /* locks fail or hang on Lustre/NFS */
#endif
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        /* closing fapl would clear the error stack that h5_last_error reads */
        hid_t saved = H5Eget_current_stack();
        H5Pclose(fapl);
        H5Eset_current_stack(saved);
        return -1;
    }
    H5Pclose(fapl);
    return f;
}

int h5_attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

int h5_attr_read_string(hid_t obj, const char *name, char **out) {
    *out = NULL;
    if (!h5_attr_exists(obj, name)) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char *s = NULL;
            if (H5Aread(a, mt, &s) >= 0 && s) {
                *out = xstrdup(s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(ft);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_strpad(mt, H5T_STR_NULLTERM);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char *s = xcalloc(n + 2, 1);
            if (H5Aread(a, mt, s) >= 0) {
                /* fixed-length strings may be space padded (Fortran style) */
                size_t len = strlen(s);
                while (len > 0 && s[len - 1] == ' ' && H5Tget_strpad(ft) == H5T_STR_SPACEPAD)
                    s[--len] = 0;
                *out = s;
                rc = 0;
            } else {
                free(s);
            }
            H5Tclose(mt);
        }
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int h5_attr_read_long(hid_t obj, const char *name, long *out) {
    if (!h5_attr_exists(obj, name)) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_INTEGER &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        long long v = 0;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0) {
            *out = (long)v;
            rc = 0;
        }
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int h5_attr_write_string(hid_t obj, const char *name, const char *value) {
    if (h5_attr_exists(obj, name) && H5Adelete(obj, name) < 0) return -1;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (a >= 0) {
        rc = H5Awrite(a, t, &value) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

int h5_attr_write_long(hid_t obj, const char *name, long value) {
    if (h5_attr_exists(obj, name) && H5Adelete(obj, name) < 0) return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = -1;
    if (a >= 0) {
        long long v = value;
        rc = H5Awrite(a, H5T_NATIVE_LLONG, &v) < 0 ? -1 : 0;
        H5Aclose(a);
    }
    H5Sclose(sp);
    return rc;
}

static int fsync_path(const char *path, int dir) {
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int fsync_and_rename(const char *tmp, const char *path) {
    if (fsync_path(tmp, 0) != 0) return -1;
    if (rename(tmp, path) != 0) return -1;
    char *copy = xstrdup(path);
    int saved = 0;
    /* the rename itself is durable only once the directory is synced */
    if (fsync_path(dirname(copy), 1) != 0) saved = errno;
    free(copy);
    if (saved && saved != EINVAL) {
        errno = saved;
        return -1;
    }
    return 0;
}
