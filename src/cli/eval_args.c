/* eval_args.c - what `ocrkd eval` and `ocrkd predict` share: their help
 * texts, their command line, the one-pass loader over a file and the
 * model loaded for inference. Not for either subcommand's work
 * (cmd_eval.c, cmd_predict.c). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/dist.h"
#include "ocrkd/h5util.h"
#include "ocrkd/image.h"

const char *const eval_help =
    "usage: ocrkd eval --model CKPT --data FILE.h5 [--data FILE.h5]... [--json] [--batch N]\n"
    "                  [--case-insensitive] [--errors FILE.tsv]\n"
    "\n"
    "Word accuracy (exact match), CER (edit distance / label characters), 1-NED (ICDAR\n"
    "2019) and images/s of a checkpoint on labelled datasets, a row per --data and,\n"
    "for several, a total row over all their images (counts pooled). Under mpirun each\n"
    "set is sharded over ranks.\n"
    "  --json              one JSON object per set (with \"data\":FILE when there are\n"
    "                      several) and then {\"split\":\"total\",...}\n"
    "  --case-insensitive  compare case-folded text (Unicode simple case folding:\n"
    "                      Latin, Greek, Cyrillic, Armenian, fullwidth); nothing dropped\n"
    "  --errors FILE.tsv   the images read wrongly: data, index, truth, prediction,\n"
    "                      confidence (tab-separated, a header row; tabs, newlines and\n"
    "                      backslashes in texts escaped as \\t \\n \\\\)\n"
    "Confidence is the probability of the greedy (best) CTC path: the product over\n"
    "all frames of the largest per-frame probability, in [0, 1].\n";

const char *const predict_help =
    "usage: ocrkd predict --model CKPT (--data FILE.h5 | IMAGE|DIR|@LIST...) [--scores]\n"
    "                     [--dump-logits OUT.h5] [--batch N]\n"
    "\n"
    "Prints INDEX<TAB>TEXT per dataset sample, or PATH<TAB>TEXT per image (PNG/JPEG,\n"
    "resized to height 32 keeping aspect), in input order. A DIR is searched\n"
    "recursively for *.png, *.jpg, *.jpeg (any case), sorted by path; @LIST is a file\n"
    "of paths, one per line (blank lines and lines starting with # skipped). Images are\n"
    "decoded a batch at a time; under mpirun the ranks share them and rank 0 prints.\n"
    "  --scores           a third column: the sequence confidence in [0, 1], the\n"
    "                     probability of the greedy CTC path (product over all frames\n"
    "                     of the largest per-frame probability)\n"
    "  --dump-logits OUT  /logits float32 [N,T,K] (log-softmax) and /texts\n";

int eval_parse_args(int argc, char **argv, int predict, EvalArgs *a) {
    const char *cmd = predict ? "predict" : "eval";
    memset(a, 0, sizeof *a);
    a->batch = 64;
    a->images = calloc((size_t)argc, sizeof(char *));
    a->data = calloc((size_t)argc, sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(predict ? predict_help : eval_help, stdout);
            exit(0);
        } else if (!strcmp(s, "--model") && more) {
            a->model = argv[++i];
        } else if (!strcmp(s, "--data") && more) {
            a->data[a->ndata++] = argv[++i];
        } else if (!strcmp(s, "--batch") && more) {
            a->batch = atoi(argv[++i]);
            if (a->batch < 1) {
                fprintf(stderr, "ocrkd %s: --batch wants a positive integer\n", cmd);
                return EXIT_USAGE;
            }
        } else if (!predict && !strcmp(s, "--json")) {
            a->json = 1;
        } else if (!predict && !strcmp(s, "--case-insensitive")) {
            a->case_insensitive = 1;
        } else if (!predict && !strcmp(s, "--errors") && more) {
            a->errors = argv[++i];
        } else if (predict && !strcmp(s, "--dump-logits") && more) {
            a->dump = argv[++i];
        } else if (predict && !strcmp(s, "--scores")) {
            a->scores = 1;
        } else if (s[0] == '-') {
            fprintf(stderr, "ocrkd %s: unknown or incomplete option '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        } else if (predict) {
            a->images[a->nimages++] = argv[i];
        } else {
            fprintf(stderr, "ocrkd %s: unexpected argument '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        }
    }
    if (!a->model) {
        fprintf(stderr, "ocrkd %s: --model CKPT is required (see --help)\n", cmd);
        return EXIT_USAGE;
    }
    if (!predict && !a->ndata) {
        fprintf(stderr, "ocrkd eval: --data FILE.h5 is required (see --help)\n");
        return EXIT_USAGE;
    }
    if (predict && (a->ndata > 1 || !!a->ndata == !!a->nimages)) {
        fprintf(stderr, "ocrkd predict: give either one --data FILE.h5 or images (see --help)\n");
        return EXIT_USAGE;
    }
    return 0;
}

/* The data must fit the model's input height (checked before anything is
 * sized from the file), then one pass over this rank's shard. eval needs
 * labels (an unlabeled file is refused, exit 3); predict does not. */
Loader *open_eval_loader(const char *data, const char *alphabet, int batch, int rank, int world,
                         int need_labels) {
    Err err = {0};
    if (dataset_check_height(data, IMAGE_H, &err)) fatal_err(&err);
    const char *files[1] = {data};
    LoaderConf lc = {0};
    lc.files = files;
    lc.nfiles = 1;
    lc.rank = rank;
    lc.world = world;
    lc.batch_size = batch;
    lc.alphabet = alphabet;
    lc.skip_bad = 1; /* labels outside the model's alphabet cannot be scored */
    lc.prefetch = 1;
    lc.allow_unlabeled = !need_labels;
    lc.labels_for = "`ocrkd eval` (it scores predictions against labels)";
    Loader *l;
    if (loader_open(&l, &lc, &err)) fatal_err(&err);
    return l;
}

Crnn *load_model(const char *path, int batch, int width, CkptMeta *meta) {
    Crnn *m;
    Err err = {0};
    int rc = ckpt_load_model(path, batch, width, CRNN_INFERENCE, &m, NULL, meta, &err);
    if (rc) fatal_err(&err);
    return m;
}

int eval_start(int *argc, char ***argv, int predict, EvalArgs *a, CkptMeta *meta) {
    int rc = eval_parse_args(*argc, *argv, predict, a);
    if (rc) return rc;
    dist_init(argc, argv);
    h5_quiet();
    Err err = {0};
    if (ckpt_read_meta(a->model, meta, &err)) fatal_err(&err);
    return 0;
}
