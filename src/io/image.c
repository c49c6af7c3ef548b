/* image.c - PNG (libpng) and JPEG (libjpeg) decoding to 8-bit grey, and the
 * resize rule every image path shares (ocrkd-pack, ocrkd-synth, `ocrkd
 * predict IMAGE...`): scale to height H keeping aspect, left-align, pad on the
 * right by replicating each row's last pixel, squeeze to W if too wide.
 *
 * Not for HDF5 or batching (dataset.c), nor for augmentation. The format is
 * chosen by the file's magic bytes, never by its name. */
#include "ocrkd/image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

/* Larger images are refused rather than risking a huge allocation from a
 * corrupt header; a text line is never this big. */
#define IMAGE_MAX_PIXELS (1L << 28)

/* ITU-R 601 luma, rounded. */
static uint8_t grey_of_rgb(int r, int g, int b) {
    return (uint8_t)((299 * r + 587 * g + 114 * b + 500) / 1000);
}

/* Grey value v with alpha a composited on white. */
static uint8_t on_white(int v, int a) {
    return (uint8_t)((v * a + 255 * (255 - a) + 127) / 255);
}

/* One decoded row of `channels` 8-bit samples (1 grey, 2 grey+alpha, 3 RGB,
 * 4 RGBA) -> grey. */
static void row_to_grey(const uint8_t *row, int channels, int w, uint8_t *out) {
    for (int x = 0; x < w; x++) {
        const uint8_t *p = row + (size_t)x * channels;
        switch (channels) {
        case 1:
            out[x] = p[0];
            break;
        case 2:
            out[x] = on_white(p[0], p[1]);
            break;
        case 3:
            out[x] = grey_of_rgb(p[0], p[1], p[2]);
            break;
        default:
            out[x] = on_white(grey_of_rgb(p[0], p[1], p[2]), p[3]);
            break;
        }
    }
}

/* ---- PNG ---- */

typedef struct {
    char msg[256]; /* libpng's message, kept for our own error */
} PngErrCtx;

static void png_on_error(png_structp png, png_const_charp msg) {
    PngErrCtx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. a bad iCCP profile) do not stop decoding */
}

/* State that must survive the longjmp lives outside the setjmp frame. */
typedef struct {
    png_structp png;
    png_infop info;
    uint8_t *pix, *colour;
    png_bytep *rows;
    int header_only; /* stop after the size */
} PngState;

/* Sets the transforms that turn any PNG into 8-bit grey / grey+alpha / RGB /
 * RGBA; returns the channel count after them. */
static int png_normalize(png_structp png, png_infop info) {
    int bit_depth = png_get_bit_depth(png, info);
    int color = png_get_color_type(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (bit_depth == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    return png_get_channels(png, info);
}

/* Decodes the whole image in its own colour layout (so interlaced files
 * need no special path), then converts it to grey. */
static int png_decode(FILE *f, const char *path, PngState *s, PngErrCtx *ctx, int *w, int *h,
                      Err *err) {
    s->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, png_on_error, png_on_warning);
    if (!s->png) return err_set(err, EXIT_DATA, "%s: cannot create a PNG reader", path);
    s->info = png_create_info_struct(s->png);
    if (!s->info) return err_set(err, EXIT_DATA, "%s: cannot create a PNG reader", path);
    if (setjmp(png_jmpbuf(s->png)))
        return err_set(err, EXIT_DATA, "%s: cannot decode PNG: %s", path, ctx->msg);
    png_init_io(s->png, f);
    png_read_info(s->png, s->info);
    *w = (int)png_get_image_width(s->png, s->info);
    *h = (int)png_get_image_height(s->png, s->info);
    if (*w < 1 || *h < 1 || (long)*w * *h > IMAGE_MAX_PIXELS)
        return err_set(err, EXIT_DATA, "%s: PNG of %d x %d pixels is not supported", path, *w, *h);
    if (s->header_only) return 0;
    int channels = png_normalize(s->png, s->info);
    size_t rowbytes = png_get_rowbytes(s->png, s->info);
    s->colour = xmalloc(rowbytes * *h);
    s->rows = xmalloc(sizeof(png_bytep) * *h);
    for (int y = 0; y < *h; y++)
        s->rows[y] = s->colour + (size_t)y * rowbytes;
    png_read_image(s->png, s->rows);
    s->pix = xmalloc((size_t)*w * *h);
    for (int y = 0; y < *h; y++)
        row_to_grey(s->rows[y], channels, *w, s->pix + (size_t)y * *w);
    return 0;
}

static int png_load(FILE *f, const char *path, uint8_t **pix, int *w, int *h, Err *err) {
    PngState s = {.header_only = pix == NULL};
    PngErrCtx ctx = {.msg = ""};
    int rc = png_decode(f, path, &s, &ctx, w, h, err);
    png_destroy_read_struct(&s.png, &s.info, NULL);
    free(s.colour);
    free(s.rows);
    if (rc || !pix) {
        free(s.pix);
        return rc;
    }
    *pix = s.pix;
    return 0;
}

/* ---- JPEG ---- */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} JpegErr;

static void jpeg_on_error(j_common_ptr cinfo) {
    JpegErr *e = (JpegErr *)cinfo->err;
    e->base.format_message(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* libjpeg only warns on a truncated file and pads it grey; we refuse it,
 * since the label would no longer match the picture. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
    JpegErr *e = (JpegErr *)cinfo->err;
    if (level < 0 && e->base.msg_code == JWRN_JPEG_EOF && !e->truncated) {
        e->truncated = 1;
        e->base.format_message(cinfo, e->msg);
    }
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    uint8_t *pix;
    int header_only; /* stop after the size */
} JpegState;

static int jpeg_decode(FILE *f, const char *path, JpegState *s, int *w, int *h, Err *err) {
    struct jpeg_decompress_struct *ci = &s->cinfo;
    ci->err = jpeg_std_error(&s->jerr.base);
    s->jerr.base.error_exit = jpeg_on_error;
    s->jerr.base.emit_message = jpeg_on_message;
    if (setjmp(s->jerr.jump))
        return err_set(err, EXIT_DATA, "%s: cannot decode JPEG: %s", path, s->jerr.msg);
    jpeg_create_decompress(ci);
    jpeg_stdio_src(ci, f);
    jpeg_read_header(ci, TRUE);
    if (s->header_only) {
        *w = (int)ci->image_width;
        *h = (int)ci->image_height;
        if (*w < 1 || *h < 1 || (long)*w * *h > IMAGE_MAX_PIXELS)
            return err_set(err, EXIT_DATA, "%s: JPEG of %d x %d pixels is not supported", path, *w,
                           *h);
        return 0;
    }
    if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
        return err_set(err, EXIT_DATA, "%s: CMYK JPEG is not supported (convert it to RGB)", path);
    /* libjpeg's grey output is the Y channel: the same 601 weights. */
    ci->out_color_space = JCS_GRAYSCALE;
    jpeg_start_decompress(ci);
    int jw = (int)ci->output_width, jh = (int)ci->output_height;
    if (jw < 1 || jh < 1 || (long)jw * jh > IMAGE_MAX_PIXELS)
        return err_set(err, EXIT_DATA, "%s: JPEG of %d x %d pixels is not supported", path, jw, jh);
    s->pix = xmalloc((size_t)jw * jh);
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = s->pix + (size_t)ci->output_scanline * jw;
        jpeg_read_scanlines(ci, &row, 1);
    }
    if (s->jerr.truncated)
        return err_set(err, EXIT_DATA, "%s: cannot decode JPEG: %s", path, s->jerr.msg);
    jpeg_finish_decompress(ci);
    *w = jw;
    *h = jh;
    return 0;
}

static int jpeg_load(FILE *f, const char *path, uint8_t **pix, int *w, int *h, Err *err) {
    JpegState *s = xcalloc(1, sizeof *s); /* on the heap: nothing in it is clobbered by longjmp */
    s->header_only = pix == NULL;
    int rc = jpeg_decode(f, path, s, w, h, err);
    jpeg_destroy_decompress(&s->cinfo);
    if (rc || !pix)
        free(s->pix);
    else
        *pix = s->pix;
    free(s);
    return rc;
}

/* ---- dispatch ---- */

/* pix == NULL: read the header only (the size). name names f in messages. */
static int image_read_stream(FILE *f, const char *name, uint8_t **pix, int *w, int *h, Err *err) {
    uint8_t magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    rewind(f);
    if (got == 8 && png_sig_cmp(magic, 0, 8) == 0) return png_load(f, name, pix, w, h, err);
    if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF)
        return jpeg_load(f, name, pix, w, h, err);
    return err_set(err, EXIT_DATA, "%s: not a PNG or JPEG file%s", name,
                   got == 0 ? " (empty)" : "");
}

static int image_read(const char *path, uint8_t **pix, int *w, int *h, Err *err) {
    if (pix) *pix = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, EXIT_DATA, "%s: cannot open image: %s", path, strerror(errno));
    int rc = image_read_stream(f, path, pix, w, h, err);
    fclose(f);
    return rc;
}

int image_decode_grey(const void *bytes, size_t len, const char *name, uint8_t **pix, int *w,
                      int *h, Err *err) {
    *pix = NULL;
    if (!len) return err_set(err, EXIT_DATA, "%s: not a PNG or JPEG file (empty)", name);
    FILE *f = fmemopen((void *)bytes, len, "rb");
    if (!f)
        return err_set(err, EXIT_DATA, "%s: cannot read image bytes: %s", name, strerror(errno));
    int rc = image_read_stream(f, name, pix, w, h, err);
    fclose(f);
    return rc;
}

int image_load_grey(const char *path, uint8_t **pix, int *w, int *h, Err *err) {
    return image_read(path, pix, w, h, err);
}

int image_probe_size(const char *path, int *w, int *h, Err *err) {
    return image_read(path, NULL, w, h, err);
}

/* ---- resizing ---- */

int image_scaled_width(int sw, int sh, int H) {
    long w = ((long)2 * sw * H + sh) / ((long)2 * sh); /* round(sw * H / sh) */
    return w < 1 ? 1 : (int)w;
}

/* One axis of the resampling: output index o of n_dst reads source indices
 * [*i0, *i1) of n_src. Shrinking averages the covered area (box filter with
 * fractional edges); enlarging interpolates linearly between pixel centres
 * (half-pixel alignment, as PIL and torch with align_corners=False). */
typedef struct {
    int n_src, n_dst;
    double scale; /* n_src / n_dst */
} Axis;

static void axis_span(const Axis *a, int o, int *i0, int *i1) {
    if (a->n_dst <= a->n_src) {
        double lo = o * a->scale, hi = (o + 1) * a->scale;
        *i0 = (int)floor(lo);
        *i1 = MIN((int)ceil(hi - 1e-9), a->n_src);
    } else {
        double c = (o + 0.5) * a->scale - 0.5;
        c = c < 0 ? 0 : c;
        *i0 = MIN((int)floor(c), a->n_src - 1);
        *i1 = MIN(*i0 + 2, a->n_src);
    }
}

static double axis_weight(const Axis *a, int o, int i) {
    if (a->n_dst <= a->n_src) {
        double lo = o * a->scale, hi = (o + 1) * a->scale;
        double overlap = MIN(hi, (double)i + 1) - MAX(lo, (double)i);
        return overlap > 0 ? overlap / a->scale : 0;
    }
    double c = (o + 0.5) * a->scale - 0.5;
    c = c < 0 ? 0 : (c > a->n_src - 1 ? a->n_src - 1 : c);
    double d = fabs(c - i);
    return d < 1 ? 1 - d : 0;
}

/* src (sh,sw) -> dst rows of stride `stride`, (dh,dw). Each output pixel is
 * computed directly from its 2-D footprint, so no scratch buffer is needed;
 * the total work is about sh*sw + dh*dw taps. */
static void resample(const uint8_t *src, int sw, int sh, uint8_t *dst, int dw, int dh, int stride) {
    Axis ax = {sw, dw, (double)sw / dw}, ay = {sh, dh, (double)sh / dh};
    for (int oy = 0; oy < dh; oy++) {
        int y0, y1;
        axis_span(&ay, oy, &y0, &y1);
        for (int ox = 0; ox < dw; ox++) {
            int x0, x1;
            axis_span(&ax, ox, &x0, &x1);
            double acc = 0;
            for (int y = y0; y < y1; y++) {
                double wy = axis_weight(&ay, oy, y), row = 0;
                for (int x = x0; x < x1; x++)
                    row += axis_weight(&ax, ox, x) * src[(size_t)y * sw + x];
                acc += wy * row;
            }
            long v = lround(acc);
            dst[(size_t)oy * stride + ox] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

void image_fit(const uint8_t *src, int sw, int sh, int H, int W, uint8_t *dst, int *used_w) {
    int tw = MIN(image_scaled_width(sw, sh, H), W);
    resample(src, sw, sh, dst, tw, H, W);
    for (int y = 0; y < H; y++) {
        uint8_t *row = dst + (size_t)y * W;
        memset(row + tw, row[tw - 1], (size_t)(W - tw));
    }
    if (used_w) *used_w = tw;
}
