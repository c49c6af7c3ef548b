/* resnet.c - the CRNN's feature extractor: conv stem (conv1, bn1, ReLU) and
 * four stages of torchvision BasicBlock/Bottleneck residual blocks, forward
 * and backward, on buffers planned once at creation.
 *
 * Train models keep every conv output (pre-BN) and BN output (post-ReLU) for
 * backward; inference models run the whole extractor in four ping-pong maps
 * with BatchNorm folded into each conv (w' = w * gamma / sqrt(var + eps),
 * b' = beta - mean * gamma / sqrt(var + eps), kept beside the parameters and
 * recomputed at the first forward after they change), bias, residual add and
 * ReLU in the conv's output pass. Not for the height mean, neck, encoder or
 * classifier (crnn.c) nor for the tensor table (params.c). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "model_internal.h"

/* ---- plan: shapes and tensor offsets ---- */

static size_t offset_of(const Crnn *m, const char *prefix, const char *suffix) {
    char name[128];
    snprintf(name, sizeof name, "%s%s", prefix, suffix);
    return tensor_offset(m, name);
}

/* The conv workspace (im2col) grows with the batch; convs run on chunks
 * of samples small enough to keep it under this many floats (32 MB), which
 * still gives the GEMMs thousands of columns. */
#define CONV_WS_CAP_FLOATS ((size_t)8 << 20)
/* Inference convs use smaller chunks: a workspace (1 MB) that stays in L2
 * between im2col and the GEMM's packing of it ran the extractor 5-10 %
 * faster than whole batches (ResNet-34 w16, batch 32, width 128, 1 thread). */
#ifndef INFER_WS_CAP_FLOATS
#define INFER_WS_CAP_FLOATS ((size_t)256 << 10)
#endif

static size_t unit_out_floats(const ConvBn *u, int B) {
    return (size_t)B * u->s.OC * u->s.OH * u->s.OW;
}

static size_t unit_in_floats(const ConvBn *u, int B) {
    return (size_t)B * u->s.C * u->s.H * u->s.W;
}

static size_t ws_for_batch(const ConvShape *s0, int B) {
    ConvShape s = *s0;
    s.B = B;
    return conv_workspace_floats(&s);
}

/* Conv spec c applied to an (ic, H, W) map at max_batch; returns the unit. */
static void plan_unit(Crnn *m, ConvBn *u, int stage, int blk, int j, const ConvSpec *c, int H,
                      int W, int relu) {
    char conv[96], bn[96];
    convbn_names(stage, blk, j, conv, bn, sizeof conv);
    u->s = conv_shape(m->max_batch, c->ic, H, W, c->oc, c->k, c->k, c->sh, c->sw, c->k / 2,
                      c->k / 2);
    u->w = offset_of(m, conv, ".weight");
    u->gamma = offset_of(m, bn, ".weight");
    u->beta = offset_of(m, bn, ".bias");
    u->rmean = offset_of(m, bn, ".running_mean");
    u->rvar = offset_of(m, bn, ".running_var");
    u->relu = relu;
    CrnnActs *A = m->acts;
    A->max_act = MAX(A->max_act, unit_out_floats(u, m->max_batch));
    u->chunk = m->max_batch;
    const size_t cap = m->train ? CONV_WS_CAP_FLOATS : INFER_WS_CAP_FLOATS;
    /* a conv all in Winograd (inference: its forward) bounds its own
     * workspace: it runs in chunks of samples */
    const int own_chunks =
        m->train ? !conv_runs_im2col(&u->s) : conv_transformed_weights_floats(&u->s) > 0;
    while (!own_chunks && u->chunk > 1 && ws_for_batch(&u->s, u->chunk) > cap)
        u->chunk = (u->chunk + 1) / 2;
    A->max_ws = MAX(A->max_ws, ws_for_batch(&u->s, u->chunk));
}

void extractor_plan_shapes(Crnn *m) {
    const ModelArch *a = &m->arch;
    CrnnActs *A = m->acts;
    ConvSpec stem = {1, arch_planes(a, 0), 3, 1, 1};
    plan_unit(m, &A->stem, -1, 0, 0, &stem, IMAGE_H, m->width, 1);
    A->nblocks = extractor_nblocks(a);
    A->blocks = xcalloc((size_t)A->nblocks, sizeof *A->blocks);
    int ch = arch_planes(a, 0), H = A->stem.s.OH, W = A->stem.s.OW, k = 0;
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < a->blocks[s]; i++, k++) {
            Block *b = &A->blocks[k];
            BlockGeom g;
            block_geom(a, s, i, ch, &g);
            b->nu = g.nconv;
            int h = H, w = W;
            for (int j = 0; j < g.nconv; j++) {
                plan_unit(m, &b->u[j], s, i, j, &g.conv[j], h, w, j < g.nconv - 1);
                h = b->u[j].s.OH;
                w = b->u[j].s.OW;
            }
            b->has_ds = g.has_ds;
            if (g.has_ds) {
                plan_unit(m, &b->ds, s, i, -1, &g.ds, H, W, 0);
                A->max_ds = MAX(A->max_ds, unit_out_floats(&b->ds, m->max_batch));
            }
            ch = g.out_ch;
            H = h;
            W = w;
        }
    A->fc = ch;
    A->fh = H;
    A->fw = W;
}

static void unit_set_chunk(ConvBn *u, int chunk) { u->chunk = MIN(u->chunk, MAX(chunk, 1)); }

void extractor_set_chunk(Crnn *m, int chunk) {
    CrnnActs *A = m->acts;
    unit_set_chunk(&A->stem, chunk);
    for (int k = 0; k < A->nblocks; k++) {
        Block *b = &A->blocks[k];
        for (int j = 0; j < b->nu; j++) unit_set_chunk(&b->u[j], chunk);
        if (b->has_ds) unit_set_chunk(&b->ds, chunk);
    }
}

/* ---- plan: buffers (called twice: arena measure, then assign) ---- */

static void train_unit_buffers(ConvBn *u, Arena *ar, int B, float *y) {
    u->c = arena_floats(ar, unit_out_floats(u, B));
    u->y = y ? y : arena_floats(ar, unit_out_floats(u, B));
    u->smean = arena_floats(ar, (size_t)u->s.OC);
    u->sinv = arena_floats(ar, (size_t)u->s.OC);
}

static void plan_train_buffers(Crnn *m, Arena *ar) {
    CrnnActs *A = m->acts;
    int B = m->max_batch;
    train_unit_buffers(&A->stem, ar, B, NULL);
    A->ds_out = arena_floats(ar, A->max_ds);
    float *in = A->stem.y;
    for (int k = 0; k < A->nblocks; k++) {
        Block *b = &A->blocks[k];
        b->in = in;
        for (int j = 0; j < b->nu; j++) train_unit_buffers(&b->u[j], ar, B, NULL);
        if (b->has_ds) train_unit_buffers(&b->ds, ar, B, A->ds_out);
        b->out = b->u[b->nu - 1].y;
        in = b->out;
    }
    for (int i = 0; i < 3; i++) A->grad[i] = arena_floats(ar, A->max_act);
    A->img = arena_floats(ar, (size_t)B * IMAGE_H * m->width);
}

static void fold_unit_buffers(ConvBn *u, Arena *ar) {
    u->fw = arena_floats(ar, (size_t)u->s.OC * u->s.C * u->s.KH * u->s.KW);
    u->fb = arena_floats(ar, (size_t)u->s.OC);
    size_t nt = conv_transformed_weights_floats(&u->s);
    u->fwt = nt ? arena_floats(ar, nt) : NULL;
}

/* Inference: block input in pool[cur]; the units alternate between two
 * other maps, the downsample uses the fourth. */
static void plan_infer_buffers(Crnn *m, Arena *ar) {
    CrnnActs *A = m->acts;
    for (int i = 0; i < 4; i++) A->pool[i] = arena_floats(ar, A->max_act);
    A->stem.c = A->stem.y = A->pool[0];
    fold_unit_buffers(&A->stem, ar);
    for (int k = 0; k < A->nblocks; k++) {
        Block *b = &A->blocks[k];
        for (int j = 0; j < b->nu; j++) fold_unit_buffers(&b->u[j], ar);
        if (b->has_ds) fold_unit_buffers(&b->ds, ar);
    }
    int cur = 0;
    for (int k = 0; k < A->nblocks; k++) {
        Block *b = &A->blocks[k];
        int other[3], n = 0;
        for (int i = 0; i < 4; i++)
            if (i != cur) other[n++] = i;
        b->in = A->pool[cur];
        for (int j = 0; j < b->nu; j++) b->u[j].c = b->u[j].y = A->pool[other[j & 1]];
        if (b->has_ds) b->ds.c = b->ds.y = A->pool[other[2]];
        b->out = b->u[b->nu - 1].y;
        cur = other[(b->nu - 1) & 1];
    }
}

void extractor_plan_buffers(Crnn *m, Arena *ar) {
    m->acts->conv_ws = arena_floats(ar, m->acts->max_ws);
    if (m->train) plan_train_buffers(m, ar);
    else plan_infer_buffers(m, ar);
}

/* ---- forward ---- */

/* in (B,C,H,W) -> out (B,OC,OH,OW), u->chunk samples per call */
static void conv_forward_chunked(Crnn *m, const ConvBn *u, const float *in, int B, float *out) {
    size_t in_per = unit_in_floats(u, 1), out_per = unit_out_floats(u, 1);
    for (int b0 = 0; b0 < B; b0 += u->chunk) {
        ConvShape s = u->s;
        s.B = MIN(u->chunk, B - b0);
        conv2d_forward(&s, in + b0 * in_per, m->params + u->w, out + b0 * out_per,
                       m->acts->conv_ws);
    }
}

/* dout (B,OC,OH,OW) -> dinp (B,C,H,W) += (may be NULL), dw +=, by chunks */
static void conv_backward_chunked(Crnn *m, const ConvBn *u, const float *in, int B,
                                  const float *dout, float *dinp) {
    size_t in_per = unit_in_floats(u, 1), out_per = unit_out_floats(u, 1);
    for (int b0 = 0; b0 < B; b0 += u->chunk) {
        ConvShape s = u->s;
        s.B = MIN(u->chunk, B - b0);
        conv2d_backward(&s, in + b0 * in_per, m->params + u->w, dout + b0 * out_per,
                        dinp ? dinp + b0 * in_per : NULL, m->grads + u->w, m->acts->conv_ws);
    }
}

/* in (B,C,H,W) -> u->c (B,OC,OH,OW) conv -> u->y BatchNorm (+ ReLU) */
static void convbn_forward(Crnn *m, ConvBn *u, const float *in, int B, int bn_train) {
    float *p = m->params;
    int OC = u->s.OC, HW = u->s.OH * u->s.OW;
    conv_forward_chunked(m, u, in, B, u->c);
    if (bn_train)
        (u->relu ? batchnorm_relu_forward_train : batchnorm_forward_train)(
            u->c, p + u->gamma, p + u->beta, p + u->rmean, p + u->rvar, BN_MOMENTUM, B, OC, HW,
            u->y, u->smean, u->sinv);
    else
        (u->relu ? batchnorm_relu_forward_infer : batchnorm_forward_infer)(
            u->c, p + u->gamma, p + u->beta, p + u->rmean, p + u->rvar, B, OC, HW, u->y);
}

/* b->in -> b->out = relu(main path + shortcut) */
static void block_forward(Crnn *m, Block *b, int B, int bn_train) {
    const float *x = b->in;
    for (int j = 0; j < b->nu; j++) {
        convbn_forward(m, &b->u[j], x, B, bn_train);
        x = b->u[j].y;
    }
    const float *sc = b->in;
    if (b->has_ds) {
        convbn_forward(m, &b->ds, b->in, B, bn_train);
        sc = b->ds.y;
    }
    size_t n = unit_out_floats(&b->u[b->nu - 1], B);
    add_relu_forward(b->out, sc, b->out, n);
}

/* ---- inference forward with BatchNorm folded into the convs ---- */

/* u->fw = w * scale, u->fb = beta - mean * scale, scale = gamma / sqrt(var + eps)
 * per output channel (in double, as batchnorm_forward_infer) */
static void fold_unit(const Crnn *m, ConvBn *u) {
    const float *p = m->params, *w = p + u->w, *gamma = p + u->gamma, *beta = p + u->beta;
    const float *mean = p + u->rmean, *var = p + u->rvar;
    const size_t per_oc = (size_t)u->s.C * u->s.KH * u->s.KW;
    for (int oc = 0; oc < u->s.OC; oc++) {
        const double scale = gamma[oc] / sqrt((double)var[oc] + BN_EPS);
        for (size_t i = 0; i < per_oc; i++)
            u->fw[oc * per_oc + i] = (float)(w[oc * per_oc + i] * scale);
        u->fb[oc] = (float)(beta[oc] - mean[oc] * scale);
    }
    if (u->fwt) conv_transform_weights(&u->s, u->fw, u->fwt);
}

static void fold_all(Crnn *m) {
    CrnnActs *A = m->acts;
    fold_unit(m, &A->stem);
    for (int k = 0; k < A->nblocks; k++) {
        Block *b = &A->blocks[k];
        for (int j = 0; j < b->nu; j++)
            fold_unit(m, &b->u[j]);
        if (b->has_ds) fold_unit(m, &b->ds);
    }
    A->folded_ok = 1;
}

void extractor_params_changed(Crnn *m) {
    m->acts->folded_ok = 0;
}

/* in (B,C,H,W) -> u->y (B,OC,OH,OW) = conv(fw) + fb (+ res), ReLU when
 * u->relu or res (the block's ReLU follows the residual add); by chunks */
static void folded_forward(Crnn *m, const ConvBn *u, const float *in, int B, const float *res) {
    size_t in_per = unit_in_floats(u, 1), out_per = unit_out_floats(u, 1);
    for (int b0 = 0; b0 < B; b0 += u->chunk) {
        ConvShape s = u->s;
        s.B = MIN(u->chunk, B - b0);
        conv2d_bias_forward(&s, in + b0 * in_per, u->fw, u->fwt, u->fb, res ? res + b0 * out_per : NULL,
                            u->relu || res, u->y + b0 * out_per, m->acts->conv_ws);
    }
}

/* b->in -> b->out = relu(main path + shortcut); the downsample runs first so
 * the last conv adds the shortcut in its output pass */
static void block_forward_folded(Crnn *m, Block *b, int B) {
    const float *sc = b->in;
    if (b->has_ds) {
        folded_forward(m, &b->ds, b->in, B, NULL);
        sc = b->ds.y;
    }
    const float *x = b->in;
    for (int j = 0; j < b->nu; j++) {
        folded_forward(m, &b->u[j], x, B, j == b->nu - 1 ? sc : NULL);
        x = b->u[j].y;
    }
}

static const float *extractor_forward_folded(Crnn *m, const float *img, int B) {
    CrnnActs *A = m->acts;
    if (!A->folded_ok) fold_all(m);
    folded_forward(m, &A->stem, img, B, NULL);
    for (int k = 0; k < A->nblocks; k++)
        block_forward_folded(m, &A->blocks[k], B);
    return A->nblocks ? A->blocks[A->nblocks - 1].out : A->stem.y;
}

const float *extractor_forward(Crnn *m, const float *img, int B, int bn_train) {
    CrnnActs *A = m->acts;
    if (!m->train) return extractor_forward_folded(m, img, B);
    convbn_forward(m, &A->stem, img, B, bn_train);
    for (int k = 0; k < A->nblocks; k++) block_forward(m, &A->blocks[k], B, bn_train);
    return A->nblocks ? A->blocks[A->nblocks - 1].out : A->stem.y;
}

/* ---- backward ---- */

/* dy: gradient w.r.t. u->y (post-ReLU when u->relu: the ReLU's backward is
 * fused into the BN's). BN backward into dc (overwritten), then conv
 * backward: dinp += (NULL: not needed). dinp may alias dy (dy is dead after
 * the BN backward); zero_dinp clears it first. */
static void convbn_backward(Crnn *m, ConvBn *u, const float *in, int B, const float *dy,
                            float *dc, float *dinp, int zero_dinp) {
    float *g = m->grads;
    batchnorm_relu_backward_train(u->c, u->relu ? u->y : NULL, dy, m->params + u->gamma,
                                  u->smean, u->sinv, B, u->s.OC, u->s.OH * u->s.OW, dc,
                                  g + u->gamma, g + u->beta);
    if (dinp && zero_dinp) zero_floats(dinp, unit_in_floats(u, B));
    conv_backward_chunked(m, u, in, B, dc, dinp);
}

/* gout: gradient w.r.t. b->out (clobbered). din (overwritten) receives the
 * gradient w.r.t. b->in. dc: scratch. */
static void block_backward(Crnn *m, Block *b, int B, float *gout, float *din, float *dc) {
    const ConvBn *last = &b->u[b->nu - 1];
    size_t n_out = unit_out_floats(last, B);
    size_t n_in = unit_in_floats(&b->u[0], B);
    relu_mask(b->out, gout, n_out);
    if (b->has_ds) convbn_backward(m, &b->ds, b->in, B, gout, dc, din, 1);
    else memcpy(din, gout, n_in * sizeof(float)); /* identity shortcut: same shape */
    float *dy = gout;
    for (int j = b->nu - 1; j > 0; j--) convbn_backward(m, &b->u[j], b->u[j - 1].y, B, dy, dc, dy, 1);
    convbn_backward(m, &b->u[0], b->in, B, dy, dc, din, 0);
}

/* The lowest parameter offset of a block's tensors (its gradients are
 * final after block_backward; later blocks lie above it). */
static size_t block_lowest_offset(const Block *b) {
    size_t lo = SIZE_MAX;
    for (int j = 0; j < b->nu; j++)
        lo = MIN(lo, MIN(b->u[j].w, MIN(b->u[j].gamma, b->u[j].beta)));
    if (b->has_ds) lo = MIN(lo, MIN(b->ds.w, MIN(b->ds.gamma, b->ds.beta)));
    return lo;
}

void extractor_backward(Crnn *m, const float *img, int B) {
    CrnnActs *A = m->acts;
    float *g = A->grad[0], *other = A->grad[1], *dc = A->grad[2];
    for (int k = A->nblocks - 1; k >= 0; k--) {
        block_backward(m, &A->blocks[k], B, g, other, dc);
        report_grads_ready(m, block_lowest_offset(&A->blocks[k]));
        float *t = g;
        g = other;
        other = t;
    }
    convbn_backward(m, &A->stem, img, B, g, dc, NULL, 0);
}
