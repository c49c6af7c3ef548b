/* image.h - decoding PNG (libpng) and JPEG (libjpeg-turbo) to grey, and the
 * one resize rule shared by ocrkd-pack and `ocrkd predict IMAGE...`: scale to
 * height H keeping aspect, left-align, pad to W with the image's background
 * (edge-replicate), or squeeze to W if too wide. Not for HDF5. */
#ifndef OCRKD_IMAGE_H
#define OCRKD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "ocrkd/common.h"

/* Decodes path (PNG or JPEG by content, grey or colour -> grey with ITU-R 601
 * weights, alpha composited on white). *pix is malloc'd (h*w). EXIT_DATA on
 * a missing, unreadable or undecodable file, naming it. */
int image_load_grey(const char *path, uint8_t **pix, int *w, int *h, Err *err);

/* As image_load_grey, for the len bytes of a PNG or JPEG file held in memory
 * (an LMDB value); name (e.g. "DIR: image-000000001") names it in messages. */
int image_decode_grey(const void *bytes, size_t len, const char *name, uint8_t **pix, int *w,
                      int *h, Err *err);

/* The size of a PNG or JPEG from its header, without decoding the pixels
 * (same checks and messages as image_load_grey for what it reads). */
int image_probe_size(const char *path, int *w, int *h, Err *err);

/* Width an image of sw x sh gets when scaled to height H, aspect kept (>= 1). */
int image_scaled_width(int sw, int sh, int H);

/* src (sh,sw) -> dst (H,W): bilinear (area-averaged when shrinking) to
 * height H keeping aspect, left-aligned; padded on the right by replicating
 * each row's last pixel, or squeezed to W if wider. *used_w gets the width
 * holding the image (<= W). */
void image_fit(const uint8_t *src, int sw, int sh, int H, int W, uint8_t *dst, int *used_w);

#endif
