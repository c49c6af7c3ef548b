/* tool_util.c - see tool_util.h. */
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
