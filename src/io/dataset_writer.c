/* dataset_writer.c - writes dataset files as SPEC "Dataset file" fixes them:
 * /images uint8 [N,H,W] chunked along N (optionally gzip), /labels UTF-8
 * vlen strings (none in an unlabeled file), /widths int32, the root
 * attributes; to PATH.tmp, renamed at close. Samples are buffered and
 * written one chunk at a time, so writing 100k images is a few hundred HDF5
 * calls. Not for reading (dataset.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset_internal.h"
#include "ocrkd/h5util.h"

/* Images per chunk: a shuffled reader decompresses a whole chunk to get one
 * image, so compressed chunks are small (about 128 KiB); uncompressed ones
 * are read image by image and can be larger (about 1 MiB). 1..256 images. */
static int chunk_rows(int height, int width, int gzip) {
    long target = gzip ? 128L << 10 : 1L << 20;
    long rows = target / ((long)height * width);
    return (int)MAX(1, MIN(256, rows));
}

struct DatasetWriter {
    char *path, *tmp;
    int height, width, rows; /* rows = images per chunk = per buffered block */
    int unlabeled;           /* no /labels dataset */
    hid_t file, images, labels, widths, str_type;
    long n_written;     /* samples already in the file */
    int n_buf;          /* samples buffered */
    uint8_t *img_buf;   /* (rows,H,W) */
    int32_t *width_buf; /* (rows) */
    char *text_pool;    /* the buffered labels, NUL-separated */
    size_t pool_used, pool_cap;
    size_t *text_off; /* (rows) offsets into text_pool */
};

/* Creates an extendible 1-D or 3-D dataset chunked along N. */
static hid_t create_extendible(hid_t f, const char *name, hid_t type, int rank, int rows, int H,
                               int W, int gzip) {
    hsize_t dims[3] = {0, (hsize_t)H, (hsize_t)W};
    hsize_t maxd[3] = {H5S_UNLIMITED, (hsize_t)H, (hsize_t)W};
    hsize_t chunk[3] = {(hsize_t)rows, (hsize_t)H, (hsize_t)W};
    if (rank == 1) chunk[0] = (hsize_t)MAX(rows, 1024);
    hid_t sp = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 &&
        (gzip == 0 || H5Pset_deflate(dcpl, (unsigned)gzip) >= 0))
        d = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return d;
}

static int write_attrs(DatasetWriter *w, const char *alphabet) {
    return h5_attr_write_string(w->file, "format", DATASET_FORMAT) ||
           h5_attr_write_long(w->file, "version", DATASET_VERSION) ||
           h5_attr_write_string(w->file, "alphabet", alphabet) ||
           h5_attr_write_long(w->file, "height", w->height) ||
           h5_attr_write_long(w->file, "width", w->width);
}

static int create_all(DatasetWriter *w, const char *alphabet, int gzip) {
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) return -1;
    if (write_attrs(w, alphabet)) return -1;
    w->str_type = H5Tcopy(H5T_C_S1);
    if (w->str_type < 0 || H5Tset_size(w->str_type, H5T_VARIABLE) < 0 ||
        H5Tset_cset(w->str_type, H5T_CSET_UTF8) < 0)
        return -1;
    w->images =
        create_extendible(w->file, "/images", H5T_STD_U8LE, 3, w->rows, w->height, w->width, gzip);
    if (!w->unlabeled)
        w->labels = create_extendible(w->file, "/labels", w->str_type, 1, w->rows, 0, 0, gzip);
    w->widths = create_extendible(w->file, "/widths", H5T_STD_I32LE, 1, w->rows, 0, 0, gzip);
    return w->images < 0 || (!w->unlabeled && w->labels < 0) || w->widths < 0 ? -1 : 0;
}

static void close_handles(DatasetWriter *w) {
    if (w->images >= 0) H5Dclose(w->images);
    if (w->labels >= 0) H5Dclose(w->labels);
    if (w->widths >= 0) H5Dclose(w->widths);
    if (w->str_type >= 0) H5Tclose(w->str_type);
    if (w->file >= 0) H5Fclose(w->file);
    w->images = w->labels = w->widths = w->str_type = w->file = -1;
}

static void writer_free(DatasetWriter *w) {
    free(w->path);
    free(w->tmp);
    free(w->img_buf);
    free(w->width_buf);
    free(w->text_pool);
    free(w->text_off);
    free(w);
}

static int writer_open(DatasetWriter **out, const char *path, int height, int width,
                       const char *alphabet, int gzip, int unlabeled, Err *err) {
    *out = NULL;
    Alphabet a;
    Err aerr;
    if (alphabet_init(&a, alphabet, &aerr))
        return err_set(err, EXIT_USAGE, "%s: %s", path, aerr.msg);
    alphabet_free(&a);
    if (height < 1 || width < 1 || gzip < 0 || gzip > 9)
        return err_set(err, EXIT_USAGE, "%s: bad writer settings (height %d, width %d, gzip %d)",
                       path, height, width, gzip);
    DatasetWriter *w = xcalloc(1, sizeof *w);
    w->path = xstrdup(path);
    w->tmp = xmalloc(strlen(path) + 5);
    sprintf(w->tmp, "%s.tmp", path);
    w->height = height, w->width = width, w->rows = chunk_rows(height, width, gzip);
    w->unlabeled = unlabeled;
    w->file = w->images = w->labels = w->widths = w->str_type = -1;
    w->img_buf = xmalloc((size_t)w->rows * (size_t)height * (size_t)width);
    w->width_buf = xmalloc((size_t)w->rows * sizeof *w->width_buf);
    w->text_off = xmalloc((size_t)w->rows * sizeof *w->text_off);
    w->pool_cap = (size_t)w->rows * 64;
    w->text_pool = xmalloc(w->pool_cap);
    dataset_hdf5_lock();
    h5_quiet();
    int bad = create_all(w, alphabet, gzip);
    if (bad) err_set(err, EXIT_DATA, "%s: cannot create dataset file: %s", w->tmp, h5_last_error());
    dataset_hdf5_unlock();
    if (bad) {
        dswriter_abort(w);
        return EXIT_DATA;
    }
    *out = w;
    return 0;
}

int dswriter_open(DatasetWriter **out, const char *path, int height, int width,
                  const char *alphabet, int gzip, Err *err) {
    return writer_open(out, path, height, width, alphabet, gzip, 0, err);
}

int dswriter_open_unlabeled(DatasetWriter **out, const char *path, int height, int width,
                            const char *alphabet, int gzip, Err *err) {
    return writer_open(out, path, height, width, alphabet, gzip, 1, err);
}

/* Grows dataset d to new_n along N and writes count rows of buf at off. */
static int append_rows(hid_t d, hid_t mem_type, int rank, long off, long count, int H, int W,
                       const void *buf) {
    hsize_t size[3] = {(hsize_t)(off + count), (hsize_t)H, (hsize_t)W};
    hsize_t start[3] = {(hsize_t)off, 0, 0}, cnt[3] = {(hsize_t)count, (hsize_t)H, (hsize_t)W};
    if (H5Dset_extent(d, size) < 0) return -1;
    hid_t fs = H5Dget_space(d), ms = H5Screate_simple(rank, cnt, NULL);
    int rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0)
        rc = H5Dwrite(d, mem_type, ms, fs, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    return rc;
}

static int flush_block(DatasetWriter *w, Err *err) {
    if (w->n_buf == 0) return 0;
    const char *texts[256];
    for (int i = 0; i < w->n_buf; i++)
        texts[i] = w->text_pool + w->text_off[i];
    dataset_hdf5_lock();
    int bad =
        append_rows(w->images, H5T_NATIVE_UINT8, 3, w->n_written, w->n_buf, w->height, w->width,
                    w->img_buf) ||
        (!w->unlabeled &&
         append_rows(w->labels, w->str_type, 1, w->n_written, w->n_buf, 0, 0, texts)) ||
        append_rows(w->widths, H5T_NATIVE_INT32, 1, w->n_written, w->n_buf, 0, 0, w->width_buf);
    if (bad)
        err_set(err, EXIT_DATA, "%s: writing samples %ld..%ld: %s", w->tmp, w->n_written,
                w->n_written + w->n_buf - 1, h5_last_error());
    dataset_hdf5_unlock();
    if (bad) return EXIT_DATA;
    w->n_written += w->n_buf;
    w->n_buf = 0;
    w->pool_used = 0;
    return 0;
}

int dswriter_add(DatasetWriter *w, const uint8_t *img, int used_width, const char *label,
                 Err *err) {
    long index = w->n_written + w->n_buf;
    if (used_width < 0 || used_width > w->width)
        return err_set(err, EXIT_DATA, "%s: sample %ld: used width %d is outside 0..%d", w->path,
                       index, used_width, w->width);
    if (w->unlabeled != !label)
        return err_set(err, EXIT_USAGE, "%s: sample %ld: %s", w->path, index,
                       label ? "a label for an unlabeled file" : "no label for a labeled file");
    if (!label) label = ""; /* buffered like a label, never written */
    const char *p = label;
    uint32_t cp;
    int r;
    while ((r = utf8_next(&p, &cp)) == 1)
        continue;
    if (r < 0)
        return err_set(err, EXIT_DATA, "%s: sample %ld: label is not valid UTF-8", w->path, index);
    size_t len = strlen(label) + 1;
    if (w->pool_used + len > w->pool_cap) {
        w->pool_cap = 2 * (w->pool_used + len);
        w->text_pool = xrealloc(w->text_pool, w->pool_cap);
    }
    memcpy(w->text_pool + w->pool_used, label, len);
    w->text_off[w->n_buf] = w->pool_used;
    w->pool_used += len;
    size_t img_bytes = (size_t)w->height * (size_t)w->width;
    memcpy(w->img_buf + (size_t)w->n_buf * img_bytes, img, img_bytes);
    w->width_buf[w->n_buf] = used_width;
    w->n_buf++;
    return w->n_buf == w->rows ? flush_block(w, err) : 0;
}

int dswriter_close(DatasetWriter *w, Err *err) {
    int rc = flush_block(w, err);
    if (rc) {
        dswriter_abort(w);
        return rc;
    }
    dataset_hdf5_lock();
    int bad = H5Fflush(w->file, H5F_SCOPE_GLOBAL) < 0;
    close_handles(w);
    dataset_hdf5_unlock();
    if (bad) {
        err_set(err, EXIT_DATA, "%s: flushing: %s", w->tmp, h5_last_error());
        dswriter_abort(w);
        return EXIT_DATA;
    }
    if (fsync_and_rename(w->tmp, w->path) != 0) {
        err_set(err, EXIT_DATA, "%s: renaming %s into place: %s", w->path, w->tmp, strerror(errno));
        dswriter_abort(w);
        return EXIT_DATA;
    }
    writer_free(w);
    return 0;
}

void dswriter_abort(DatasetWriter *w) {
    if (!w) return;
    dataset_hdf5_lock();
    close_handles(w);
    dataset_hdf5_unlock();
    unlink(w->tmp);
    writer_free(w);
}
