/* checkpoint.c - the checkpoint file (SPEC "Checkpoint file"): root
 * attributes, /params as a PyTorch state_dict (one float32 dataset per
 * tensor, one chunk, Fletcher-32), /optim and /state blobs for resume.
 * Writes are atomic (PATH.tmp, flush, fsync, rename) and use the latest HDF5
 * file format so that metadata is checksummed too; the string attributes
 * live in HDF5's global heap, which is not, so attr_checksums covers every
 * attribute that changes meaning. ckpt_verify reads every dataset so a torn
 * or bit-rotted file is caught before a resume trusts it.
 *
 * Not for the run directory (rotation of ckpt-SSSSSSSS.h5, the resume
 * search, setting an earlier run aside: checkpoint_files.c), for deciding
 * what goes into /state (train/run_state.c passes named blobs) nor
 * for building models beyond ckpt_load_model's config -> arch -> crnn_create. */
#include "ocrkd/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ocrkd/config.h"
#include "ocrkd/dataset.h"
#include "ocrkd/h5util.h"
#include "ocrkd/utf8.h"

#define BLOB_CHUNK (1u << 20) /* elements per chunk of a blob (4-8 MB) */

void ckpt_meta_free(CkptMeta *m) {
    free(m->kind);
    free(m->config);
    free(m->alphabet);
    free(m->run_id);
    m->kind = m->config = m->alphabet = m->run_id = NULL;
}

/* ---- attribute checksums ---- */
/* The attributes covered, in the order attr_checksums lists them. */
enum { A_KIND = 0, A_CONFIG, A_ALPHABET, A_STEP, A_EPOCH, A_WORLD, A_RUN_ID, A_COUNT };
static const char *const attr_names[A_COUNT] = {"kind",  "config",     "alphabet", "step",
                                                "epoch", "world_size", "run_id"};

/* Attribute i as the checksum sees it: a string as stored, an integer in
 * decimal (so any writer can reproduce it, e.g. from Python). */
static const char *attr_text(const CkptMeta *m, int i, char *num, size_t cap) {
    const char *s = NULL;
    switch (i) {
    case A_KIND:
        s = m->kind;
        break;
    case A_CONFIG:
        s = m->config;
        break;
    case A_ALPHABET:
        s = m->alphabet;
        break;
    case A_RUN_ID:
        s = m->run_id;
        break;
    default:
        snprintf(num, cap, "%ld",
                 i == A_STEP    ? m->step
                 : i == A_EPOCH ? m->epoch
                                : (long)m->world_size);
        return num;
    }
    return s ? s : "";
}

/* FNV-1a 64 with its standard offset basis, so that any writer can
 * reproduce it (doc/checkpoint.md has it in Python). */
#define FNV64_BASIS 14695981039346656037ULL

static uint64_t attr_hash(const CkptMeta *m, int i) {
    char num[32];
    const char *s = attr_text(m, i, num, sizeof num);
    return hash_bytes(FNV64_BASIS, s, strlen(s));
}

static int has_run_id(const CkptMeta *m) {
    return m->run_id && m->run_id[0];
}

/* "fnv1a64 kind=HEX config=HEX ... [run_id=HEX]" (FNV-1a 64 of each text). */
static void checksums_text(const CkptMeta *m, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "fnv1a64");
    for (int i = 0; i < A_COUNT && n < cap; i++)
        if (i != A_RUN_ID || has_run_id(m))
            n += (size_t)snprintf(buf + n, cap - n, " %s=%016llx", attr_names[i],
                                  (unsigned long long)attr_hash(m, i));
}

/* Checks meta against the attr_checksums text of path: every attribute
 * must be listed (run_id when the file has one) and match. */
static int check_checksums(const char *path, const char *text, const CkptMeta *m, Err *err) {
    const char *p = text;
    if (strncmp(p, "fnv1a64", 7) != 0)
        return err_set(err, EXIT_CKPT,
                       "%s: attribute '%s' is corrupt or of an unknown kind (\"%.40s\")", path,
                       CKPT_CHECKSUMS_ATTR, text);
    p += 7;
    int seen = 0;
    while (*p == ' ') {
        char name[32];
        unsigned long long want;
        int used = 0;
        if (sscanf(p, " %31[a-z_]=%16llx%n", name, &want, &used) != 2)
            return err_set(err, EXIT_CKPT, "%s: attribute '%s' is corrupt (at \"%.40s\")", path,
                           CKPT_CHECKSUMS_ATTR, p);
        p += used;
        int i = 0;
        while (i < A_COUNT && strcmp(attr_names[i], name) != 0)
            i++;
        if (i == A_COUNT)
            return err_set(err, EXIT_CKPT, "%s: attribute '%s' lists an unknown attribute '%s'",
                           path, CKPT_CHECKSUMS_ATTR, name);
        if (attr_hash(m, i) != want)
            return err_set(err, EXIT_CKPT,
                           "%s: attribute '%s' does not match its checksum in '%s' (the file is "
                           "corrupt or was edited)",
                           path, name, CKPT_CHECKSUMS_ATTR);
        seen |= 1 << i;
    }
    if (*p)
        return err_set(err, EXIT_CKPT, "%s: attribute '%s' is corrupt (at \"%.40s\")", path,
                       CKPT_CHECKSUMS_ATTR, p);
    for (int i = 0; i < A_COUNT; i++)
        if (!(seen & (1 << i)) && (i != A_RUN_ID || has_run_id(m)))
            return err_set(err, EXIT_CKPT, "%s: attribute '%s' is not covered by '%s'", path,
                           attr_names[i], CKPT_CHECKSUMS_ATTR);
    return 0;
}

/* The values a checkpoint may hold (after its checksums matched). */
static int check_values(const char *path, const CkptMeta *m, Err *err) {
    if (strcmp(m->kind, "teacher") != 0 && strcmp(m->kind, "student") != 0)
        return err_set(err, EXIT_CKPT,
                       "%s: attribute 'kind' is \"%.40s\", expected \"teacher\" or \"student\"",
                       path, m->kind);
    long nums[2] = {m->step, m->epoch};
    for (int i = 0; i < 2; i++)
        if (nums[i] < 0 || nums[i] > CKPT_MAX_STEP)
            return err_set(err, EXIT_CKPT, "%s: attribute '%s' is %ld, outside 0..%ld", path,
                           attr_names[A_STEP + i], nums[i], CKPT_MAX_STEP);
    Alphabet a;
    Err inner = {0};
    if (alphabet_init(&a, m->alphabet, &inner))
        return err_set(err, EXIT_CKPT, "%s: attribute 'alphabet': %s", path, inner.msg);
    alphabet_free(&a);
    size_t len = strlen(m->run_id);
    int hex = len == 0 || len == CKPT_RUN_ID_LEN;
    for (size_t i = 0; i < len && hex; i++)
        hex = strchr("0123456789abcdef", m->run_id[i]) != NULL;
    if (!hex)
        return err_set(err, EXIT_CKPT, "%s: attribute 'run_id' is \"%.40s\", not %d hex digits",
                       path, m->run_id, CKPT_RUN_ID_LEN);
    return 0;
}

/* ---- small HDF5 helpers ---- */

static hid_t blob_mem_type(int type) {
    switch (type) {
    case BLOB_F32:
        return H5T_NATIVE_FLOAT;
    case BLOB_F64:
        return H5T_NATIVE_DOUBLE;
    case BLOB_I64:
        return H5T_NATIVE_INT64;
    case BLOB_U64:
        return H5T_NATIVE_UINT64;
    }
    return -1;
}

static hid_t blob_file_type(int type) {
    switch (type) {
    case BLOB_F32:
        return H5T_IEEE_F32LE;
    case BLOB_F64:
        return H5T_IEEE_F64LE;
    case BLOB_I64:
        return H5T_STD_I64LE;
    case BLOB_U64:
        return H5T_STD_U64LE;
    }
    return -1;
}

static const char *blob_type_name(int type) {
    static const char *names[] = {"float32", "float64", "int64", "uint64"};
    return type >= 0 && type < 4 ? names[type] : "unknown";
}

/* Does the (possibly nested, "a/b/c") link exist? Checks each level, since
 * H5Lexists fails rather than answers when an intermediate group is missing. */
static int link_exists(hid_t loc, const char *name) {
    char part[512];
    const char *p = name;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - name) : strlen(name);
        if (len >= sizeof part) return 0;
        memcpy(part, name, len);
        part[len] = 0;
        if (H5Lexists(loc, part, H5P_DEFAULT) <= 0) return 0;
        if (!slash) return 1;
        p = slash + 1;
    }
}

/* "[64, 1, 3, 3]" */
static void dims_str(int ndim, const hsize_t *dims, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Creates dataset `name` (intermediate groups too) with the Fletcher-32
 * filter, chunked in chunks of `chunk` (rank ndim), and writes data. */
static int write_dataset(hid_t loc, const char *name, hid_t ftype, hid_t mtype, int ndim,
                         const hsize_t *dims, const hsize_t *chunk, const void *data) {
    hsize_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= dims[i];
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    int rc = -1;
    if (sp >= 0 && dcpl >= 0 && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
        (n == 0 || (H5Pset_chunk(dcpl, ndim, chunk) >= 0 && H5Pset_fletcher32(dcpl) >= 0))) {
        hid_t d = H5Dcreate2(loc, name, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
        if (d >= 0) {
            rc = n == 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0 ? 0 : -1;
            if (H5Dclose(d) < 0) rc = -1;
        }
    }
    if (lcpl >= 0) H5Pclose(lcpl);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* ---- writing ---- */

static int write_attrs(hid_t f, const CkptMeta *meta, const char *path, Err *err) {
    char sums[512];
    checksums_text(meta, sums, sizeof sums);
    const char *snames[] = {"format", "kind", "config", "alphabet", "run_id", CKPT_CHECKSUMS_ATTR};
    const char *svals[] = {CKPT_FORMAT,    meta->kind,   meta->config,
                           meta->alphabet, meta->run_id, sums};
    for (int i = 0; i < 6; i++)
        if ((i != 4 || has_run_id(meta)) &&
            h5_attr_write_string(f, snames[i], svals[i] ? svals[i] : "") < 0)
            return err_set(err, EXIT_CKPT, "writing checkpoint %s: attribute '%s': %s", path,
                           snames[i], h5_last_error());
    const char *lnames[] = {"version", "step", "epoch", "world_size"};
    long lvals[] = {CKPT_VERSION, meta->step, meta->epoch, meta->world_size};
    for (int i = 0; i < 4; i++)
        if (h5_attr_write_long(f, lnames[i], lvals[i]) < 0)
            return err_set(err, EXIT_CKPT, "writing checkpoint %s: attribute '%s': %s", path,
                           lnames[i], h5_last_error());
    return 0;
}

/* Every tensor of m (parameters and buffers) as /params/NAME, one chunk. */
static int write_params(hid_t f, const Crnn *m, const char *path, Err *err) {
    hid_t g = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return err_set(err, EXIT_CKPT, "writing checkpoint %s: creating /params: %s", path,
                       h5_last_error());
    for (int i = 0; i < m->ntensors; i++) {
        const TensorInfo *t = &m->tensors[i];
        hsize_t dims[4];
        for (int k = 0; k < t->ndim; k++)
            dims[k] = (hsize_t)t->shape[k];
        if (write_dataset(g, t->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->ndim, dims, dims,
                          crnn_tensor(m, t)) < 0) {
            err_set(err, EXIT_CKPT, "writing checkpoint %s: tensor %s: %s", path, t->name,
                    h5_last_error());
            H5Gclose(g);
            return EXIT_CKPT;
        }
    }
    return H5Gclose(g) < 0 ? err_set(err, EXIT_CKPT, "writing checkpoint %s: closing /params", path)
                           : 0;
}

static int write_blobs(hid_t f, const CkptBlob *blobs, int nblobs, const char *path, Err *err) {
    const char *groups[] = {"optim", "state"};
    for (int i = 0; i < 2; i++) {
        hid_t g = H5Gcreate2(f, groups[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0 || H5Gclose(g) < 0)
            return err_set(err, EXIT_CKPT, "writing checkpoint %s: creating /%s: %s", path,
                           groups[i], h5_last_error());
    }
    for (int i = 0; i < nblobs; i++) {
        const CkptBlob *b = &blobs[i];
        if (strncmp(b->name, "optim/", 6) && strncmp(b->name, "state/", 6))
            return err_set(err, EXIT_CKPT,
                           "writing checkpoint %s: blob name '%s' must start "
                           "with optim/ or state/",
                           path, b->name);
        if (blob_mem_type(b->type) < 0)
            return err_set(err, EXIT_CKPT, "writing checkpoint %s: blob %s has unknown type %d",
                           path, b->name, b->type);
        hsize_t dims[1] = {b->n}, chunk[1] = {MIN(b->n, (size_t)BLOB_CHUNK)};
        if (write_dataset(f, b->name, blob_file_type(b->type), blob_mem_type(b->type), 1, dims,
                          chunk, b->data) < 0)
            return err_set(err, EXIT_CKPT, "writing checkpoint %s: blob %s: %s", path, b->name,
                           h5_last_error());
    }
    return 0;
}

/* A file access list for the latest format (checksummed metadata) without
 * file locking (which fails or hangs on some parallel file systems). */
static hid_t latest_fapl(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    if (H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return -1;
    }
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    return fapl;
}

static int write_file(const char *tmp, const Crnn *m, const CkptMeta *meta, const CkptBlob *blobs,
                      int nblobs, const char *path, Err *err) {
    hid_t fapl = latest_fapl();
    hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0)
        return err_set(err, EXIT_CKPT, "writing checkpoint %s: cannot create %s: %s (%s)", path,
                       tmp, h5_last_error(), strerror(errno));
    int rc = write_attrs(f, meta, path, err);
    if (!rc) rc = write_params(f, m, path, err);
    if (!rc) rc = write_blobs(f, blobs, nblobs, path, err);
    if (!rc && H5Fflush(f, H5F_SCOPE_GLOBAL) < 0)
        rc = err_set(err, EXIT_CKPT, "writing checkpoint %s: flushing %s: %s", path, tmp,
                     h5_last_error());
    if (H5Fclose(f) < 0 && !rc)
        rc = err_set(err, EXIT_CKPT, "writing checkpoint %s: closing %s: %s", path, tmp,
                     h5_last_error());
    return rc;
}

static int ckpt_write_unlocked(const char *path, const Crnn *m, const CkptMeta *meta,
                               const CkptBlob *blobs, int nblobs, Err *err) {
    h5_quiet();
    size_t len = strlen(path) + 5;
    char *tmp = xmalloc(len);
    snprintf(tmp, len, "%s.tmp", path);
    int rc = write_file(tmp, m, meta, blobs, nblobs, path, err);
    if (!rc && fsync_and_rename(tmp, path) != 0)
        rc = err_set(err, EXIT_CKPT, "writing checkpoint %s: fsync and rename of %s: %s", path, tmp,
                     strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- reading ---- */

/* Opens a checkpoint read-only and checks its format and version attributes. */
static hid_t open_ckpt(const char *path, Err *err) {
    h5_quiet();
    if (access(path, R_OK) != 0) {
        err_set(err, EXIT_CKPT, "cannot open checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    hid_t f = h5_open_ro(path);
    if (f < 0) {
        /* h5_open_ro's cleanup clears HDF5's error stack: open once more for the reason */
        hid_t again = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (again >= 0) H5Fclose(again);
        err_set(err, EXIT_CKPT,
                "cannot open checkpoint %s: not a readable HDF5 file (truncated "
                "or corrupt?): %s",
                path, h5_last_error());
        return -1;
    }
    char *format = NULL;
    long version = 0;
    if (h5_attr_read_string(f, "format", &format) < 0) {
        err_set(err, EXIT_CKPT, "%s is not an ocrkd checkpoint (no 'format' attribute)", path);
    } else if (strcmp(format, CKPT_FORMAT) != 0) {
        err_set(err, EXIT_CKPT, "%s is not an ocrkd checkpoint (format \"%s\", expected \"%s\")",
                path, format, CKPT_FORMAT);
    } else if (h5_attr_read_long(f, "version", &version) < 0) {
        err_set(err, EXIT_CKPT, "%s: checkpoint has no integer 'version' attribute", path);
    } else if (version < 1 || version > CKPT_VERSION) {
        err_set(err, EXIT_CKPT,
                "%s: checkpoint version %ld is not supported (this ocrkd reads "
                "version %d)",
                path, version, CKPT_VERSION);
    } else {
        free(format);
        return f;
    }
    free(format);
    H5Fclose(f);
    return -1;
}

/* A file from before attr_checksums: say so once per file and process. */
static void warn_unchecked(const char *path) {
    static char warned[OCRKD_PATH_MAX];
    if (!strcmp(warned, path)) return;
    snprintf(warned, sizeof warned, "%s", path);
    warn0("%s has no '%s' attribute (written by an older ocrkd or another tool): its "
          "alphabet and config cannot be verified; loading it anyway",
          path, CKPT_CHECKSUMS_ATTR);
}

/* ckpt_read_meta; quiet: no warning for a file without checksums. */
static int read_meta(const char *path, CkptMeta *meta, int quiet, Err *err) {
    memset(meta, 0, sizeof *meta);
    hid_t f = open_ckpt(path, err);
    if (f < 0) return EXIT_CKPT;
    const char *snames[] = {"kind", "config", "alphabet"};
    char **sdst[] = {&meta->kind, &meta->config, &meta->alphabet};
    const char *lnames[] = {"version", "step", "epoch", "world_size"};
    long lvals[4] = {0};
    char *sums = NULL;
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++)
        if (h5_attr_read_string(f, snames[i], sdst[i]) < 0)
            rc = err_set(err, EXIT_CKPT, "%s: checkpoint has no string attribute '%s'", path,
                         snames[i]);
    for (int i = 0; i < 4 && !rc; i++)
        if (h5_attr_read_long(f, lnames[i], &lvals[i]) < 0)
            rc = err_set(err, EXIT_CKPT, "%s: checkpoint has no integer attribute '%s'", path,
                         lnames[i]);
    const char *optional[] = {"run_id", CKPT_CHECKSUMS_ATTR};
    char **odst[] = {&meta->run_id, &sums};
    for (int i = 0; i < 2 && !rc; i++)
        if (h5_attr_exists(f, optional[i]) && h5_attr_read_string(f, optional[i], odst[i]) < 0)
            rc = err_set(err, EXIT_CKPT, "%s: attribute '%s' is not a readable string", path,
                         optional[i]);
    H5Fclose(f);
    if (!meta->run_id) meta->run_id = xstrdup("");
    if (!rc && (lvals[3] < 1 || lvals[3] > CKPT_MAX_WORLD)) /* before the cast to int */
        rc = err_set(err, EXIT_CKPT, "%s: attribute 'world_size' is %ld, outside 1..%d", path,
                     lvals[3], CKPT_MAX_WORLD);
    meta->version = (int)lvals[0];
    meta->step = lvals[1];
    meta->epoch = lvals[2];
    meta->world_size = rc ? 0 : (int)lvals[3];
    if (!rc && sums) rc = check_checksums(path, sums, meta, err);
    if (!rc) rc = check_values(path, meta, err);
    if (!rc && !sums && !quiet) warn_unchecked(path);
    free(sums);
    if (rc) ckpt_meta_free(meta);
    return rc;
}

/* Reads /params/NAME into the tensor t of m after checking its shape. */
static int read_tensor(hid_t g, const Crnn *m, const TensorInfo *t, const char *path, Err *err) {
    hid_t d = H5Dopen2(g, t->name, H5P_DEFAULT);
    if (d < 0)
        return err_set(err, EXIT_CKPT, "%s: cannot open tensor %s: %s", path, t->name,
                       h5_last_error());
    hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
    hsize_t dims[8] = {0}, want[4];
    int ndim = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (ndim >= 0 && ndim <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    int same = ndim == t->ndim;
    for (int k = 0; k < t->ndim; k++) {
        want[k] = (hsize_t)t->shape[k];
        same = same && dims[k] == want[k];
    }
    int rc = 0;
    char got_s[96], want_s[96];
    if (!same) {
        dims_str(ndim < 0 ? 0 : MIN(ndim, 8), dims, got_s, sizeof got_s);
        dims_str(t->ndim, want, want_s, sizeof want_s);
        rc = err_set(err, EXIT_CKPT, "%s: tensor %s has shape %s in the file, the model expects %s",
                     path, t->name, got_s, want_s);
    } else if (ft < 0 || H5Tget_class(ft) != H5T_FLOAT) {
        rc = err_set(err, EXIT_CKPT, "%s: tensor %s is not floating point", path, t->name);
    } else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, crnn_tensor(m, t)) < 0) {
        rc = err_set(err, EXIT_CKPT, "%s: reading tensor %s: %s", path, t->name, h5_last_error());
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(d);
    return rc;
}

/* strict: every name in /params must be a tensor of m (PyTorch's
 * num_batches_tracked counters excepted). */
static int check_no_extra(hid_t g, const Crnn *m, const char *path, Err *err) {
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return err_set(err, EXIT_CKPT, "%s: listing /params: %s", path, h5_last_error());
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return err_set(err, EXIT_CKPT, "%s: listing /params: %s", path, h5_last_error());
        if (!crnn_find(m, name) && !str_ends_with(name, "num_batches_tracked"))
            return err_set(err, EXIT_CKPT,
                           "%s: /params/%s is not a tensor of this model (a "
                           "different architecture?)",
                           path, name);
    }
    return 0;
}

static int ckpt_read_params_unlocked(const char *path, Crnn *m, int parts, int strict, Err *err) {
    CkptMeta meta; /* tensors only from a file whose attributes verify (model.init too) */
    if (read_meta(path, &meta, 0, err)) return EXIT_CKPT;
    ckpt_meta_free(&meta);
    hid_t f = open_ckpt(path, err);
    if (f < 0) return EXIT_CKPT;
    hid_t g = H5Gopen2(f, "params", H5P_DEFAULT);
    int rc = g < 0 ? err_set(err, EXIT_CKPT, "%s: checkpoint has no /params group", path) : 0;
    for (int i = 0; i < m->ntensors && !rc; i++) {
        const TensorInfo *t = &m->tensors[i];
        if (!(t->part & parts)) continue;
        if (H5Lexists(g, t->name, H5P_DEFAULT) <= 0) {
            if (strict)
                rc =
                    err_set(err, EXIT_CKPT, "%s: tensor %s is missing from /params", path, t->name);
            continue;
        }
        rc = read_tensor(g, m, t, path, err);
    }
    if (!rc && strict) rc = check_no_extra(g, m, path, err);
    if (g >= 0) H5Gclose(g);
    H5Fclose(f);
    crnn_params_changed(m);
    return rc;
}

static int ckpt_read_blob_unlocked(const char *path, const char *name, int type, void *data,
                                   size_t n, Err *err) {
    if (blob_mem_type(type) < 0)
        return err_set(err, EXIT_CKPT, "%s: blob %s: unknown type %d", path, name, type);
    hid_t f = open_ckpt(path, err);
    if (f < 0) return EXIT_CKPT;
    int rc = 0;
    hid_t d = link_exists(f, name) ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (d < 0) {
        rc = err_set(err, EXIT_CKPT, "%s: checkpoint has no /%s (written by a run without it?)",
                     path, name);
    } else {
        hid_t sp = H5Dget_space(d), ft = H5Dget_type(d);
        hssize_t got = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        H5T_class_t want_class = type == BLOB_F32 || type == BLOB_F64 ? H5T_FLOAT : H5T_INTEGER;
        if (got != (hssize_t)n)
            rc = err_set(err, EXIT_CKPT, "%s: /%s has %lld elements, expected %zu", path, name,
                         (long long)got, n);
        else if (ft < 0 || H5Tget_class(ft) != want_class)
            rc =
                err_set(err, EXIT_CKPT, "%s: /%s is not %s data", path, name, blob_type_name(type));
        else if (n > 0 && H5Dread(d, blob_mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
            rc = err_set(err, EXIT_CKPT, "%s: reading /%s: %s", path, name, h5_last_error());
        if (ft >= 0) H5Tclose(ft);
        if (sp >= 0) H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return rc;
}

static int ckpt_has_blob_unlocked(const char *path, const char *name) {
    Err err;
    hid_t f = open_ckpt(path, &err);
    if (f < 0) return 0;
    int yes = link_exists(f, name);
    H5Fclose(f);
    return yes;
}

/* ---- verification ---- */

typedef struct {
    const char *path;
    char *buf;
    size_t cap;
    Err *err;
} Verify;

/* Reads a whole dataset; the Fletcher-32 filter fails the read if any byte
 * of a chunk changed. Variable-length data is not covered by the filter and
 * is skipped. */
static int verify_dataset(Verify *v, hid_t d, const char *name) {
    hid_t ft = H5Dget_type(d), sp = H5Dget_space(d);
    int rc = 0;
    hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    if (ft < 0 || n < 0) {
        rc = err_set(v->err, EXIT_CKPT, "%s: %s is unreadable: %s", v->path, name, h5_last_error());
    } else if (H5Tget_class(ft) != H5T_VLEN && H5Tis_variable_str(ft) <= 0 && n > 0) {
        size_t bytes = (size_t)n * H5Tget_size(ft);
        if (bytes > v->cap) v->buf = xrealloc(v->buf, v->cap = bytes);
        if (H5Dread(d, ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, v->buf) < 0)
            rc = err_set(v->err, EXIT_CKPT, "%s: %s is corrupt (checksum or read error): %s",
                         v->path, name, h5_last_error());
    }
    if (ft >= 0) H5Tclose(ft);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

/* Every object below group g (named gname, e.g. "/params"), depth first. */
static int verify_group(Verify *v, hid_t g, const char *gname) {
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0)
        return err_set(v->err, EXIT_CKPT, "%s: listing %s: %s", v->path, gname, h5_last_error());
    int rc = 0;
    for (hsize_t i = 0; i < info.nlinks && !rc; i++) {
        char name[256], full[600];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            return err_set(v->err, EXIT_CKPT, "%s: listing %s: %s", v->path, gname,
                           h5_last_error());
        snprintf(full, sizeof full, "%s/%s", strcmp(gname, "/") ? gname : "", name);
        hid_t o = H5Oopen(g, name, H5P_DEFAULT);
        if (o < 0)
            return err_set(v->err, EXIT_CKPT, "%s: %s is unreadable: %s", v->path, full,
                           h5_last_error());
        H5I_type_t kind = H5Iget_type(o);
        if (kind == H5I_GROUP)
            rc = verify_group(v, o, full);
        else if (kind == H5I_DATASET)
            rc = verify_dataset(v, o, full);
        H5Oclose(o);
    }
    return rc;
}

static int ckpt_verify_unlocked(const char *path, Err *err) {
    CkptMeta meta;
    if (ckpt_read_meta(path, &meta, err)) return EXIT_CKPT;
    ckpt_meta_free(&meta);
    hid_t f = open_ckpt(path, err);
    if (f < 0) return EXIT_CKPT;
    Verify v = {path, NULL, 0, err};
    int rc = verify_group(&v, f, "/");
    if (!rc && H5Lexists(f, "params", H5P_DEFAULT) <= 0)
        rc = err_set(err, EXIT_CKPT, "%s: checkpoint has no /params group", path);
    free(v.buf);
    H5Fclose(f);
    return rc;
}

/* ---- model from a checkpoint ---- */

/* Builds the architecture from meta's stored config and alphabet into cfg/arch. */
static int arch_from_meta(const char *path, const CkptMeta *meta, Config *cfg, ModelArch *arch,
                          Err *err) {
    char name[OCRKD_PATH_MAX + 32];
    snprintf(name, sizeof name, "%s (stored config)", path);
    Err inner = {0};
    if (config_load_string(cfg, meta->config, name, &inner))
        return err_set(err, EXIT_CKPT, "%s", inner.msg);
    long symbols = utf8_count(meta->alphabet);
    if (symbols < 1)
        return err_set(err, EXIT_CKPT, "%s: the alphabet attribute is %s", path,
                       symbols < 0 ? "not valid UTF-8" : "empty");
    free(cfg->alphabet);
    cfg->alphabet = xstrdup(meta->alphabet);
    if (arch_from_config(cfg, (int)symbols + 1, arch, &inner))
        return err_set(err, EXIT_CKPT, "%s: stored model: %s", path, inner.msg);
    return 0;
}

static int ckpt_load_model_unlocked(const char *path, int max_batch, int width, int train,
                                    Crnn **out, Config *cfg_out, CkptMeta *meta_out, Err *err) {
    *out = NULL;
    CkptMeta meta;
    if (ckpt_read_meta(path, &meta, err)) return EXIT_CKPT;
    Config cfg;
    ModelArch arch;
    int rc = arch_from_meta(path, &meta, &cfg, &arch, err);
    Crnn *m = NULL;
    if (!rc) {
        m = crnn_create(&arch, max_batch, width, train);
        rc = ckpt_read_params(path, m, PART_ALL, 1, err);
    }
    if (rc) {
        crnn_free(m);
        config_free(&cfg);
        ckpt_meta_free(&meta);
        return rc;
    }
    *out = m;
    if (cfg_out)
        *cfg_out = cfg;
    else
        config_free(&cfg);
    if (meta_out)
        *meta_out = meta;
    else
        ckpt_meta_free(&meta);
    return 0;
}

/* ---- the public functions: each holds the HDF5 lock (recursive) ---- */

int ckpt_write(const char *path, const Crnn *m, const CkptMeta *meta, const CkptBlob *blobs,
               int nblobs, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_write_unlocked(path, m, meta, blobs, nblobs, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_read_meta(const char *path, CkptMeta *meta, Err *err) {
    dataset_hdf5_lock();
    int rc = read_meta(path, meta, 0, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_read_meta_quiet(const char *path, CkptMeta *meta, Err *err) {
    dataset_hdf5_lock();
    int rc = read_meta(path, meta, 1, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_read_params(const char *path, Crnn *m, int parts, int strict, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_read_params_unlocked(path, m, parts, strict, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_read_blob(const char *path, const char *name, int type, void *data, size_t n, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_read_blob_unlocked(path, name, type, data, n, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_has_blob(const char *path, const char *name) {
    dataset_hdf5_lock();
    int rc = ckpt_has_blob_unlocked(path, name);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_verify(const char *path, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_verify_unlocked(path, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_load_model(const char *path, int max_batch, int width, int train, Crnn **out,
                    Config *cfg_out, CkptMeta *meta_out, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_load_model_unlocked(path, max_batch, width, train, out, cfg_out, meta_out, err);
    dataset_hdf5_unlock();
    return rc;
}
