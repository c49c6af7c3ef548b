/* pack_lmdb.c - the LMDB reader behind ocrkd-pack --lmdb (see pack_lmdb.h).
 * One read-only transaction stays open for the whole pack, so image values
 * are used in place from the memory map, never copied. Not for writing LMDB
 * (data-tools/h5_to_lmdb.py does that). */
#include "pack_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct LmdbSamples {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
};

/* The value of key, or NULL (absent or unreadable). */
static const MDB_val *get(LmdbSamples *s, const char *key, MDB_val *val) {
    MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
    return mdb_get(s->txn, s->dbi, &k, val) == 0 ? val : NULL;
}

/* num-samples as written by the Python tools: decimal ASCII. */
static long parse_count(const MDB_val *v) {
    if (!v || v->mv_size == 0 || v->mv_size > 18) return -1;
    long n = 0;
    for (size_t i = 0; i < v->mv_size; i++) {
        char c = ((const char *)v->mv_data)[i];
        if (c < '0' || c > '9') return -1;
        n = 10 * n + (c - '0');
    }
    return n;
}

int lmdb_samples_open(const char *dir, LmdbSamples **out, long *n, Err *err) {
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0)
        return err_set(err, EXIT_DATA, "%s: cannot open LMDB: %s", dir, strerror(errno));
    /* readers of a finished dataset need no lock file (and may lack write access) */
    unsigned flags =
        MDB_RDONLY | MDB_NOLOCK | MDB_NORDAHEAD | (S_ISDIR(st.st_mode) ? 0 : MDB_NOSUBDIR);
    LmdbSamples *s = xcalloc(1, sizeof *s);
    int rc = mdb_env_create(&s->env);
    if (rc == 0) rc = mdb_env_open(s->env, dir, flags, 0644);
    if (rc == 0) rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn);
    if (rc == 0) rc = mdb_dbi_open(s->txn, NULL, 0, &s->dbi);
    if (rc) {
        lmdb_samples_close(s);
        return err_set(err, EXIT_DATA, "%s: not a readable LMDB: %s", dir,
                       rc == ENOENT ? "no data.mdb in it" : mdb_strerror(rc));
    }
    MDB_val v;
    long count = parse_count(get(s, "num-samples", &v));
    if (count < 0) {
        int absent = !get(s, "num-samples", &v);
        lmdb_samples_close(s);
        return err_set(err, EXIT_DATA, "%s: %s (the deep-text-recognition-benchmark layout)", dir,
                       absent ? "no num-samples key" : "num-samples is not a decimal count");
    }
    MDB_stat ms;
    if (mdb_stat(s->txn, s->dbi, &ms) == 0 && (size_t)count > ms.ms_entries) {
        lmdb_samples_close(s);
        return err_set(err, EXIT_DATA, "%s: num-samples is %ld but the LMDB holds only %zu keys",
                       dir, count, (size_t)ms.ms_entries);
    }
    *out = s;
    *n = count;
    return 0;
}

char *lmdb_samples_label(LmdbSamples *s, long i) {
    char key[32];
    MDB_val v;
    snprintf(key, sizeof key, "label-%09ld", i);
    if (!get(s, key, &v)) return NULL;
    char *label = xmalloc(v.mv_size + 1);
    memcpy(label, v.mv_data, v.mv_size);
    label[v.mv_size] = 0;
    return label;
}

int lmdb_samples_image(LmdbSamples *s, long i, const void **bytes, size_t *len) {
    char key[32];
    MDB_val v;
    snprintf(key, sizeof key, "image-%09ld", i);
    if (!get(s, key, &v)) return -1;
    *bytes = v.mv_data;
    *len = v.mv_size;
    return 0;
}

void lmdb_samples_close(LmdbSamples *s) {
    if (!s) return;
    if (s->txn) mdb_txn_abort(s->txn);
    if (s->env) mdb_env_close(s->env);
    free(s);
}
