/* pack.c - ocrkd-pack: packs real text-line images listed in a labels file
 * (`relative/path<TAB>label`, or `path label` when a line has no TAB) into
 * one ocrkd dataset (SPEC "Dataset file"), each image decoded to grey and
 * fitted to H x W by image_fit (the rule `ocrkd predict` uses too); or, with
 * --images DIR|@LIST, images without labels into an unlabeled dataset (no
 * /labels), which `ocrkd distill` learns from the teacher alone.
 *
 * A bad line (malformed, empty label, character outside the alphabet,
 * missing or undecodable image) is an error naming the labels file, line,
 * image path and character; the output is written to OUT.tmp and removed on
 * error, so no partial dataset is left. --skip-bad skips such lines and
 * reports the counts by reason. Not for synthetic data (ocrkd-synth).
 *
 * --lmdb DIR packs an LMDB dataset instead (read by pack_lmdb.c), with the
 * same label checks; its errors name the LMDB and the key. */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ocrkd/common.h"
#include "tool_util.h"
#include "ocrkd/dataset.h"
#include "ocrkd/image.h"
#include "pack_lmdb.h"
#include "ocrkd/image_list.h"
#include "ocrkd/utf8.h"

#define UNLABELED_ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz"

static const char *USAGE =
    "usage: ocrkd-pack --labels FILE [--labels FILE ...] --root DIR --out OUT.h5 [options]\n"
    "       ocrkd-pack --lmdb DIR --out OUT.h5 [options]\n"
    "       ocrkd-pack --images DIR|@LIST|IMAGE [--images ...] --out OUT.h5 [options]\n"
    "Packs the images listed in FILE (lines `relative/path<TAB>label`; a single\n"
    "space is accepted as the separator when a line has no TAB; blank lines are\n"
    "ignored), relative to DIR, into the dataset OUT.h5.\n"
    "With --lmdb, packs the LMDB dataset in DIR (keys num-samples, image-%09d with\n"
    "PNG/JPEG bytes, label-%09d, from 1: as deep-text-recognition-benchmark,\n"
    "PaddleOCR and MMOCR write them).\n"
    "With --images, packs images without labels into an unlabeled dataset (no\n"
    "/labels; only `ocrkd distill` reads it): PNG/JPEG files under DIR (recursive,\n"
    "sorted by path), listed one per line in LIST, or named.\n"
    "  --alphabet STR|auto  label symbols; auto (default) = the sorted set of the\n"
    "                       labels' characters (with --images: recorded only,\n"
    "                       default \"" UNLABELED_ALPHABET "\")\n"
    "  --height H           image height (default 32)\n"
    "  --width W            image width (default 128)\n"
    "  --skip-bad           skip bad lines and report counts by reason (default: the\n"
    "                       first bad line is an error, exit 3, and no output is left)\n"
    "  --gzip L             gzip level 0..9 of /images (default 0)\n"
    "  --quiet              print only errors\n";

typedef struct {
    const char *labels, *root, *out, *alphabet, *lmdb;
    const char **labelv; /* every --labels, in order */
    int nlabels;
    int height, width, skip_bad, gzip, quiet;
    char **images; /* --images arguments (unlabeled mode when nimages > 0) */
    int nimages;
} PackArgs;

static int takes_value(const char *opt) {
    static const char *const names[] = {"--labels", "--root",  "--out",  "--alphabet",
                                        "--height", "--width", "--gzip", "--images"};
    if (!strcmp(opt, "--lmdb")) return 1;
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (!strcmp(opt, names[i])) return 1;
    return 0;
}

static void parse_args(int argc, char **argv, PackArgs *a) {
    *a = (PackArgs){.alphabet = "auto", .height = 32, .width = 128};
    a->labelv = xcalloc((size_t)argc, sizeof *a->labelv);
    a->images = xcalloc((size_t)argc, sizeof *a->images);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (!strcmp(o, "--skip-bad") || !strcmp(o, "--quiet")) {
            *(o[2] == 's' ? &a->skip_bad : &a->quiet) = 1;
            continue;
        }
        if (strncmp(o, "--", 2) != 0) die(EXIT_USAGE, "unexpected argument '%s'", o);
        if (!takes_value(o)) die(EXIT_USAGE, "unknown option '%s'", o);
        if (i + 1 >= argc) die(EXIT_USAGE, "%s needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--labels"))
            a->labels = a->labelv[a->nlabels++] = v;
        else if (!strcmp(o, "--lmdb"))
            a->lmdb = v;
        else if (!strcmp(o, "--images"))
            a->images[a->nimages++] = (char *)v;
        else if (!strcmp(o, "--root"))
            a->root = v;
        else if (!strcmp(o, "--out"))
            a->out = v;
        else if (!strcmp(o, "--alphabet"))
            a->alphabet = v;
        else if (!strcmp(o, "--height"))
            a->height = (int)parse_long(o, v, 1, 4096);
        else if (!strcmp(o, "--width"))
            a->width = (int)parse_long(o, v, 1, 65536);
        else
            a->gzip = (int)parse_long(o, v, 0, 9); /* --gzip */
    }
    if (a->lmdb) {
        if (a->labels || a->root)
            die(EXIT_USAGE, "--lmdb reads images and labels from the LMDB: no --labels or --root");
        if (!a->out) die(EXIT_USAGE, "--out OUT.h5 is required");
        return;
    }
    if (!a->out) die(EXIT_USAGE, "--out OUT.h5 is required");
    if (a->nimages) {
        if (a->labels || a->root)
            die(EXIT_USAGE, "--images packs unlabeled images: no --labels or --root with it");
        return;
    }
    if (!a->labels) die(EXIT_USAGE, "--labels FILE is required (or --images for unlabeled data)");
    if (!a->root) die(EXIT_USAGE, "--root DIR is required");
}

/* ---- the labels file ---- */

typedef struct {
    char *path, *label; /* label NULL: the line is malformed */
    const char *file;   /* the labels file; NULL for an LMDB sample */
    long line;          /* its line, or the LMDB sample index (from 1) */
} Entry;

typedef struct {
    Entry *e;
    long n, cap;
} EntryList;

/* Splits a line at its first TAB, else at its first space. */
static void add_line(EntryList *l, char *text, long line_no) {
    char *sep = strchr(text, '\t');
    if (!sep) sep = strchr(text, ' ');
    if (l->n == l->cap) l->e = xrealloc(l->e, sizeof(Entry) * (l->cap = 2 * l->cap + 1024));
    Entry *e = &l->e[l->n++];
    e->line = line_no;
    if (sep) *sep = 0;
    e->path = xstrdup(text);
    e->label = sep ? xstrdup(sep + 1) : NULL;
}

static void read_labels(const char *path, EntryList *l) {
    FILE *f = fopen(path, "r");
    if (!f) die(EXIT_DATA, "%s: cannot open labels file: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long no = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (strspn(line, " \t") == (size_t)got) continue; /* blank */
        add_line(l, line, no);
        l->e[l->n - 1].file = path;
    }
    if (ferror(f)) die(EXIT_DATA, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    free(line);
}

/* --lmdb: one Entry per sample (no path; line = its index), its label read
 * now (a missing label-%09d counts as empty), its image while packing. */
static LmdbSamples *read_lmdb(const char *dir, EntryList *l) {
    LmdbSamples *db;
    long n;
    Err err = {0};
    if (lmdb_samples_open(dir, &db, &n, &err)) die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    l->e = xrealloc(l->e, sizeof(Entry) * (size_t)(l->cap = n + 1));
    for (long i = 1; i <= n; i++) {
        char *label = lmdb_samples_label(db, i);
        l->e[l->n++] = (Entry){.label = label ? label : xstrdup(""), .line = i};
    }
    return db;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The sorted set of code points of all (valid UTF-8) labels, as UTF-8. */
static char *auto_alphabet(const EntryList *l) {
    size_t n = 0, cap = 256;
    uint32_t *cps = xmalloc(sizeof(uint32_t) * cap);
    for (long i = 0; i < l->n; i++) {
        const char *s = l->e[i].label;
        uint32_t cp;
        while (s && utf8_next(&s, &cp) == 1) {
            if (n == cap) cps = xrealloc(cps, sizeof(uint32_t) * (cap *= 2));
            cps[n++] = cp;
        }
    }
    qsort(cps, n, sizeof *cps, cmp_u32);
    char *out = xmalloc(4 * n + 1), *p = out;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || cps[i] != cps[i - 1]) p += utf8_put(cps[i], p);
    *p = 0;
    free(cps);
    return out;
}

/* ---- packing ---- */

enum { BAD_MALFORMED = 0, BAD_EMPTY, BAD_CHAR, BAD_MISSING, BAD_UNDECODABLE, BAD_COUNT };
static const char *BAD_NAME[BAD_COUNT] = {
    "malformed line (no TAB or space separator)", "empty label",
    "character outside the alphabet or invalid UTF-8", "missing image", "undecodable image"};

typedef struct {
    const PackArgs *a;
    Alphabet alpha;
    DatasetWriter *w;
    uint8_t *fitted; /* (height, width), reused for every image */
    int *ids;        /* label scratch */
    int ids_cap;
    LmdbSamples *db; /* --lmdb: the images come from here */
    long written, bad[BAD_COUNT];
} Packer;

/* Checks e's label; returns -1 if good, else a BAD_* reason with why set
 * (naming the image path). */
static int check_label(Packer *p, const Entry *e, const char *full, char *why, size_t cap) {
    if (!e->label)
        return snprintf(why, cap, "\"%s\": no TAB or space between path and label", e->path),
               BAD_MALFORMED;
    if (!*e->label) return snprintf(why, cap, "%s: empty label", full), BAD_EMPTY;
    int len = (int)strlen(e->label);
    if (len > p->ids_cap) p->ids = xrealloc(p->ids, sizeof(int) * (p->ids_cap = 2 * len));
    uint32_t bad = 0;
    int k = alphabet_encode(&p->alpha, e->label, p->ids, p->ids_cap, &bad);
    if (k == -2) return snprintf(why, cap, "%s: label is not valid UTF-8", full), BAD_CHAR;
    if (k < 0) {
        char ch[8];
        ch[utf8_put(bad, ch)] = 0;
        snprintf(why, cap, "%s: character '%s' (U+%04X) of label \"%s\" is not in the alphabet",
                 full, ch, bad, e->label);
        return BAD_CHAR;
    }
    return -1;
}

/* Decodes and fits the image at full into p->fitted; -1 if good, else a
 * BAD_* reason with why set (naming the path). */
static int load_image(Packer *p, const char *full, int *used, char *why, size_t cap) {
    struct stat st;
    if (stat(full, &st) != 0)
        return snprintf(why, cap, "%s: missing image: %s", full, strerror(errno)), BAD_MISSING;
    uint8_t *pix;
    int w, h;
    Err err = {0};
    if (image_load_grey(full, &pix, &w, &h, &err))
        return snprintf(why, cap, "%s", err.msg), BAD_UNDECODABLE;
    image_fit(pix, w, h, p->a->height, p->a->width, p->fitted, used);
    free(pix);
    return -1;
}

/* --lmdb: decodes and fits image-%09ld of sample i into p->fitted; -1 if
 * good, else a BAD_* reason with why set (naming the LMDB and the key). */
static int load_lmdb_image(Packer *p, long i, int *used, char *why, size_t cap) {
    char name[OCRKD_PATH_MAX];
    snprintf(name, sizeof name, "%s: image-%09ld", p->a->lmdb, i);
    const void *bytes;
    size_t len;
    if (lmdb_samples_image(p->db, i, &bytes, &len))
        return snprintf(why, cap, "%s: missing image (no such key)", name), BAD_MISSING;
    uint8_t *pix;
    int w, h;
    Err err = {0};
    if (image_decode_grey(bytes, len, name, &pix, &w, &h, &err))
        return snprintf(why, cap, "%s", err.msg), BAD_UNDECODABLE;
    image_fit(pix, w, h, p->a->height, p->a->width, p->fitted, used);
    free(pix);
    return -1;
}

static void fail(Packer *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
static void fail(Packer *p, int code, const char *fmt, ...) {
    if (p->w) dswriter_abort(p->w);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    die(code, "%s", msg);
}

static void pack_entry(Packer *p, const Entry *e) {
    char full[OCRKD_PATH_MAX], why[sizeof full + 1024];
    if (p->db)
        snprintf(full, sizeof full, "%s: label-%09ld", p->a->lmdb, e->line);
    else
        snprintf(full, sizeof full, "%s/%s", p->a->root, e->path);
    int used = 0, reason = check_label(p, e, full, why, sizeof why);
    if (reason < 0 && p->db)
        reason = load_lmdb_image(p, e->line, &used, why, sizeof why);
    else if (reason < 0)
        reason = load_image(p, full, &used, why, sizeof why);
    if (reason >= 0) {
        if (!p->a->skip_bad && !e->file) fail(p, EXIT_DATA, "%s", why);
        if (!p->a->skip_bad) fail(p, EXIT_DATA, "%s:%ld: %s", e->file, e->line, why);
        p->bad[reason]++;
        return;
    }
    Err err = {0};
    if (dswriter_add(p->w, p->fitted, used, e->label, &err))
        fail(p, err.code ? err.code : EXIT_DATA, "%s", err.msg);
    p->written++;
}

static void report_skips(const Packer *p, long total) {
    long skipped = total - p->written;
    fprintf(stderr, "ocrkd-pack: skipped %ld of %ld %s", skipped, total,
            p->db ? "samples" : "lines");
    for (int r = 0; r < BAD_COUNT; r++)
        if (p->bad[r]) fprintf(stderr, "; %ld %s", p->bad[r], BAD_NAME[r]);
    fprintf(stderr, "\n");
}

/* --images: every listed image, fitted as in the labeled path, no labels. */
static int pack_unlabeled(const PackArgs *a) {
    int n = 0;
    char **paths = image_list_expand(a->images, a->nimages, &n);
    const char *alpha_text = strcmp(a->alphabet, "auto") ? a->alphabet : UNLABELED_ALPHABET;
    Packer p = {.a = a};
    Err err = {0};
    if (alphabet_init(&p.alpha, alpha_text, &err)) die(EXIT_USAGE, "--alphabet: %s", err.msg);
    if (dswriter_open_unlabeled(&p.w, a->out, a->height, a->width, alpha_text, a->gzip, &err))
        die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    p.fitted = xmalloc((size_t)a->height * a->width);
    for (int i = 0; i < n; i++) {
        char why[4096 + 1024];
        int used = 0, reason = load_image(&p, paths[i], &used, why, sizeof why);
        if (reason >= 0) {
            if (!a->skip_bad) fail(&p, EXIT_DATA, "%s", why);
            p.bad[reason]++;
        } else if (dswriter_add(p.w, p.fitted, used, NULL, &err)) {
            fail(&p, err.code ? err.code : EXIT_DATA, "%s", err.msg);
        } else {
            p.written++;
        }
    }
    if (a->skip_bad && p.written < n) report_skips(&p, n);
    if (!p.written) fail(&p, EXIT_DATA, "no usable image, nothing written");
    if (dswriter_close(p.w, &err)) die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    if (!a->quiet)
        fprintf(stderr, "ocrkd-pack: wrote %ld unlabeled images (%dx%d) to %s\n", p.written,
                a->height, a->width, a->out);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(p.fitted);
    alphabet_free(&p.alpha);
    return 0;
}

int main(int argc, char **argv) {
    tool_name = "ocrkd-pack";
    PackArgs a;
    parse_args(argc, argv, &a);
    if (a.nimages) {
        int rc = pack_unlabeled(&a);
        free(a.images);
        return rc;
    }
    EntryList list = {0};
    const char *src = a.lmdb ? a.lmdb : a.labels; /* names the input in messages */
    LmdbSamples *db = a.lmdb ? read_lmdb(a.lmdb, &list) : NULL;
    for (int i = 0; i < a.nlabels; i++)
        read_labels(a.labelv[i], &list);
    if (!list.n) die(EXIT_DATA, "%s: no %s", src, db ? "samples (num-samples is 0)" : "lines");
    Packer p = {.a = &a, .db = db};
    char *alpha_text = strcmp(a.alphabet, "auto") ? xstrdup(a.alphabet) : auto_alphabet(&list);
    Err err = {0};
    if (!*alpha_text) die(EXIT_DATA, "%s: no label characters to make an alphabet from", src);
    if (alphabet_init(&p.alpha, alpha_text, &err)) die(EXIT_USAGE, "--alphabet: %s", err.msg);
    if (dswriter_open(&p.w, a.out, a.height, a.width, alpha_text, a.gzip, &err))
        die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    p.fitted = xmalloc((size_t)a.height * a.width);
    for (long i = 0; i < list.n; i++)
        pack_entry(&p, &list.e[i]);
    if (a.skip_bad && p.written < list.n) report_skips(&p, list.n);
    if (!p.written) fail(&p, EXIT_DATA, "%s: no usable line, nothing written", src);
    if (dswriter_close(p.w, &err)) die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    if (!a.quiet)
        fprintf(stderr, "ocrkd-pack: wrote %ld images (%dx%d) to %s, alphabet \"%s\"\n", p.written,
                a.height, a.width, a.out, alpha_text);
    for (long i = 0; i < list.n; i++) {
        free(list.e[i].path);
        free(list.e[i].label);
    }
    free(list.e);
    free(alpha_text);
    free(a.labelv);
    lmdb_samples_close(db);
    free(a.images);
    free(p.fitted);
    free(p.ids);
    alphabet_free(&p.alpha);
    return 0;
}
