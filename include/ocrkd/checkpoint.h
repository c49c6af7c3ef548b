/* checkpoint.h - the checkpoint file (SPEC "Checkpoint file"): /params as a
 * PyTorch state_dict (float32, Fletcher-32), /optim and /state for resume,
 * atomic writes, verification, and the run directory's rotation.
 *
 * Errors return EXIT_CKPT through Err naming the file and tensor. Not for
 * deciding what goes into /state (trainer.c passes named blobs). */
#ifndef OCRKD_CHECKPOINT_H
#define OCRKD_CHECKPOINT_H

#include <stdint.h>

#include "ocrkd/common.h"
#include "ocrkd/model.h"

#define CKPT_FORMAT "ocrkd-checkpoint"
#define CKPT_VERSION 1

typedef struct {
    char *kind;     /* "teacher" | "student" */
    char *config;   /* the YAML text used */
    char *alphabet;
    long step, epoch;
    int world_size;
    int version;
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
/* Root attributes; checks format and version. */
int ckpt_read_meta(const char *path, CkptMeta *meta, Err *err);
/* Loads /params into m by name with shape checks. strict: every tensor of m
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
/* Deletes all but the newest `keep` ckpt-*.h5 in dir (best.h5 untouched). */
int ckpt_prune(const char *dir, int keep, Err *err);
/* Newest ckpt-*.h5 in dir that verifies; falls back to older ones with a
 * warning naming the bad file. Returns 0 and fills buf, or -1 if none. */
int ckpt_find_resume(const char *dir, char *buf, size_t cap);

#endif
