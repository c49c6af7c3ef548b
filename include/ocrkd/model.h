/* model.h - the CRNN of SPEC "The network": ResNet extractor (+ height mean
 * and neck) -> BiLSTM encoder -> linear classifier + log-softmax.
 *
 * Parameters: ONE allocation viewed through a table of named tensors, named
 * and laid out exactly as the PyTorch state_dict of the equivalent model.
 * Order in the buffer: extractor parameters, classifier parameters, encoder
 * parameters, then BatchNorm buffers (running_mean/var). So every legal
 * trainable set ({extractor}, {extractor, classifier}, everything) is a
 * PREFIX of the buffer, and its gradients are one contiguous slice.
 * Activations are sized once at creation for (max_batch, width); forward and
 * backward never allocate. Not for files (checkpoint.c) or MPI. */
#ifndef OCRKD_MODEL_H
#define OCRKD_MODEL_H

#include <stddef.h>

#include "ocrkd/common.h"

#define IMAGE_H 32

enum { PART_EXTRACTOR = 1, PART_CLASSIFIER = 2, PART_ENCODER = 4, PART_ALL = 7 };

typedef struct {
    int blocks[4];              /* blocks per stage */
    int bottleneck;             /* 0 basic (expansion 1), 1 bottleneck (expansion 4) */
    int width;                  /* base width w */
    int feature_dim;            /* neck output D */
    int enc_layers, enc_hidden; /* BiLSTM */
    int num_classes;            /* K = alphabet symbols + 1 */
    int widths[4];              /* planes per stage when set (model.extractor.widths);
                                 * all 0: w, 2w, 4w, 8w (arch_planes) */
} ModelArch;

/* Blocks per stage and block kind of the torchvision ResNet of `depth`
 * (18, 34, 50, 101, 152); returns 0 (and leaves them) for any other depth.
 * (arch_from_config, which builds a ModelArch from a config, is config.h's.) */
int resnet_depth_blocks(int depth, int blocks[4], int *bottleneck);
/* Planes of stage s (0..3): widths[s] when set, else width << s; the stem
 * has arch_planes(a, 0) channels. */
int arch_planes(const ModelArch *a, int s);
/* "ResNet-18 w64 -> BiLSTM 2x256 -> 37 classes" style summary into buf. */
void arch_describe(const ModelArch *a, char *buf, size_t cap);

typedef struct {
    char name[96]; /* e.g. "extractor.layer1.0.conv1.weight" */
    int ndim;
    int shape[4];
    size_t numel;
    size_t offset; /* in floats, into Crnn.params */
    int part;      /* PART_EXTRACTOR | PART_CLASSIFIER | PART_ENCODER */
    int is_buffer; /* BatchNorm running stats: saved, never trained */
} TensorInfo;

typedef struct CrnnActs CrnnActs; /* private: activation buffers and layer plan */

typedef struct {
    ModelArch arch;
    TensorInfo *tensors;
    int ntensors;
    float *params; /* all tensors, one allocation (nparams floats) */
    size_t nparams;
    size_t count[8]; /* parameter floats (not buffers) per part: count[PART_EXTRACTOR]... */
    size_t n_buffers;
    int trainable;           /* mask of PART_*; a prefix of the layout */
    size_t n_trainable;      /* floats in the trainable prefix params[0 .. n_trainable) */
    float *grads;            /* gradients of the trainable prefix (n_trainable); NULL if !train */
    int max_batch, width, T; /* T = time steps for `width` */
    int train;               /* built with backward buffers */
    /* outputs of the last forward, valid until the next one */
    float *feat; /* (T,B,D) neck output: the extractor's D features per time step */
    float *enc;  /* (T,B,2H) encoder output */
    float *logp; /* (T,B,K) log-softmax */
    CrnnActs *acts;
    /* Called by crnn_backward each time the gradients of every trainable
     * tensor at offset >= lo are final (lo decreasing within one backward;
     * never for the stem, so grads[0 .. lo) is always left), so a caller
     * can start reducing them while backward goes on. NULL: not called. */
    void (*grads_ready)(void *ctx, size_t lo);
    void *grads_ready_ctx;
} Crnn;

/* Time steps for an image width (the conv arithmetic, as PyTorch). */
int crnn_time_steps(int width);
/* Allocates parameters (zeroed) and activations for batches of up to
 * max_batch images of IMAGE_H x width. train = 0: inference only (BN uses
 * running stats, activations reused layer to layer, no gradients). */
Crnn *crnn_create(const ModelArch *a, int max_batch, int width, int train); /* CRNN_* */
void crnn_free(Crnn *m);
/* torchvision ResNet / PyTorch initialisation, seeded (Rng of common.h):
 * conv weights kaiming_normal (fan_out, relu: std sqrt(2 / (OC*KH*KW))),
 * BN weight 1 bias 0, running mean 0 var 1; neck and classifier as
 * nn.Linear (weight and bias uniform(+-1/sqrt(fan_in))); LSTM
 * uniform(+-1/sqrt(H)). Same seed, same values; not PyTorch's numbers. */
void crnn_init_params(Crnn *m, uint64_t seed);
/* Sets which parts train; must be PART_EXTRACTOR, PART_EXTRACTOR |
 * PART_CLASSIFIER or PART_ALL (a prefix). Returns 0 or -1 if not a prefix. */
int crnn_set_trainable(Crnn *m, int parts);
TensorInfo *crnn_find(const Crnn *m, const char *name);
static inline float *crnn_tensor(const Crnn *m, const TensorInfo *t) {
    return m->params + t->offset;
}

enum { UPTO_ENCODER = 1, UPTO_LOGITS = 2 };
/* crnn_forward's BatchNorm mode, and crnn_create's model kind */
enum { BN_RUNNING_STATS = 0, BN_BATCH_STATS = 1 };
enum { CRNN_INFERENCE = 0, CRNN_TRAINING = 1 };
/* img (B,1,IMAGE_H,width) in [0,1], B <= max_batch. bn_train: batch
 * statistics + running-stat update (needs train); else running stats.
 * Fills m->feat, m->enc and (upto == UPTO_LOGITS) m->logp. */
void crnn_forward(Crnn *m, const float *img, int B, int bn_train, int upto); /* BN_*, UPTO_* */
/* Inference models (train == 0) run BatchNorm folded into the convs' weights,
 * computed at the first forward after this call. Call it after writing
 * m->params of such a model other than through crnn_init_params or
 * crnn_copy_part (which call it); a no-op for train models. */
void crnn_params_changed(Crnn *m);
void crnn_zero_grad(Crnn *m);
/* Backward of the last forward (which must have had bn_train = 1 if the
 * extractor trains). d_logits (T,B,K): gradient w.r.t. the classifier's
 * pre-log-softmax outputs (what ctc_loss gives), or NULL. d_enc (T,B,2H):
 * extra gradient w.r.t. the encoder output (the distance term), or NULL.
 * d_feat (T,B,D): extra gradient w.r.t. the extractor output (a feature
 * distance), or NULL. Accumulates into m->grads for trainable tensors only;
 * frozen parts get input gradients only (bilstm_backward with dw == NULL). */
void crnn_backward(Crnn *m, const float *d_logits, const float *d_enc, const float *d_feat);

/* Copies tensors of `part` from src to dst by name, shape-checked; the
 * first mismatch is an error naming the tensor (EXIT_USAGE). */
int crnn_copy_part(Crnn *dst, const Crnn *src, int part, Err *err);
/* Initialises dst's extractor (parameters and BN buffers) from src's, which
 * must be as wide or wider and as deep or deeper, with blocks of the same
 * kind: the first blocks of each stage, and along every channel dimension
 * evenly spaced channels (index i of n takes i * N / n of N); the neck's
 * weight is scaled by N / n. Weight selection, Xu et al. 2023 (doc/distill.md). */
int crnn_select_extractor(Crnn *dst, const Crnn *src, Err *err);

#endif
