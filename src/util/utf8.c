/* utf8.c - strict UTF-8 decoding, encoding and counting (utf8.h).
 * Not for case folding (casefold.c) or for alphabets and labels (dataset.c). */
#include "ocrkd/utf8.h"

static int utf8_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

int utf8_next(const char **s, uint32_t *cp) {
    const unsigned char *p = (const unsigned char *)*s;
    if (p[0] == 0) return 0;
    int len;
    uint32_t c, min;
    if (p[0] < 0x80) {
        len = 1, c = p[0], min = 0;
    } else if ((p[0] & 0xE0) == 0xC0) {
        len = 2, c = p[0] & 0x1F, min = 0x80;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3, c = p[0] & 0x0F, min = 0x800;
    } else if ((p[0] & 0xF8) == 0xF0) {
        len = 4, c = p[0] & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if (!utf8_cont(p[i])) return -1; /* also stops at the NUL */
        c = (c << 6) | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
    *cp = c;
    *s += len;
    return 1;
}

int utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

long utf8_count(const char *s) {
    long n = 0;
    uint32_t cp;
    int r;
    while ((r = utf8_next(&s, &cp)) == 1) n++;
    return r < 0 ? -1 : n;
}
