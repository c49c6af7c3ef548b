/* model_internal.h - private to src/model: the ResNet block geometry shared by
 * the tensor table (params.c) and the layer plan (resnet.c), and the layout of
 * the activation buffers (struct CrnnActs). Not a public header: other modules
 * use include/ocrkd/model.h only. */
#ifndef OCRKD_MODEL_INTERNAL_H
#define OCRKD_MODEL_INTERNAL_H

#include "ocrkd/model.h"
#include "ocrkd/nn.h"

#define BN_MOMENTUM 0.1f

/* A k x k convolution with padding k/2 and stride (sh, sw). */
typedef struct {
    int ic, oc, k, sh, sw;
} ConvSpec;

/* One residual block: nconv convolutions each followed by BatchNorm (ReLU
 * after all but the last), an optional 1x1 downsample conv + BN, the
 * residual add and a ReLU. */
typedef struct {
    int nconv; /* 2 basic, 3 bottleneck */
    ConvSpec conv[3];
    int has_ds;
    ConvSpec ds;
    int out_ch;
} BlockGeom;

/* Geometry of block i of stage (0..3) given the block's input channels. */
void block_geom(const ModelArch *a, int stage, int i, int in_ch, BlockGeom *g);
/* Channels of the extractor's final map (8w, x4 for bottleneck). */
int extractor_channels(const ModelArch *a);
int extractor_nblocks(const ModelArch *a);
/* Tensor name prefixes of a conv and its BatchNorm: stage -1 is the stem
 * (conv1/bn1); j = -1 is the block's downsample. */
void convbn_names(int stage, int blk, int j, char *conv, char *bn, size_t cap);
/* Builds m->tensors, m->ntensors, m->nparams, m->count[], m->n_buffers. */
void params_build_table(Crnn *m);
/* Offset of the named tensor in m->params; an internal error if missing. */
size_t tensor_offset(const Crnn *m, const char *name);

/* A conv followed by BatchNorm (and ReLU when relu). Offsets are into
 * Crnn.params (and, for trainable tensors, Crnn.grads). */
typedef struct {
    ConvShape s; /* at max_batch; s.B is set per call */
    int chunk;   /* samples per conv call, bounding the im2col workspace */
    size_t w, gamma, beta, rmean, rvar;
    int relu;
    float *c;            /* conv output (B,OC,OH,OW); pre-BN */
    float *y;            /* BN output, post-ReLU (== c in inference) */
    float *smean, *sinv; /* train: batch mean and 1/std (OC) */
    float *fw, *fb;      /* inference: BN folded into the conv, weight and bias (OC) */
    float *fwt;          /* inference: fw transformed for the conv's fast path, or NULL */
} ConvBn;

typedef struct {
    ConvBn u[3];
    int nu;
    ConvBn ds;
    int has_ds;
    float *in;  /* block input (the previous block's out) */
    float *out; /* block output, post-ReLU (== u[nu-1].y) */
} Block;

struct CrnnActs {
    Arena arena;
    ConvBn stem;
    Block *blocks;
    int nblocks;
    size_t max_act;  /* floats of the largest feature map at max_batch */
    size_t max_ws;   /* floats of the largest conv workspace at max_batch */
    size_t max_ds;   /* floats of the largest downsample output at max_batch */
    int last_B;      /* batch of the last forward (0: none yet) */
    int last_bn_train; /* whether it used batch statistics */
    float *img;      /* train: copy of the last input (the stem's backward needs it) */
    size_t neck_w, neck_b, cls_w, cls_b; /* tensor offsets */
    float *conv_ws;  /* conv workspace, the max over all convs */
    float *pool[4];  /* inference: ping-pong feature maps */
    int folded_ok;   /* inference: every unit's fw/fb match the parameters */
    float *ds_out;   /* train: downsample BN outputs (not kept for backward) */
    float *grad[3];  /* train: gradient scratch, max_act each */
    int fc, fh, fw;  /* final map (B, fc, fh, fw); fw == T */
    float *pooled;   /* (T,B,C) height mean */
    float *lstm_acts, *lstm_ws;
    LstmWeights *lw, *ldw; /* [2*layers] views into params / grads */
    float *d_enc, *d_feat, *d_pooled; /* train */
};

/* resnet.c: the extractor (conv stem + residual stages). */
void extractor_plan_shapes(Crnn *m);            /* shapes + offsets, once */
void extractor_plan_buffers(Crnn *m, Arena *ar); /* measure or assign */
/* img (B,1,IMAGE_H,width) -> returns the final map (B,fc,fh,fw) */
const float *extractor_forward(Crnn *m, const float *img, int B, int bn_train);
/* Backward of the last extractor_forward (bn_train = 1). The gradient
 * w.r.t. the final map (B,fc,fh,fw) must be in acts->grad[0] (it is
 * overwritten); accumulates parameter gradients into m->grads. */
void extractor_backward(Crnn *m, const float *img, int B);
/* Inference models: drop the folded conv weights (recomputed at the next
 * forward); crnn_params_changed of model.h. */
void extractor_params_changed(Crnn *m);
/* Test hook: run every conv on chunks of at most `chunk` samples (the
 * workspace planned at creation stays large enough). */
void extractor_set_chunk(Crnn *m, int chunk);

/* crnn_backward's progress report (Crnn.grads_ready): grads[lo ..) final */
static inline void report_grads_ready(Crnn *m, size_t lo) {
    if (m->grads_ready && lo < m->n_trainable) m->grads_ready(m->grads_ready_ctx, lo);
}

#endif
