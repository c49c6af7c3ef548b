/* make_fixtures.c - writes the tiny PNG/JPEG fixtures of tests/data/pack/
 * that tests/e2e/test_tools.sh packs with ocrkd-pack. Run from the repo root:
 *   cc -std=c11 tests/data/make_fixtures.c -o /tmp/mkfix $(pkg-config --cflags --libs
 *      libpng libjpeg) && /tmp/mkfix tests/data/pack
 * Uniform colours make the expected grey level exact (ITU-R 601):
 *   rgb.png     60x20 RGB (200,100,50)     -> grey 124, used width 96
 *   rgb.jpg     45x30 RGB (10,200,30)      -> grey ~124, used width 48
 *   ga.png      33x17 grey 0 + alpha 128   -> grey 127 on white, used width 62
 *   wide.jpg    101x9 grey stripes         -> squeezed to the full width
 *   sub/pal.png 7x5 palette (2 colours)    -> used width 45
 *   broken.png  not an image (a PNG name on text) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <png.h>

#include "../image_write.h"

static void png_write(const char *path, int w, int h, int type, const unsigned char *data,
                      int channels, const png_color *pal, int npal) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "%s: libpng failed\n", path);
        exit(1);
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 8, type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    png_write_info(png, info);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_bytep)data + (size_t)y * w * channels);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

static void jpeg_write(const char *path, int w, int h, int channels, const unsigned char *data) {
    if (write_jpeg(path, w, h, channels, data, 95) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    char p[4096];
    static unsigned char buf[200 * 200 * 4];
    const char *d = argv[1];
    for (int i = 0; i < 60 * 20; i++)
        memcpy(buf + 3 * i, "\xc8\x64\x32", 3);
    snprintf(p, sizeof p, "%s/rgb.png", d);
    png_write(p, 60, 20, PNG_COLOR_TYPE_RGB, buf, 3, NULL, 0);
    for (int i = 0; i < 45 * 30; i++)
        memcpy(buf + 3 * i, "\x0a\xc8\x1e", 3);
    snprintf(p, sizeof p, "%s/rgb.jpg", d);
    jpeg_write(p, 45, 30, 3, buf);
    for (int i = 0; i < 33 * 17; i++) {
        buf[2 * i] = 0;
        buf[2 * i + 1] = 128;
    }
    snprintf(p, sizeof p, "%s/ga.png", d);
    png_write(p, 33, 17, PNG_COLOR_TYPE_GRAY_ALPHA, buf, 2, NULL, 0);
    for (int i = 0; i < 101 * 9; i++)
        buf[i] = (unsigned char)((i % 101) / 10 % 2 ? 40 : 220);
    snprintf(p, sizeof p, "%s/wide.jpg", d);
    jpeg_write(p, 101, 9, 1, buf);
    png_color pal[2] = {{255, 255, 255}, {0, 0, 0}};
    for (int i = 0; i < 7 * 5; i++)
        buf[i] = (unsigned char)(i % 7 == 3);
    snprintf(p, sizeof p, "%s/sub", d);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/sub/pal.png", d);
    png_write(p, 7, 5, PNG_COLOR_TYPE_PALETTE, buf, 1, pal, 2);
    snprintf(p, sizeof p, "%s/broken.png", d);
    FILE *f = fopen(p, "w");
    fputs("not a PNG\n", f);
    fclose(f);
    return 0;
}
