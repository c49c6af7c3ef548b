/* tool_util.h - the command-line helpers ocrkd-synth and ocrkd-pack share:
 * an error exit that names the tool, and checked numeric options. */
#ifndef OCRKD_TOOL_UTIL_H
#define OCRKD_TOOL_UTIL_H

/* The tool's name for messages ("ocrkd-synth"); set first thing in main. */
extern const char *tool_name;

/* Prints "TOOL: error: MSG" (plus a --help hint for usage errors) and exits
 * with code. */
void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
/* s as an integer in [lo, hi], or a usage error naming opt. */
long parse_long(const char *opt, const char *s, long lo, long hi);
/* s as a finite number in [lo, hi], or a usage error naming opt. */
double parse_double(const char *opt, const char *s, double lo, double hi);
/* s as exactly n comma-separated numbers in [lo, hi] ("0.5,0.25,0.25"),
 * or a usage error naming opt. */
void parse_doubles(const char *opt, const char *s, double *out, int n, double lo, double hi);

#endif
