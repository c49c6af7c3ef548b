/* image_write.h - a JPEG writer (libjpeg) for tests that need image files:
 * tests/test_image.c and the fixture generator tests/data/make_fixtures.c. */
#ifndef OCRKD_TEST_IMAGE_WRITE_H
#define OCRKD_TEST_IMAGE_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

/* data (h, w, channels) with channels 1 (grey) or 3 (RGB); 0 or -1. */
static inline int write_jpeg(const char *path, int w, int h, int channels, const uint8_t *data,
                             int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = w;
    c.image_height = h;
    c.input_components = channels;
    c.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)data + (size_t)c.next_scanline * w * channels;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return fclose(f) == 0 ? 0 : -1;
}

#endif
