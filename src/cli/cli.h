/* cli.h - the subcommands of bin/ocrkd, one file each. Each returns the
 * process exit code. */
#ifndef OCRKD_CLI_H
#define OCRKD_CLI_H

#include <stdio.h>

void cli_usage(FILE *out);
int cmd_train(int argc, char **argv, int distill); /* train and distill */
int cmd_bench(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* predict's IMAGE|DIR|@LIST arguments: image_list_expand */
#include "ocrkd/checkpoint.h"
#include "ocrkd/dataset.h"
#include "ocrkd/image_list.h"

/* The command line of `ocrkd eval` and `ocrkd predict` (eval_args.c). */
typedef struct {
    const char *model, *dump, *errors;
    const char **data;
    int ndata;
    int json, case_insensitive, batch, scores;
    char **images;
    int nimages;
} EvalArgs;
extern const char *const eval_help, *const predict_help;
/* Returns 0 to go on, else the exit code (--help exits 0 itself). */
int eval_parse_args(int argc, char **argv, int predict, EvalArgs *a);
/* The start of both: the command line, MPI, the checkpoint's meta. Returns
 * 0 to go on, else the exit code of a usage error. */
int eval_start(int *argc, char ***argv, int predict, EvalArgs *a, CkptMeta *meta);
/* One pass over this rank's shard of data, after the height check. */
Loader *open_eval_loader(const char *data, const char *alphabet, int batch, int rank, int world,
                         int need_labels);
/* The checkpoint's model for inference (running-stat BatchNorm). */
Crnn *load_model(const char *path, int batch, int width, CkptMeta *meta);

#endif
