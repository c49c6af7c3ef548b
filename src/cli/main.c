/* main.c - `ocrkd` entry point: dispatches to one subcommand per file.
 * Every subcommand takes --help; usage errors exit 2. Not for any
 * subcommand's own options (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/blas_core.h"
#include "ocrkd/common.h"
#include "ocrkd/denormals.h"

static const char *usage_text =
    "ocrkd " OCRKD_VERSION " - knowledge distillation for text recognizers (CRNN, CTC)\n"
    "\n"
    "usage:\n"
    "  ocrkd train   CONFIG [--set KEY=VALUE]... [--resume auto|fresh|PATH]\n"
    "                CTC training from scratch\n"
    "  ocrkd distill CONFIG [--set KEY=VALUE]... [--resume auto|fresh|PATH]\n"
    "                distill a teacher into a student\n"
    "  ocrkd eval    --model CKPT --data FILE.h5 [--data FILE.h5]... [--json] [--batch N]\n"
    "                [--case-insensitive] [--errors FILE.tsv]   a row per set and a total\n"
    "  ocrkd predict --model CKPT (--data FILE.h5 | IMAGE|DIR|@LIST...) [--scores]\n"
    "                [--dump-logits OUT.h5] [--batch N]\n"
    "  ocrkd info    FILE                                   describe a dataset or checkpoint\n"
    "  ocrkd bench   CONFIG [--steps N] [--set KEY=VALUE]... throughput of the configured job\n"
    "  ocrkd --version | --help; every subcommand takes --help\n"
    "\n"
    "Run under `mpirun -np N` for data parallelism (train, distill, bench, eval, predict).\n"
    "Exit codes: 0 done, 2 usage/config, 3 data, 4 checkpoint, 5 numerical failure,\n"
    "75 stopped by a signal after writing a checkpoint (resume with --resume auto).\n";

void cli_usage(FILE *out) { fputs(usage_text, out); }

int main(int argc, char **argv) {
    blas_core_fix(argv); /* may re-execute: first, before MPI and threads */
    denormals_from_env(); /* flush by default (denormals.h); before any thread */
    if (argc < 2) {
        cli_usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        char blas[256];
        blas_core_describe(blas, sizeof blas);
        char fp[160];
        denormals_describe(fp, sizeof fp);
        printf("ocrkd %s\n%s\n%s\n", OCRKD_VERSION, blas, fp);
        return 0;
    }
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        cli_usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1, 0);
    if (!strcmp(cmd, "distill")) return cmd_train(argc - 1, argv + 1, 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "predict")) return cmd_predict(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    fprintf(stderr, "ocrkd: unknown command '%s'\n\n", cmd);
    cli_usage(stderr);
    return EXIT_USAGE;
}
