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

/* predict's IMAGE|DIR|@LIST arguments as image paths in input order
 * (directories recursive and sorted); exits with EXIT_DATA naming a missing
 * path, an unreadable list or a directory without images. */
char **image_list_expand(char **args, int nargs, int *n_out);

#endif
