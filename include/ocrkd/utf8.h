/* utf8.h - the one UTF-8 decoder and encoder of ocrkd: strict decoding
 * (overlong forms, surrogates, code points past U+10FFFF and truncated
 * sequences are invalid), encoding, and counting code points.
 *
 * Used by alphabets and labels (dataset), the checkpoint's alphabet check,
 * evaluation and the data tools. Not for case folding (casefold.c) or for
 * deciding what an invalid byte means to a caller. */
#ifndef OCRKD_UTF8_H
#define OCRKD_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes one code point at *s and advances *s: 1 ok, 0 at the end (NUL),
 * -1 invalid UTF-8 (*s is left where the invalid sequence starts). */
int utf8_next(const char **s, uint32_t *cp);
/* Writes cp as UTF-8 into out (4 bytes max, no NUL); returns the byte count. */
int utf8_put(uint32_t cp, char *out);
/* Number of code points of a NUL-terminated string, or -1 if it is not
 * valid UTF-8. */
long utf8_count(const char *s);

#endif
