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
#include "ocrkd/image_list.h"

#endif
