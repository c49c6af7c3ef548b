/* winograd.h - conv.c's Winograd F(2x2, 3x3) path (winograd.c): 3x3,
 * stride-1, pad-1 convolutions with at least WINO_MIN_CHANNELS input and
 * output channels, on maps at most WINO_MAX_W wide. Same contracts as
 * conv2d_forward / conv2d_backward; ws from wino_workspace_floats. */
#ifndef OCRKD_WINOGRAD_H
#define OCRKD_WINOGRAD_H

#include "ocrkd/nn.h"

#define WINO_MIN_CHANNELS 16
#define WINO_MAX_W 2048

/* 1 when s takes the Winograd path (and OCRKD_WINOGRAD is not off) */
int wino_applies(const ConvShape *s);
size_t wino_workspace_floats(const ConvShape *s);
/* out (B,OC,H,W) overwritten */
void wino_forward(const ConvShape *s, const float *inp, const float *w, float *out, float *ws);
/* dinp (B,C,H,W) +=, dw (OC,C,3,3) +=; either may be NULL */
void wino_backward(const ConvShape *s, const float *inp, const float *w, const float *dout,
                   float *dinp, float *dw, float *ws);

#endif
