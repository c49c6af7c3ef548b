/* config_arch.c - the model architecture a config describes: its model
 * section checked and turned into a ModelArch (include/ocrkd/model.h), the
 * standard depths taken from the model layer's table. Not for parsing the
 * YAML (config.c) or for building the model (model/). */
#include <string.h>

#include "ocrkd/config.h"

int arch_from_config(const Config *c, int num_classes, ModelArch *a, Err *err) {
    memset(a, 0, sizeof *a);
    if (c->depth) {
        if (!resnet_depth_blocks(c->depth, a->blocks, &a->bottleneck))
            return err_set(err, EXIT_USAGE,
                           "model.extractor.depth %d: must be 18, 34, 50, 101 or 152", c->depth);
    } else {
        memcpy(a->blocks, c->blocks, sizeof a->blocks);
        a->bottleneck = c->bottleneck != 0;
        for (int s = 0; s < 4; s++)
            if (a->blocks[s] < 1)
                return err_set(err, EXIT_USAGE,
                               "model.extractor.blocks[%d] = %d: every stage needs >= 1 block", s,
                               a->blocks[s]);
    }
    a->width = c->width;
    memcpy(a->widths, c->widths, sizeof a->widths);
    a->feature_dim = c->feature_dim;
    a->enc_layers = c->enc_layers;
    a->enc_hidden = c->enc_hidden;
    a->num_classes = num_classes;
    if (a->width < 1 || a->feature_dim < 1 || a->enc_layers < 1 || a->enc_hidden < 1)
        return err_set(err, EXIT_USAGE,
                       "model: width %d, feature_dim %d, encoder layers %d and hidden %d must "
                       "all be >= 1",
                       a->width, a->feature_dim, a->enc_layers, a->enc_hidden);
    if (num_classes < 2)
        return err_set(err, EXIT_USAGE, "model: %d classes (alphabet + blank): need >= 2",
                       num_classes);
    return 0;
}
