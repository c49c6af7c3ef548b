/* params.c - the named tensor table of a CRNN and everything that works on
 * parameters as data: names and shapes exactly as the PyTorch state_dict,
 * the one-buffer layout (extractor, classifier, encoder params, then the BN
 * running buffers, so trainable sets are prefixes), initialisation,
 * trainable prefixes, copy by name, the standard ResNet depths.
 * Not for activations or the forward/backward pass (resnet.c, crnn.c) and
 * not for files (checkpoint.c) or the config (io/config_arch.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_internal.h"

/* ---- architecture ---- */

static const struct {
    int depth, bottleneck, blocks[4];
} k_depths[] = {
    {18, 0, {2, 2, 2, 2}},   {34, 0, {3, 4, 6, 3}},   {50, 1, {3, 4, 6, 3}},
    {101, 1, {3, 4, 23, 3}}, {152, 1, {3, 8, 36, 3}},
};

static const int k_stride_h[4] = {2, 2, 2, 2}, k_stride_w[4] = {2, 2, 1, 1};

int resnet_depth_blocks(int depth, int blocks[4], int *bottleneck) {
    for (size_t i = 0; i < ARRAY_LEN(k_depths); i++) {
        if (k_depths[i].depth != depth) continue;
        memcpy(blocks, k_depths[i].blocks, sizeof k_depths[i].blocks);
        *bottleneck = k_depths[i].bottleneck;
        return 1;
    }
    return 0;
}

static int arch_depth(const ModelArch *a) {
    int n = a->blocks[0] + a->blocks[1] + a->blocks[2] + a->blocks[3];
    return n * (a->bottleneck ? 3 : 2) + 2;
}

static int arch_is_standard(const ModelArch *a) {
    for (size_t i = 0; i < ARRAY_LEN(k_depths); i++)
        if (k_depths[i].bottleneck == a->bottleneck &&
            !memcmp(k_depths[i].blocks, a->blocks, sizeof a->blocks))
            return 1;
    return 0;
}

int arch_planes(const ModelArch *a, int s) {
    return a->widths[s] ? a->widths[s] : a->width << s;
}

void arch_describe(const ModelArch *a, char *buf, size_t cap) {
    char ext[96], w[64];
    if (arch_is_standard(a))
        snprintf(ext, sizeof ext, "ResNet-%d", arch_depth(a));
    else
        snprintf(ext, sizeof ext, "ResNet-%d (%s [%d,%d,%d,%d])", arch_depth(a),
                 a->bottleneck ? "bottleneck" : "basic", a->blocks[0], a->blocks[1], a->blocks[2],
                 a->blocks[3]);
    if (a->widths[0])
        snprintf(w, sizeof w, "widths [%d,%d,%d,%d]", a->widths[0], a->widths[1], a->widths[2],
                 a->widths[3]);
    else
        snprintf(w, sizeof w, "w%d", a->width);
    snprintf(buf, cap, "%s %s -> neck %d -> BiLSTM %dx%d -> %d classes", ext, w, a->feature_dim,
             a->enc_layers, a->enc_hidden, a->num_classes);
}

/* ---- block geometry (shared with resnet.c) ---- */

int extractor_channels(const ModelArch *a) {
    return arch_planes(a, 3) * (a->bottleneck ? 4 : 1);
}

int extractor_nblocks(const ModelArch *a) {
    return a->blocks[0] + a->blocks[1] + a->blocks[2] + a->blocks[3];
}

static ConvSpec conv_spec(int ic, int oc, int k, int sh, int sw) {
    ConvSpec c = {ic, oc, k, sh, sw};
    return c;
}

/* torchvision BasicBlock (3x3, 3x3) or Bottleneck (1x1, 3x3 strided, 1x1 x4);
 * only the first block of a stage strides. */
void block_geom(const ModelArch *a, int stage, int i, int in_ch, BlockGeom *g) {
    int planes = arch_planes(a, stage);
    int sh = i == 0 ? k_stride_h[stage] : 1, sw = i == 0 ? k_stride_w[stage] : 1;
    memset(g, 0, sizeof *g);
    if (a->bottleneck) {
        g->nconv = 3;
        g->out_ch = 4 * planes;
        g->conv[0] = conv_spec(in_ch, planes, 1, 1, 1);
        g->conv[1] = conv_spec(planes, planes, 3, sh, sw);
        g->conv[2] = conv_spec(planes, g->out_ch, 1, 1, 1);
    } else {
        g->nconv = 2;
        g->out_ch = planes;
        g->conv[0] = conv_spec(in_ch, planes, 3, sh, sw);
        g->conv[1] = conv_spec(planes, planes, 3, 1, 1);
    }
    g->has_ds = sh != 1 || sw != 1 || in_ch != g->out_ch;
    if (g->has_ds) g->ds = conv_spec(in_ch, g->out_ch, 1, sh, sw);
}

void convbn_names(int stage, int blk, int j, char *conv, char *bn, size_t cap) {
    if (stage < 0) {
        snprintf(conv, cap, "extractor.conv1");
        snprintf(bn, cap, "extractor.bn1");
    } else if (j < 0) {
        snprintf(conv, cap, "extractor.layer%d.%d.downsample.0", stage + 1, blk);
        snprintf(bn, cap, "extractor.layer%d.%d.downsample.1", stage + 1, blk);
    } else {
        snprintf(conv, cap, "extractor.layer%d.%d.conv%d", stage + 1, blk, j + 1);
        snprintf(bn, cap, "extractor.layer%d.%d.bn%d", stage + 1, blk, j + 1);
    }
}

/* ---- the tensor table ---- */

typedef struct {
    Crnn *m;
    int cap;
} Table;

static void table_add(Table *tb, const char *prefix, const char *suffix, int part, int is_buffer,
                      int ndim, const int *shape) {
    Crnn *m = tb->m;
    if (m->ntensors == tb->cap) {
        tb->cap = tb->cap ? 2 * tb->cap : 64;
        m->tensors = xrealloc(m->tensors, (size_t)tb->cap * sizeof *m->tensors);
    }
    TensorInfo *t = &m->tensors[m->ntensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s%s", prefix, suffix);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->numel *= (size_t)shape[d];
    }
    t->offset = m->nparams;
    t->part = part;
    t->is_buffer = is_buffer;
    m->nparams += t->numel;
    if (!is_buffer)
        m->count[part] += t->numel;
    else
        m->n_buffers += t->numel;
}

/* A conv weight (OC,IC,k,k) and its BN: weight/bias, or (buffers) running stats. */
static void add_convbn(Table *tb, int stage, int blk, int j, const ConvSpec *c, int buffers) {
    char conv[96], bn[96];
    convbn_names(stage, blk, j, conv, bn, sizeof conv);
    int wshape[4] = {c->oc, c->ic, c->k, c->k}, cshape[1] = {c->oc};
    if (buffers) {
        table_add(tb, bn, ".running_mean", PART_EXTRACTOR, 1, 1, cshape);
        table_add(tb, bn, ".running_var", PART_EXTRACTOR, 1, 1, cshape);
        return;
    }
    table_add(tb, conv, ".weight", PART_EXTRACTOR, 0, 4, wshape);
    table_add(tb, bn, ".weight", PART_EXTRACTOR, 0, 1, cshape);
    table_add(tb, bn, ".bias", PART_EXTRACTOR, 0, 1, cshape);
}

/* Walks the extractor in state_dict order, emitting parameters or buffers. */
static void add_extractor(Table *tb, const ModelArch *a, int buffers) {
    ConvSpec stem = conv_spec(1, arch_planes(a, 0), 3, 1, 1);
    add_convbn(tb, -1, 0, 0, &stem, buffers);
    int ch = arch_planes(a, 0);
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < a->blocks[s]; i++) {
            BlockGeom g;
            block_geom(a, s, i, ch, &g);
            for (int j = 0; j < g.nconv; j++)
                add_convbn(tb, s, i, j, &g.conv[j], buffers);
            if (g.has_ds) add_convbn(tb, s, i, -1, &g.ds, buffers);
            ch = g.out_ch;
        }
}

static void add_linear(Table *tb, const char *prefix, int part, int in, int out) {
    int w[2] = {out, in}, b[1] = {out};
    table_add(tb, prefix, ".weight", part, 0, 2, w);
    table_add(tb, prefix, ".bias", part, 0, 1, b);
}

static void add_encoder(Table *tb, const ModelArch *a) {
    int H = a->enc_hidden;
    for (int l = 0; l < a->enc_layers; l++)
        for (int dir = 0; dir < 2; dir++) {
            char sfx[32];
            int in = l == 0 ? a->feature_dim : 2 * H;
            int wih[2] = {4 * H, in}, whh[2] = {4 * H, H}, b[1] = {4 * H};
            const char *rev = dir ? "_reverse" : "";
            snprintf(sfx, sizeof sfx, "_l%d%s", l, rev);
            char name[64];
            snprintf(name, sizeof name, "encoder.weight_ih%s", sfx);
            table_add(tb, name, "", PART_ENCODER, 0, 2, wih);
            snprintf(name, sizeof name, "encoder.weight_hh%s", sfx);
            table_add(tb, name, "", PART_ENCODER, 0, 2, whh);
            snprintf(name, sizeof name, "encoder.bias_ih%s", sfx);
            table_add(tb, name, "", PART_ENCODER, 0, 1, b);
            snprintf(name, sizeof name, "encoder.bias_hh%s", sfx);
            table_add(tb, name, "", PART_ENCODER, 0, 1, b);
        }
}

void params_build_table(Crnn *m) {
    const ModelArch *a = &m->arch;
    Table tb = {m, 0};
    m->tensors = NULL;
    m->ntensors = 0;
    m->nparams = m->n_buffers = 0;
    memset(m->count, 0, sizeof m->count);
    add_extractor(&tb, a, 0);
    add_linear(&tb, "extractor.neck", PART_EXTRACTOR, extractor_channels(a), a->feature_dim);
    add_linear(&tb, "classifier", PART_CLASSIFIER, 2 * a->enc_hidden, a->num_classes);
    add_encoder(&tb, a);
    add_extractor(&tb, a, 1);
}

TensorInfo *crnn_find(const Crnn *m, const char *name) {
    for (int i = 0; i < m->ntensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

/* ---- trainable prefixes ---- */

int crnn_set_trainable(Crnn *m, int parts) {
    if (!m->train) return -1;
    /* the legal sets, each the previous one plus the next part in the buffer */
    const int prefixes[3] = {PART_EXTRACTOR, PART_EXTRACTOR | PART_CLASSIFIER, PART_ALL};
    const int next_part[3] = {PART_EXTRACTOR, PART_CLASSIFIER, PART_ENCODER};
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        n += m->count[next_part[i]];
        if (parts == prefixes[i]) {
            m->trainable = parts;
            m->n_trainable = n;
            return 0;
        }
    }
    return -1;
}

/* ---- initialisation ---- */


static void fill_uniform(Rng *r, float *p, size_t n, double bound) {
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

static void fill_const(float *p, size_t n, float v) {
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

/* Linear weight (OC,IC) and its bias: nn.Linear.reset_parameters gives both
 * uniform(+-1/sqrt(IC)); the bias follows its weight in the table. */
static void init_tensor(Crnn *m, const TensorInfo *t, Rng *r, double *linear_bound) {
    float *p = crnn_tensor(m, t);
    if (t->is_buffer) {
        fill_const(p, t->numel, str_ends_with(t->name, "running_var") ? 1.0f : 0.0f);
    } else if (t->part == PART_ENCODER) {
        fill_uniform(r, p, t->numel, 1.0 / sqrt((double)m->arch.enc_hidden));
    } else if (t->ndim == 4) { /* kaiming_normal_(mode='fan_out', nonlinearity='relu') */
        double std = sqrt(2.0 / (double)(t->shape[0] * t->shape[2] * t->shape[3]));
        for (size_t i = 0; i < t->numel; i++)
            p[i] = (float)(std * rng_normal(r));
    } else if (t->ndim == 2) {
        *linear_bound = 1.0 / sqrt((double)t->shape[1]);
        fill_uniform(r, p, t->numel, *linear_bound);
    } else if (strstr(t->name, "neck.") || !strncmp(t->name, "classifier.", 11)) {
        fill_uniform(r, p, t->numel, *linear_bound);
    } else { /* BatchNorm affine */
        fill_const(p, t->numel, str_ends_with(t->name, ".weight") ? 1.0f : 0.0f);
    }
}

void crnn_init_params(Crnn *m, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    double linear_bound = 0;
    for (int i = 0; i < m->ntensors; i++)
        init_tensor(m, &m->tensors[i], &r, &linear_bound);
    crnn_params_changed(m);
}

/* ---- copy by name ---- */

static void shape_str(const TensorInfo *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %d" : "%d", t->shape[d]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

static int same_shape(const TensorInfo *a, const TensorInfo *b) {
    if (a->ndim != b->ndim) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return 0;
    return 1;
}

/* Every tensor of `part` in `from` must exist in `to` with the same shape.
 * from_is_src says which way round to name the two in messages. */
static int check_part(const Crnn *from, const Crnn *to, int part, int from_is_src, Err *err) {
    for (int i = 0; i < from->ntensors; i++) {
        const TensorInfo *a = &from->tensors[i];
        if (!(a->part & part)) continue;
        const TensorInfo *b = crnn_find(to, a->name);
        if (!b)
            return err_set(err, EXIT_USAGE, "tensor %s of the %s is missing in the %s", a->name,
                           from_is_src ? "source" : "destination",
                           from_is_src ? "destination" : "source");
        if (!same_shape(a, b)) {
            char sa[64], sb[64];
            shape_str(from_is_src ? a : b, sa, sizeof sa);
            shape_str(from_is_src ? b : a, sb, sizeof sb);
            return err_set(err, EXIT_USAGE,
                           "tensor %s: shape %s in the source, %s in the destination", a->name, sa,
                           sb);
        }
    }
    return 0;
}

int crnn_copy_part(Crnn *dst, const Crnn *src, int part, Err *err) {
    int rc = check_part(src, dst, part, 1, err);
    if (!rc) rc = check_part(dst, src, part, 0, err);
    if (rc) return rc;
    for (int i = 0; i < src->ntensors; i++) {
        const TensorInfo *a = &src->tensors[i];
        if (!(a->part & part)) continue;
        const TensorInfo *b = crnn_find(dst, a->name);
        memcpy(crnn_tensor(dst, b), crnn_tensor(src, a), a->numel * sizeof(float));
    }
    crnn_params_changed(dst);
    return 0;
}

/* ---- the extractor selected from a wider or deeper one ---- */

/* Source index of index i of n_dst along a dimension of n_src: evenly spaced,
 * so every tensor that shares a channel dimension (a residual stream) takes
 * the same channels. */
static int select_index(int i, int n_dst, int n_src) {
    return (int)((long long)i * n_src / n_dst);
}

/* Each extractor tensor of dst needs the same name in src with as many
 * dimensions, none smaller and the same kernel size. */
static int check_selectable(const TensorInfo *a, const TensorInfo *b, Err *err) {
    if (!b)
        return err_set(err, EXIT_USAGE,
                       "the teacher has no tensor %s: the student's extractor needs blocks of the "
                       "teacher's kind and at most its blocks per stage",
                       a->name);
    int ok = a->ndim == b->ndim;
    for (int d = 0; ok && d < a->ndim; d++)
        ok = a->shape[d] <= b->shape[d] && (d < 2 || a->shape[d] == b->shape[d]);
    if (ok) return 0;
    char sa[64], sb[64];
    shape_str(a, sa, sizeof sa);
    shape_str(b, sb, sizeof sb);
    return err_set(err, EXIT_USAGE,
                   "tensor %s: shape %s in the student, %s in the teacher: the student's extractor "
                   "must be the teacher's or narrower, with blocks of the same kind",
                   a->name, sa, sb);
}

static void select_tensor(float *dst, const TensorInfo *a, const float *src, const TensorInfo *b,
                          float scale) {
    int n[4] = {1, 1, 1, 1}, m[4] = {1, 1, 1, 1};
    for (int d = 0; d < a->ndim; d++) {
        n[d] = a->shape[d];
        m[d] = b->shape[d];
    }
    size_t k = 0;
    for (int i0 = 0; i0 < n[0]; i0++)
        for (int i1 = 0; i1 < n[1]; i1++)
            for (int i2 = 0; i2 < n[2]; i2++)
                for (int i3 = 0; i3 < n[3]; i3++) {
                    size_t j = (((size_t)select_index(i0, n[0], m[0]) * (size_t)m[1] +
                                 (size_t)select_index(i1, n[1], m[1])) *
                                    (size_t)m[2] +
                                (size_t)select_index(i2, n[2], m[2])) *
                                   (size_t)m[3] +
                               (size_t)select_index(i3, n[3], m[3]);
                    dst[k++] = scale * src[j];
                }
}

int crnn_select_extractor(Crnn *dst, const Crnn *src, Err *err) {
    for (int i = 0; i < dst->ntensors; i++) {
        const TensorInfo *a = &dst->tensors[i];
        if (a->part != PART_EXTRACTOR) continue;
        int rc = check_selectable(a, crnn_find(src, a->name), err);
        if (rc) return rc;
    }
    for (int i = 0; i < dst->ntensors; i++) {
        const TensorInfo *a = &dst->tensors[i];
        if (a->part != PART_EXTRACTOR) continue;
        const TensorInfo *b = crnn_find(src, a->name);
        /* the neck sums fewer channels and has no BatchNorm after it: scaled
         * so its output keeps the teacher's size for the frozen encoder */
        float scale = !strcmp(a->name, "extractor.neck.weight")
                          ? (float)b->shape[1] / (float)a->shape[1]
                          : 1.0f;
        select_tensor(crnn_tensor(dst, a), a, crnn_tensor(src, b), b, scale);
    }
    crnn_params_changed(dst);
    return 0;
}

/* ---- time steps ---- */

static int conv_out(int in, int k, int stride) {
    return (in + 2 * (k / 2) - k) / stride + 1;
}

int crnn_time_steps(int width) {
    int w = conv_out(width, 3, 1);
    for (int s = 0; s < 4; s++)
        w = conv_out(w, 3, k_stride_w[s]);
    return w;
}
