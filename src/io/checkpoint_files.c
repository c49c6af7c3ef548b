/* checkpoint_files.c - the checkpoints of a run directory as files: their
 * names (ckpt-STEP.h5), listing newest first, run ids, pruning to
 * checkpoint.keep (only files of this run), the newest one that verifies
 * for --resume auto, and setting an earlier run aside (--resume fresh).
 * Not for what a checkpoint holds or how it is read and written
 * (checkpoint.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ocrkd/checkpoint.h"
#include "ocrkd/dataset.h"
#include "ocrkd/h5util.h"

void ckpt_path_for_step(const char *dir, long step, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/ckpt-%08ld.h5", dir, step);
}

typedef struct {
    long step;
    char name[64];
} CkptEntry;

/* The step of "ckpt-DIGITS.h5", or -1 for any other name. */
static long step_of_name(const char *name) {
    if (strncmp(name, "ckpt-", 5)) return -1;
    const char *p = name + 5;
    long step = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
        step = step * 10 + (*p - '0');
    return digits > 0 && !strcmp(p, ".h5") ? step : -1;
}

static int newest_first(const void *a, const void *b) {
    long x = ((const CkptEntry *)a)->step, y = ((const CkptEntry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The ckpt-*.h5 files of dir, newest step first (*out malloc'd). */
static int list_ckpts(const char *dir, CkptEntry **out, int *count, Err *err) {
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int saved = errno; /* callers tell a missing directory (ENOENT) from others */
        err_set(err, EXIT_CKPT, "cannot list run directory %s: %s", dir, strerror(saved));
        errno = saved;
        return EXIT_CKPT;
    }
    int cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        long step = step_of_name(e->d_name);
        if (step < 0 || strlen(e->d_name) >= sizeof((*out)->name)) continue;
        if (*count == cap) *out = xrealloc(*out, (size_t)(cap = 2 * cap + 8) * sizeof **out);
        (*out)[*count].step = step;
        memcpy((*out)[*count].name, e->d_name, strlen(e->d_name) + 1); /* length checked above */
        (*count)++;
    }
    closedir(d);
    if (*count > 1) qsort(*out, (size_t)*count, sizeof **out, newest_first);
    return 0;
}

static int ckpt_list_unlocked(const char *dir, char *names, size_t cap) {
    CkptEntry *list;
    int n;
    if (cap) names[0] = 0;
    if (list_ckpts(dir, &list, &n, NULL)) return 0;
    size_t used = 0;
    for (int i = 0; i < n && cap; i++) {
        size_t len = strlen(list[i].name) + (i ? 2 : 0);
        if (used + len + 4 >= cap) {
            snprintf(names + used, cap - used, ", ...");
            break;
        }
        used += (size_t)snprintf(names + used, cap - used, "%s%s", i ? ", " : "", list[i].name);
    }
    free(list);
    return n;
}

void ckpt_new_run_id(char *buf, size_t cap) {
    uint64_t id = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&id, sizeof id, 1, f) != 1) { /* no urandom: clock and pid */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix[3] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid()};
        id = hash_bytes(HASH_SEED, mix, sizeof mix);
    }
    if (f) fclose(f);
    snprintf(buf, cap, "%016llx", (unsigned long long)id);
}

/* Does path hold a checkpoint of run run_id (its attributes verified)? */
static int same_run(const char *path, const char *run_id) {
    CkptMeta m;
    Err err;
    if (ckpt_read_meta_quiet(path, &m, &err)) return 0;
    int same = !strcmp(m.run_id, run_id);
    ckpt_meta_free(&m);
    return same;
}

static int ckpt_prune_unlocked(const char *dir, int keep, const char *run_id,
                               const char *just_written, Err *err) {
    if (!run_id || !run_id[0]) return 0; /* no run to speak for: touch nothing */
    CkptEntry *list;
    int n;
    if (list_ckpts(dir, &list, &n, err)) return EXIT_CKPT;
    const char *slash = strrchr(just_written, '/');
    const char *written = slash ? slash + 1 : just_written;
    int kept = 1; /* just_written */
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        char path[OCRKD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (!strcmp(list[i].name, written) || !same_run(path, run_id)) continue;
        if (kept < keep) {
            kept++;
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT)
            rc = err_set(err, EXIT_CKPT, "removing old checkpoint %s: %s", path, strerror(errno));
    }
    free(list);
    return rc;
}

static int ckpt_find_resume_unlocked(const char *dir, char *buf, size_t cap, Err *err) {
    CkptEntry *list;
    int n;
    Err e = {0};
    if (list_ckpts(dir, &list, &n, &e)) {
        if (errno == ENOENT) return -1;
        return err_set(err, EXIT_CKPT, "%s", e.msg);
    }
    int found = -1;
    char first[600] = "";
    for (int i = 0; i < n && found < 0; i++) {
        char path[OCRKD_PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, list[i].name);
        if (ckpt_verify(path, &e) == 0) {
            if ((size_t)snprintf(buf, cap, "%s", path) < cap) found = 0;
        } else {
            warn0("%s; trying an older checkpoint", e.msg);
            if (!first[0]) snprintf(first, sizeof first, "%.500s", e.msg);
        }
    }
    free(list);
    if (found == 0 || n == 0) return found;
    char names[400];
    ckpt_list(dir, names, sizeof names);
    return err_set(err, EXIT_CKPT,
                   "none of the %d checkpoint(s) in %s verifies (%s); the newest: %s", n, dir,
                   names, first);
}

/* Files of a run that starting over sets aside. */
static int is_run_file(const char *name) {
    size_t n = strlen(name);
    if (!strcmp(name, "best.h5") || !strcmp(name, "metrics.jsonl")) return 1;
    return !strncmp(name, "ckpt-", 5) && ((n > 8 && !strcmp(name + n - 3, ".h5")) ||
                                          (n > 12 && !strcmp(name + n - 7, ".h5.tmp")));
}

/* Makes DIR/previous-N for the first N that does not exist yet. */
static int make_previous_dir(const char *dir, char *buf, size_t cap, Err *err) {
    for (int k = 1; k < 100000; k++) {
        snprintf(buf, cap, "%s/previous-%d", dir, k);
        if (mkdir(buf, 0777) == 0) return 0;
        if (errno != EEXIST)
            return err_set(err, EXIT_CKPT, "cannot create %s: %s", buf, strerror(errno));
    }
    return err_set(err, EXIT_CKPT, "%s: too many previous-N directories", dir);
}

static int ckpt_set_aside_unlocked(const char *dir, char *moved_to, size_t cap, int *moved,
                                   Err *err) {
    *moved = 0;
    if (cap) moved_to[0] = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        return err_set(err, EXIT_CKPT, "cannot list run directory %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    for (struct dirent *e; !rc && (e = readdir(d));) {
        if (!is_run_file(e->d_name)) continue;
        if (!*moved) rc = make_previous_dir(dir, moved_to, cap, err);
        char from[OCRKD_PATH_MAX], to[OCRKD_PATH_MAX + 256];
        snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
        snprintf(to, sizeof to, "%s/%s", moved_to, e->d_name);
        if (!rc && rename(from, to) != 0)
            rc = err_set(err, EXIT_CKPT, "moving %s to %s: %s", from, moved_to, strerror(errno));
        if (!rc) (*moved)++;
    }
    closedir(d);
    return rc;
}

/* ---- the public functions: each holds the HDF5 lock (recursive) ---- */

int ckpt_list(const char *dir, char *names, size_t cap) {
    dataset_hdf5_lock();
    int rc = ckpt_list_unlocked(dir, names, cap);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_prune(const char *dir, int keep, const char *run_id, const char *just_written, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_prune_unlocked(dir, keep, run_id, just_written, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_find_resume(const char *dir, char *buf, size_t cap, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_find_resume_unlocked(dir, buf, cap, err);
    dataset_hdf5_unlock();
    return rc;
}

int ckpt_set_aside(const char *dir, char *moved_to, size_t cap, int *moved, Err *err) {
    dataset_hdf5_lock();
    int rc = ckpt_set_aside_unlocked(dir, moved_to, cap, moved, err);
    dataset_hdf5_unlock();
    return rc;
}
