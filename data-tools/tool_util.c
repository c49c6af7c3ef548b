/* tool_util.c - what ocrkd-synth and ocrkd-pack share (tool_util.h).
 * Not for the library: tools only. */
#include "tool_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ocrkd/common.h"

const char *tool_name = "ocrkd-tool";

void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: error: ", tool_name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "%s\n", code == EXIT_USAGE ? " (see --help)" : "");
    va_end(ap);
    exit(code);
}

long parse_long(const char *opt, const char *s, long lo, long hi) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die(EXIT_USAGE, "%s: expected an integer in [%ld, %ld], got '%s'", opt, lo, hi, s);
    return v;
}

double parse_double(const char *opt, const char *s, double lo, double hi) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        die(EXIT_USAGE, "%s: expected a number in [%g, %g], got '%s'", opt, lo, hi, s);
    return v;
}

void parse_doubles(const char *opt, const char *s, double *out, int n, double lo, double hi) {
    const char *p = s;
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        out[i] = strtod(p, &end);
        int sep_ok = i + 1 < n ? *end == ',' : *end == 0;
        if (errno || end == p || !sep_ok || !(out[i] >= lo && out[i] <= hi))
            die(EXIT_USAGE, "%s: expected %d comma-separated numbers in [%g, %g], got '%s'", opt, n,
                lo, hi, s);
        p = end + 1;
    }
}
