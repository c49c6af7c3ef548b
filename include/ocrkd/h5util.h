/* h5util.h - small checked helpers over the HDF5 C API shared by the dataset
 * and checkpoint code: attributes read the way common writers produce them
 * (vlen or fixed strings, any integer type), written the way SPEC fixes
 * (UTF-8 vlen strings, int64 integers). Not for datasets of samples or
 * tensors (dataset.c, checkpoint.c). */
#ifndef OCRKD_H5UTIL_H
#define OCRKD_H5UTIL_H

#include <hdf5.h>

#include "ocrkd/common.h"

/* Turns off HDF5's automatic error stack printing (we report our own). */
void h5_quiet(void);
/* Opens read-only with file locking off (Lustre/NFS); <0 on failure. */
hid_t h5_open_ro(const char *path);
/* Message of the innermost HDF5 error, for appending to our own. */
const char *h5_last_error(void);

int h5_attr_exists(hid_t obj, const char *name);
/* String attribute (vlen or fixed-length, ASCII or UTF-8); *out malloc'd.
 * Returns 0, or -1 if missing / not a string. */
int h5_attr_read_string(hid_t obj, const char *name, char **out);
/* Integer attribute of any integer type (scalar or 1-element); 0 or -1. */
int h5_attr_read_long(hid_t obj, const char *name, long *out);
/* Writers: UTF-8 vlen string; int64. 0 or -1. */
int h5_attr_write_string(hid_t obj, const char *name, const char *value);
int h5_attr_write_long(hid_t obj, const char *name, long value);

/* fsync(path) then rename(tmp, path); fsync of the directory. 0 or -1 (errno). */
int fsync_and_rename(const char *tmp, const char *path);

#endif
