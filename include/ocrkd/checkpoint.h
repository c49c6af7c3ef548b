/* checkpoint.h - the checkpoint file (SPEC "Checkpoint file"): /params as a
 * PyTorch state_dict (float32, Fletcher-32), /optim and /state for resume,
 * root attributes covered by a checksum attribute, atomic writes,
 * verification, and the run directory (rotation, resume, start over).
 *
 * Errors return EXIT_CKPT through Err naming the file and tensor. Not for
 * deciding what goes into /state (trainer.c passes named blobs). */
#ifndef OCRKD_CHECKPOINT_H
#define OCRKD_CHECKPOINT_H

#include <stdint.h>

#include "ocrkd/common.h"
#include "ocrkd/config.h"
#include "ocrkd/model.h"

#define CKPT_FORMAT "ocrkd-checkpoint"
#define CKPT_VERSION 1
/* Root attribute holding "fnv1a64 NAME=HEX ..." over the meaning-bearing
 * attributes (doc/checkpoint.md "Attribute checksums"). */
#define CKPT_CHECKSUMS_ATTR "attr_checksums"
/* Sanity bounds of the numeric attributes (a file outside them is refused). */
#define CKPT_MAX_STEP 1000000000000L /* step and epoch: 0 .. 1e12 */
#define CKPT_MAX_WORLD 1000000       /* world_size: 1 .. 1e6 */
#define CKPT_RUN_ID_LEN 16           /* hex digits */

typedef struct {
    char *kind;     /* "teacher" | "student" */
    char *config;   /* the YAML text used */
    char *alphabet;
    long step, epoch;
    int world_size;
    int version;
    /* 16 hex digits naming the run, kept across resumes (NULL or "" when
     * writing: none; "" when read from a file written before run ids) */
    char *run_id;
} CkptMeta;
void ckpt_meta_free(CkptMeta *m);

/* A named extra array for /optim or /state ("optim/m", "state/rng"). */
enum { BLOB_F32 = 0, BLOB_F64, BLOB_I64, BLOB_U64 };
typedef struct {
    const char *name; /* "optim/NAME" or "state/NAME" */
    int type;         /* BLOB_* */
    const void *data;
    size_t n;         /* elements */
} CkptBlob;

/* Writes PATH.tmp, flushes, fsyncs, renames to PATH. Every dataset has the
 * Fletcher-32 filter. Parameters and buffers of m go to /params. */
int ckpt_write(const char *path, const Crnn *m, const CkptMeta *meta, const CkptBlob *blobs,
               int nblobs, Err *err);
/* Root attributes. Checks format and version, the attribute checksums
 * (a file without them, from before they existed, is accepted with a
 * warning), and the values: kind teacher|student, step and epoch in
 * 0..CKPT_MAX_STEP, world_size in 1..CKPT_MAX_WORLD, the alphabet non-empty
 * valid UTF-8 without repeats. EXIT_CKPT naming the file and the attribute. */
int ckpt_read_meta(const char *path, CkptMeta *meta, Err *err);
/* The same without the warning for a file that has no checksums. */
int ckpt_read_meta_quiet(const char *path, CkptMeta *meta, Err *err);
/* Loads /params into m by name with shape checks, from a file whose
 * attributes pass ckpt_read_meta's checks. strict: every tensor of m
 * must be in the file. parts: mask of PART_* to load (buffers of those parts
 * included). Tensors of the file that m lacks are ignored unless strict. */
int ckpt_read_params(const char *path, Crnn *m, int parts, int strict, Err *err);
/* Reads a blob written by ckpt_write; n must match. */
int ckpt_read_blob(const char *path, const char *name, int type, void *data, size_t n, Err *err);
int ckpt_has_blob(const char *path, const char *name);
/* Reads every dataset (checksums verified): 0 if the file is whole. */
int ckpt_verify(const char *path, Err *err);

/* Model from a checkpoint: reads meta, parses the stored config, builds the
 * architecture (alphabet from the file), creates the model for (max_batch,
 * width, train) and loads all parameters strictly. *cfg_out (optional)
 * receives the stored config; *meta_out (optional) the meta. */
int ckpt_load_model(const char *path, int max_batch, int width, int train, Crnn **out,
                    Config *cfg_out, CkptMeta *meta_out, Err *err);

/* ---- run directory ---- */
/* "DIR/ckpt-SSSSSSSS.h5" into buf. */
void ckpt_path_for_step(const char *dir, long step, char *buf, size_t cap);
/* A new random run id (CKPT_RUN_ID_LEN hex digits) into buf (cap > 16). */
void ckpt_new_run_id(char *buf, size_t cap);
/* The number of ckpt-*.h5 files in dir (0 if dir is missing), their names
 * newest step first, joined by ", " into names (cut with "..." to fit). */
int ckpt_list(const char *dir, char *names, size_t cap);
/* Rotation after writing just_written (a path): keeps it and the newest
 * keep - 1 other ckpt-*.h5 of dir whose attributes verify and carry run_id;
 * deletes this run's older ones. Files of other runs, unreadable files and
 * best.h5 are never touched. */
int ckpt_prune(const char *dir, int keep, const char *run_id, const char *just_written, Err *err);
/* Newest ckpt-*.h5 in dir that verifies; falls back to older ones with a
 * warning naming the bad file. Returns 0 and fills buf; -1 when dir holds no
 * ckpt-*.h5; EXIT_CKPT when it holds some but none verifies (err names
 * them). */
int ckpt_find_resume(const char *dir, char *buf, size_t cap, Err *err);
/* Starting over in a used run directory: moves its ckpt-*.h5 (and .tmp),
 * best.h5 and metrics.jsonl into a new DIR/previous-N/, whose path goes to
 * moved_to, and their count to *moved (0: nothing to move, no directory
 * made). Returns 0 or EXIT_CKPT. */
int ckpt_set_aside(const char *dir, char *moved_to, size_t cap, int *moved, Err *err);

#endif
