/* test_image.c - image_load_grey on PNG and JPEG files this test encodes
 * itself (libpng / libjpeg), and the image_fit rule: aspect, left alignment,
 * edge-replicating padding, squeezing, area-averaging and bilinear values. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h> /* after stdio.h: it needs FILE and size_t */
#include <png.h>

#include "ocrkd/image.h"
#include "test.h"
#include "image_write.h"

static char g_dir[] = "/tmp/ocrkd_test_image_XXXXXX";

static void path_in_dir(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", g_dir, name);
}

/* Writes a PNG: `pixels` holds w*h samples of `channels` values, each `depth`
 * bits (16-bit as big-endian pairs). palette: if non-NULL, colour type
 * PALETTE with n_palette RGB entries and 1 index byte per pixel. */
static int write_png(const char *path, int w, int h, int color_type, int depth, const uint8_t *data,
                     size_t row_bytes, const png_color *palette, int n_palette, int interlace) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, n_palette);
    png_write_info(png, info);
    png_bytep *rows = malloc(sizeof(png_bytep) * h);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)data + (size_t)y * row_bytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    free(rows);
    png_destroy_write_struct(&png, &info);
    fclose(f);
    return 0;
}


static int grey601(int r, int g, int b) {
    return (299 * r + 587 * g + 114 * b + 500) / 1000;
}

/* A smooth-ish test pattern (JPEG keeps it well) of RGB colour at (x,y). */
static void pattern_rgb(int x, int y, uint8_t *rgb) {
    rgb[0] = (uint8_t)(40 + 8 * x);
    rgb[1] = (uint8_t)(200 - 6 * y);
    rgb[2] = (uint8_t)(90 + 3 * (x + y));
}

/* Loads path and compares to want (w*h) within tol; name for messages. */
static void check_decoded(const char *name, const char *path, const uint8_t *want, int w, int h,
                          int tol) {
    uint8_t *pix = NULL;
    int gw = 0, gh = 0;
    Err err = {0};
    int rc = image_load_grey(path, &pix, &gw, &gh, &err);
    CHECK(rc == 0, "%s: decode failed: %s", name, err.msg);
    if (rc) return;
    CHECK(gw == w && gh == h, "%s: size %dx%d, want %dx%d", name, gw, gh, w, h);
    int pw = 0, ph = 0;
    rc = image_probe_size(path, &pw, &ph, &err);
    CHECK(rc == 0 && pw == w && ph == h, "%s: header probe %dx%d (%s), want %dx%d", name, pw, ph,
          rc ? err.msg : "ok", w, h);
    int worst = 0;
    for (int i = 0; i < w * h && gw == w && gh == h; i++)
        worst = MAX(worst, abs(pix[i] - want[i]));
    CHECK(worst <= tol, "%s: worst pixel difference %d > %d", name, worst, tol);
    printf("  ok %-44s worst pixel diff %d\n", name, worst);
    free(pix);
}

static void test_png_variants(void) {
    enum { W = 13, H = 7 }; /* odd sizes on purpose */
    uint8_t grey[H * W], ga[H * W * 2], rgb[H * W * 3], rgba[H * W * 4], want[H * W];
    uint8_t g16[H * W * 2], pal_idx[H * W], want_a[H * W];
    png_color palette[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {20, 40, 250}};
    uint8_t want_pal[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int i = y * W + x;
            uint8_t c[3];
            pattern_rgb(x, y, c);
            grey[i] = (uint8_t)(17 * x + 3 * y);
            ga[2 * i] = grey[i];
            ga[2 * i + 1] = (uint8_t)(x * 19);
            memcpy(rgb + 3 * i, c, 3);
            memcpy(rgba + 4 * i, c, 3);
            rgba[4 * i + 3] = (uint8_t)(y * 40);
            want[i] = (uint8_t)grey601(c[0], c[1], c[2]);
            int a = rgba[4 * i + 3];
            want_a[i] = (uint8_t)((want[i] * a + 255 * (255 - a) + 127) / 255);
            uint16_t v16 = (uint16_t)(grey[i] * 257 + (x & 1) * 100);
            g16[2 * i] = (uint8_t)(v16 >> 8);
            g16[2 * i + 1] = (uint8_t)(v16 & 255);
            pal_idx[i] = (uint8_t)((x + y) % 4);
            png_color p = palette[pal_idx[i]];
            want_pal[i] = (uint8_t)grey601(p.red, p.green, p.blue);
        }
    uint8_t want_ga[H * W];
    for (int i = 0; i < H * W; i++)
        want_ga[i] = (uint8_t)((grey[i] * ga[2 * i + 1] + 255 * (255 - ga[2 * i + 1]) + 127) / 255);

    char p[256];
    path_in_dir(p, sizeof p, "grey.png");
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, grey, W, NULL, 0, 0);
    check_decoded("png grey 8-bit", p, grey, W, H, 0);
    path_in_dir(p, sizeof p, "grey_interlaced.png");
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, grey, W, NULL, 0, 1);
    check_decoded("png grey interlaced", p, grey, W, H, 0);
    path_in_dir(p, sizeof p, "ga.png");
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 2 * W, NULL, 0, 0);
    check_decoded("png grey+alpha on white", p, want_ga, W, H, 0);
    path_in_dir(p, sizeof p, "rgb.png");
    write_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, rgb, 3 * W, NULL, 0, 0);
    check_decoded("png rgb -> 601 grey", p, want, W, H, 0);
    path_in_dir(p, sizeof p, "rgba.png");
    write_png(p, W, H, PNG_COLOR_TYPE_RGBA, 8, rgba, 4 * W, NULL, 0, 0);
    check_decoded("png rgba on white", p, want_a, W, H, 0);
    path_in_dir(p, sizeof p, "g16.png");
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 16, g16, 2 * W, NULL, 0, 0);
    check_decoded("png grey 16-bit", p, grey, W, H, 1);
    path_in_dir(p, sizeof p, "pal.png");
    write_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 8, pal_idx, W, palette, 4, 0);
    check_decoded("png palette", p, want_pal, W, H, 0);
}

static void test_png_1bit(void) {
    enum { W = 11, H = 3 }; /* 11 pixels -> 2 bytes per row */
    uint8_t packed[H * 2] = {0}, want[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int on = (x + y) % 3 == 0;
            want[y * W + x] = on ? 255 : 0;
            if (on) packed[y * 2 + x / 8] |= (uint8_t)(0x80 >> (x % 8));
        }
    char p[256];
    path_in_dir(p, sizeof p, "bw.png");
    write_png(p, W, H, PNG_COLOR_TYPE_GRAY, 1, packed, 2, NULL, 0, 0);
    check_decoded("png grey 1-bit", p, want, W, H, 0);
}

static void test_jpeg(void) {
    enum { W = 21, H = 9 };
    uint8_t grey[H * W], rgb[H * W * 3], want[H * W];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int i = y * W + x;
            pattern_rgb(x, y, rgb + 3 * i);
            want[i] = (uint8_t)grey601(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
            grey[i] = (uint8_t)(30 + 9 * x + 2 * y);
        }
    char p[256];
    path_in_dir(p, sizeof p, "grey.jpg");
    write_jpeg(p, W, H, 1, grey, 98);
    check_decoded("jpeg grey", p, grey, W, H, 6);
    path_in_dir(p, sizeof p, "rgb.jpeg");
    write_jpeg(p, W, H, 3, rgb, 98);
    check_decoded("jpeg rgb -> 601 grey", p, want, W, H, 8);
}

/* Copies the first `keep` bytes of src to dst (a truncated file). */
/* keep_fraction < 0: cut in the middle of the JPEG scan data (after SOS). */
static void truncate_copy(const char *src, const char *dst, double keep_fraction) {
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, in), cut = (size_t)(n * keep_fraction);
    for (size_t i = 0; keep_fraction < 0 && i + 1 < n; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xDA) cut = i + (n - i) / 2;
    n = cut;
    fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}

static void check_fails(const char *name, const char *path) {
    uint8_t *pix = (uint8_t *)1;
    int w, h;
    Err err = {0};
    int rc = image_load_grey(path, &pix, &w, &h, &err);
    CHECK(rc == EXIT_DATA, "%s: rc %d, want %d", name, rc, EXIT_DATA);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", name, err.msg);
    CHECK(pix == NULL, "%s: pixels not NULL on error", name);
    printf("  ok %-44s %s\n", name, err.msg);
}

static void test_errors(void) {
    char p[256], q[256];
    path_in_dir(p, sizeof p, "missing.png");
    check_fails("missing file", p);
    path_in_dir(p, sizeof p, "text.png");
    FILE *f = fopen(p, "w");
    fputs("this is not an image\n", f);
    fclose(f);
    check_fails("not an image", p);
    path_in_dir(p, sizeof p, "rgb.png");
    path_in_dir(q, sizeof q, "cut.png");
    truncate_copy(p, q, 0.5);
    check_fails("truncated png", q);
    path_in_dir(p, sizeof p, "rgb.jpeg");
    path_in_dir(q, sizeof q, "cut.jpg");
    truncate_copy(p, q, -1);
    check_fails("truncated jpeg", q);
}

/* ---- image_fit ---- */

static void check_padding(const char *name, const uint8_t *dst, int H, int W, int used) {
    int bad = 0;
    for (int y = 0; y < H; y++)
        for (int x = used; x < W; x++)
            bad += dst[y * W + x] != dst[y * W + used - 1];
    CHECK(bad == 0, "%s: %d padding pixels differ from the row's last pixel", name, bad);
}

static void test_fit_geometry(void) {
    enum { H = 32, W = 128 };
    uint8_t dst[H * W];
    uint8_t src[400 * 10];
    for (int i = 0; i < 400 * 10; i++)
        src[i] = (uint8_t)((i * 37) % 251);
    int used = -1;
    /* 40x20 -> height 32 keeps aspect: width 64, padded. */
    image_fit(src, 40, 20, H, W, dst, &used);
    CHECK(used == 64, "aspect: used width %d, want 64", used);
    check_padding("aspect 40x20", dst, H, W, used);
    /* 10x21 -> round(10*32/21) = 15. */
    image_fit(src, 10, 21, H, W, dst, &used);
    CHECK(used == 15, "odd aspect: used width %d, want 15", used);
    check_padding("odd 10x21", dst, H, W, used);
    CHECK(image_scaled_width(10, 21, 32) == 15, "image_scaled_width(10,21,32)");
    CHECK(image_scaled_width(1, 1000, 32) == 1, "image_scaled_width never below 1");
    /* 400x10 would be 1280 wide: squeezed to W, no padding. */
    image_fit(src, 400, 10, H, W, dst, &used);
    CHECK(used == W, "squeeze: used width %d, want %d", used, W);
    /* Identity: same height, narrower than W -> pixels unchanged. */
    image_fit(src, 50, 32, H, W, dst, &used);
    int same = used == 50;
    for (int y = 0; y < H && same; y++)
        same = memcmp(dst + y * W, src + y * 50, 50) == 0;
    CHECK(same, "identity resize changed pixels (used %d)", used);
    check_padding("identity 50x32", dst, H, W, used);
}

static void test_fit_values(void) {
    /* Shrinking by 2: each output pixel is the mean of a 2x2 block. */
    enum { SW = 8, SH = 4 };
    uint8_t src[SH * SW], dst[2 * 4];
    for (int i = 0; i < SH * SW; i++)
        src[i] = (uint8_t)((i * 53) % 256);
    int used;
    image_fit(src, SW, SH, 2, 4, dst, &used);
    float got[8], want[8];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 4; x++) {
            int s = src[(2 * y) * SW + 2 * x] + src[(2 * y) * SW + 2 * x + 1] +
                    src[(2 * y + 1) * SW + 2 * x] + src[(2 * y + 1) * SW + 2 * x + 1];
            want[y * 4 + x] = (float)s / 4.0f;
            got[y * 4 + x] = dst[y * 4 + x];
        }
    CHECK_CLOSE("area average 2x shrink", got, want, 8, 0.5, 0);

    /* Shrinking by 3 (6x3 -> 2x1): each output pixel is the mean of a 3x3 block. */
    uint8_t six[3 * 6], one[2];
    float w2[2] = {0, 0};
    for (int i = 0; i < 18; i++) {
        six[i] = (uint8_t)((i * 71) % 256);
        w2[(i % 6) / 3] += six[i] / 9.0f;
    }
    image_fit(six, 6, 3, 1, 2, one, &used);
    float g2[2] = {one[0], one[1]};
    CHECK_CLOSE("area average 3x shrink", g2, w2, 2, 0.5, 0);

    /* Enlarging 2x1 -> 4x2 bilinear with half-pixel centres:
     * centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped). */
    uint8_t two[2] = {0, 200}, big[2 * 4];
    image_fit(two, 2, 1, 2, 4, big, &used);
    float gb[8], wb[8] = {0, 50, 150, 200, 0, 50, 150, 200};
    for (int i = 0; i < 8; i++)
        gb[i] = big[i];
    CHECK_CLOSE("bilinear 2x enlarge", gb, wb, 8, 0.5, 0);
    CHECK(used == 4, "bilinear used width %d", used);

    /* A constant image stays constant through any scale. */
    uint8_t flat[37 * 45], out[32 * 128];
    memset(flat, 77, sizeof flat);
    image_fit(flat, 37, 45, 32, 128, out, &used);
    int off = 0;
    for (int i = 0; i < 32 * 128; i++)
        off += out[i] != 77;
    CHECK(off == 0, "constant image: %d pixels changed", off);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_png_variants();
    test_png_1bit();
    test_jpeg();
    test_errors();
    test_fit_geometry();
    test_fit_values();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", g_dir);
    TEST_END();
}
