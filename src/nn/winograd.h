/* winograd.h - conv.c's Winograd F(2x2, 3x3) path (winograd.c): 3x3,
 * stride-1, pad-1 convolutions with at least WINO_MIN_CHANNELS input and
 * output channels, on maps at most WINO_MAX_W wide. Same contracts as
 * conv2d_forward / conv2d_backward; ws from wino_workspace_floats. */
#ifndef OCRKD_WINOGRAD_H
#define OCRKD_WINOGRAD_H

#include "ocrkd/nn.h"

#define WINO_MIN_CHANNELS 16      /* forward; backward with OCRKD_WINOGRAD=on */
#define WINO_AUTO_MIN_CHANNELS 32 /* backward under auto, the default */
#define WINO_MAX_W 2048

/* 1 when s's forward (wino_applies) or backward takes the Winograd path
 * under the mode in force */
int wino_applies(const ConvShape *s);
int wino_applies_backward(const ConvShape *s);
size_t wino_workspace_floats(const ConvShape *s);
/* the output tile, 2 or 4, of s's forward and input gradient: F(2x2, 3x3)
 * or F(4x4, 3x3) (the weight gradient is always F(2x2)) */
int wino_tile(const ConvShape *s);
/* U (16 or 36, C, OC): w (OC, C, 3, 3) in the transformed domain, for
 * wino_forward (inference keeps it while the weights do not change) */
size_t wino_weights_floats(const ConvShape *s);
void wino_transform_weights(const ConvShape *s, const float *w, float *U);
/* out (B,OC,H,W) = conv(inp, w), overwritten; with bias (OC) not NULL then
 * + bias (+ res (B,OC,H,W)) (then ReLU when relu), as conv2d_bias_forward.
 * U: w transformed (wino_transform_weights), or NULL to transform it here. */
void wino_forward(const ConvShape *s, const float *inp, const float *w, const float *U,
                  const float *bias, const float *res, int relu, float *out, float *ws);
/* dinp (B,C,H,W) +=, dw (OC,C,3,3) +=; either may be NULL */
void wino_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                   float *dinp, float *dw, float *ws);

/* conv.c's epilogue on n floats of one channel: dst = src + bias (+ res),
 * then max(., 0) when relu; dst may equal src */
void conv_bias_act_run(float *dst, const float *src, float bias, const float *res, int relu,
                       size_t n);

#endif
