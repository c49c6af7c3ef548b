/* logits_writer.c - the --dump-logits file of `ocrkd predict`
 * (include/ocrkd/logits_writer.h): /logits float32 [N,T,K] and /texts,
 * written in batches of rows. Every call holds the HDF5 lock, since a
 * prefetching loader may read at the same time. Not for datasets
 * (dataset_writer.c) or checkpoints (checkpoint.c). */
#include "ocrkd/logits_writer.h"

#include <stdlib.h>

#include "ocrkd/dataset.h"
#include "ocrkd/h5util.h"

struct LogitsWriter {
    hid_t file, logits, texts;
    long n;
    int T, K;
};

static hid_t utf8_string_type(void) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, H5T_VARIABLE);
    H5Tset_cset(st, H5T_CSET_UTF8);
    return st;
}

int logits_writer_open(LogitsWriter **out, const char *path, long n, int T, int K, Err *err) {
    LogitsWriter *d = xcalloc(1, sizeof *d);
    d->n = n;
    d->T = T;
    d->K = K;
    d->logits = d->texts = -1;
    dataset_hdf5_lock();
    d->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (d->file < 0) {
        dataset_hdf5_unlock();
        free(d);
        return err_set(err, EXIT_USAGE, "cannot create %s: %s", path, h5_last_error());
    }
    hsize_t dims[3] = {(hsize_t)n, (hsize_t)T, (hsize_t)K};
    hid_t sp = H5Screate_simple(3, dims, NULL);
    d->logits =
        H5Dcreate2(d->file, "logits", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    hid_t st = utf8_string_type();
    hsize_t nd[1] = {(hsize_t)n};
    sp = H5Screate_simple(1, nd, NULL);
    d->texts = H5Dcreate2(d->file, "texts", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(sp);
    H5Tclose(st);
    dataset_hdf5_unlock();
    *out = d;
    if (d->logits < 0 || d->texts < 0)
        return err_set(err, EXIT_USAGE, "cannot write %s: %s", path, h5_last_error());
    return 0;
}

int logits_writer_rows(LogitsWriter *d, long at, int B, char **texts, const float *rows, Err *err) {
    int T = d->T, K = d->K;
    hsize_t start[3] = {(hsize_t)at, 0, 0}, count[3] = {(hsize_t)B, (hsize_t)T, (hsize_t)K};
    dataset_hdf5_lock();
    hid_t fs = H5Dget_space(d->logits);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    hid_t ms = H5Screate_simple(3, count, NULL);
    herr_t e1 = H5Dwrite(d->logits, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, rows);
    H5Sclose(ms);
    H5Sclose(fs);
    hid_t st = utf8_string_type();
    fs = H5Dget_space(d->texts);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    ms = H5Screate_simple(1, count, NULL);
    herr_t e2 = H5Dwrite(d->texts, st, ms, fs, H5P_DEFAULT, texts);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(st);
    dataset_hdf5_unlock();
    if (e1 < 0 || e2 < 0) return err_set(err, EXIT_USAGE, "writing logits: %s", h5_last_error());
    return 0;
}

int logits_writer_close(LogitsWriter *d, Err *err) {
    dataset_hdf5_lock();
    if (d->logits >= 0) H5Dclose(d->logits);
    if (d->texts >= 0) H5Dclose(d->texts);
    herr_t rc = H5Fclose(d->file);
    dataset_hdf5_unlock();
    free(d);
    if (rc < 0) return err_set(err, EXIT_USAGE, "closing the logits file: %s", h5_last_error());
    return 0;
}
