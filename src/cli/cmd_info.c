/* cmd_info.c - `ocrkd info FILE`: what a dataset or checkpoint holds. The
 * file's `format` attribute says which it is. Not for checking a file
 * deeply: the readers (io/) do that when a run opens it. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/checkpoint.h"
#include "ocrkd/dataset.h"
#include "ocrkd/h5util.h"

static const char *info_help =
    "usage: ocrkd info FILE\n"
    "\n"
    "Describes an ocrkd dataset (samples, image size, alphabet, label lengths, examples)\n"
    "or checkpoint (kind, step, architecture, parameter counts per part, alphabet, config).\n"
    "A checkpoint that fails verification is described, then exits 4.\n";

static int describe_checkpoint(const char *path) {
    Err err = {0};
    CkptMeta meta;
    Config cfg;
    Crnn *m;
    if (ckpt_load_model(path, 1, 32, 0, &m, &cfg, &meta, &err)) fatal_err(&err);
    char desc[256];
    arch_describe(&m->arch, desc, sizeof desc);
    size_t x = m->count[PART_EXTRACTOR], e = m->count[PART_ENCODER], c = m->count[PART_CLASSIFIER];
    printf("checkpoint   %s\n", path);
    printf("kind         %s\n", meta.kind);
    printf("step         %ld (epoch %ld, %d rank(s))\n", meta.step, meta.epoch, meta.world_size);
    printf("model        %s\n", desc);
    printf("parameters   extractor %zu, encoder %zu, classifier %zu, total %zu (+%zu BN buffers)\n",
           x, e, c, x + e + c, m->n_buffers);
    printf("alphabet     \"%s\" (%d classes with blank)\n", meta.alphabet, m->arch.num_classes);
    if (meta.run_id[0]) printf("run          %s\n", meta.run_id);
    int bad = ckpt_verify(path, &err);
    printf("verified     %s\n", bad ? err.msg : "yes (Fletcher-32 checksums)");
    printf("config:\n%s", meta.config);
    crnn_free(m);
    config_free(&cfg);
    ckpt_meta_free(&meta);
    if (bad) fatal_err(&err); /* a file that fails verification is an error, after its description */
    return 0;
}

int cmd_info(int argc, char **argv) {
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(info_help, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(info_help, stderr);
        return EXIT_USAGE;
    }
    const char *path = argv[1];
    h5_quiet();
    hid_t f = h5_open_ro(path);
    if (f < 0) fatal(EXIT_DATA, "%s: cannot open as HDF5 (%s)", path, h5_last_error());
    char *format = NULL;
    h5_attr_read_string(f, "format", &format);
    H5Fclose(f);
    int rc = 0;
    Err err = {0};
    if (format && !strcmp(format, CKPT_FORMAT)) {
        rc = describe_checkpoint(path);
    } else if (format && !strcmp(format, DATASET_FORMAT)) {
        rc = dataset_describe(path, stdout, &err);
        if (rc) fatal_err(&err);
    } else {
        fatal(EXIT_DATA, "%s: not an ocrkd file (root attribute 'format' is %s%s%s)", path,
              format ? "\"" : "missing", format ? format : "", format ? "\"" : "");
    }
    free(format);
    return rc;
}
