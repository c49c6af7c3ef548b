/* synth.c - ocrkd-synth: an MJSynth-style generator of synthetic text-line
 * images (FreeType), written as ocrkd datasets (SPEC "Dataset file").
 *
 * Per sample: a text (dictionary word, random string or number), a font,
 * size, letter spacing, baseline jitter, slight rotation and shear, grey
 * levels with enough contrast, then the line is cropped, scaled to H = 32
 * by image_fit (the same rule ocrkd-pack and `ocrkd predict` use), mildly
 * blurred and noised. A text that does not fit W after scaling is dropped
 * and redrawn, so every label matches a readable image.
 *
 * Determinism: each sample's RNG is seeded from (seed, split, index) alone,
 * so the output is byte-identical for the same arguments whatever the thread
 * count. Worker threads render blocks of samples; the main thread writes
 * them in order. Not for real images (ocrkd-pack) or augmentation at
 * training time (dataset_augment.c). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ft2build.h>
#include FT_FREETYPE_H

#include "ocrkd/common.h"
#include "tool_util.h"
#include "ocrkd/dataset.h"
#include "ocrkd/image.h"

#define SYNTH_H 32
#define BLOCK 64 /* samples a worker renders at a time */
#define SLOTS 8  /* blocks in flight between workers and the writer */
#define MAX_THREADS 16
#define DEFAULT_ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz"
#define DEFAULT_FONTS                                                                              \
    "/usr/share/fonts/truetype/dejavu:/usr/share/fonts/truetype/liberation2:"                      \
    "/usr/share/fonts/truetype/freefont"

enum { SPLIT_TRAIN = 0, SPLIT_VAL, SPLIT_TEST, SPLIT_COUNT };
static const char *SPLIT_NAME[SPLIT_COUNT] = {"train", "val", "test"};

static const char *USAGE =
    "usage: ocrkd-synth --out DIR --train N --val N --test N [options]\n"
    "Renders synthetic grey text lines (height 32) into DIR/train.h5, DIR/val.h5,\n"
    "DIR/test.h5 (a split with N = 0 is skipped).\n"
    "  --seed S          seed of the whole set (default 1)\n"
    "  --width W         image width (default 128)\n"
    "  --alphabet STR    symbols of the labels (default " DEFAULT_ALPHABET ")\n"
    "  --fonts PATHS     colon-separated font files or directories of .ttf/.otf\n"
    "                    (default the DejaVu, Liberation and FreeFont directories)\n"
    "  --words FILE      word list (default /usr/share/dict/words)\n"
    "  --shards K        write train as DIR/train-000.h5 .. train-(K-1).h5\n"
    "  --min-len N       shortest text (default 1)\n"
    "  --max-len N       longest text (default 12)\n"
    "  --gzip L          gzip level 0..9 of /images (default 0)\n"
    "  --threads T       rendering threads (default 2; output does not depend on it)\n"
    "  --quiet           no progress on stderr\n";

typedef struct {
    const char *out_dir, *alphabet, *fonts, *words;
    long n[SPLIT_COUNT];
    uint64_t seed;
    int width, shards, min_len, max_len, gzip, threads, quiet;
    /* A missing path given on the command line is an error; a missing default is not. */
    int fonts_given, words_given;
} SynthArgs;

/* ---- messages ---- */

static int takes_value(const char *opt) {
    static const char *const names[] = {
        "--out",   "--train", "--val",    "--test",    "--seed",    "--width", "--alphabet",
        "--fonts", "--words", "--shards", "--min-len", "--max-len", "--gzip",  "--threads"};
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (!strcmp(opt, names[i])) return 1;
    return 0;
}

static void parse_args(int argc, char **argv, SynthArgs *a) {
    *a = (SynthArgs){.alphabet = DEFAULT_ALPHABET,
                     .fonts = DEFAULT_FONTS,
                     .words = "/usr/share/dict/words",
                     .n = {-1, -1, -1},
                     .seed = 1,
                     .width = 128,
                     .shards = 1,
                     .min_len = 1,
                     .max_len = 12,
                     .threads = 2};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (!strcmp(o, "--quiet")) {
            a->quiet = 1;
            continue;
        }
        if (strncmp(o, "--", 2) != 0) die(EXIT_USAGE, "unexpected argument '%s'", o);
        if (!takes_value(o)) die(EXIT_USAGE, "unknown option '%s'", o);
        if (i + 1 >= argc) die(EXIT_USAGE, "%s needs a value", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--out"))
            a->out_dir = v;
        else if (!strcmp(o, "--train"))
            a->n[SPLIT_TRAIN] = parse_long(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--val"))
            a->n[SPLIT_VAL] = parse_long(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--test"))
            a->n[SPLIT_TEST] = parse_long(o, v, 0, 1L << 40);
        else if (!strcmp(o, "--seed"))
            a->seed = (uint64_t)parse_long(o, v, 0, INT64_MAX);
        else if (!strcmp(o, "--width"))
            a->width = (int)parse_long(o, v, 8, 8192);
        else if (!strcmp(o, "--alphabet"))
            a->alphabet = v;
        else if (!strcmp(o, "--fonts"))
            a->fonts = v, a->fonts_given = 1;
        else if (!strcmp(o, "--words"))
            a->words = v, a->words_given = 1;
        else if (!strcmp(o, "--shards"))
            a->shards = (int)parse_long(o, v, 1, 100000);
        else if (!strcmp(o, "--min-len"))
            a->min_len = (int)parse_long(o, v, 1, 1000);
        else if (!strcmp(o, "--max-len"))
            a->max_len = (int)parse_long(o, v, 1, 1000);
        else if (!strcmp(o, "--gzip"))
            a->gzip = (int)parse_long(o, v, 0, 9);
        else
            a->threads = (int)parse_long(o, v, 1, MAX_THREADS); /* --threads */
    }
    if (!a->out_dir) die(EXIT_USAGE, "--out DIR is required");
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (a->n[s] < 0) die(EXIT_USAGE, "--%s N is required (0 skips the split)", SPLIT_NAME[s]);
    if (a->min_len > a->max_len)
        die(EXIT_USAGE, "--min-len %d is greater than --max-len %d", a->min_len, a->max_len);
    if (a->n[SPLIT_TRAIN] > 0 && a->shards > a->n[SPLIT_TRAIN])
        die(EXIT_USAGE, "--shards %d is more than the %ld training images", a->shards,
            a->n[SPLIT_TRAIN]);
}

/* ---- the text source: words, random strings, numbers (as alphabet ids) ---- */

typedef struct {
    Alphabet alpha;
    int *word_ids;  /* all words' ids, concatenated */
    long *word_off; /* word k is word_ids[word_off[k] .. word_off[k+1]) */
    long nwords;
    int *plain; /* ids usable anywhere in a random string (not space) */
    int nplain;
    int digits[10], ndigits;
    int seps[4], nseps; /* '.', ',', '-', ':' when in the alphabet */
    int *upper_of;      /* id -> id of its upper case (itself if none) */
    int has_upper;      /* the alphabet has an upper-case ASCII letter */
    int min_len, max_len;
} TextSource;

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads the word list: case-folded when the alphabet has no upper case,
 * deduplicated, filtered to the alphabet and the length range. */
static void load_words(TextSource *t, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) die(EXIT_USAGE, "--words %s: cannot open: %s", path, strerror(errno));
    char **lines = NULL;
    size_t n = 0, cap = 0, len = 0;
    char *line = NULL;
    ssize_t got;
    while ((got = getline(&line, &len, f)) >= 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = 0;
        if (!got) continue;
        for (char *c = line; *c && !t->has_upper; c++)
            if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
        if (n == cap) lines = xrealloc(lines, (cap = cap ? 2 * cap : 4096) * sizeof *lines);
        lines[n++] = xstrdup(line);
    }
    if (ferror(f)) die(EXIT_USAGE, "--words %s: read error: %s", path, strerror(errno));
    fclose(f);
    free(line);
    qsort(lines, n, sizeof *lines, cmp_str);
    int *ids = xmalloc(sizeof(int) * (t->max_len + 1));
    size_t ids_cap = 1 << 16;
    t->word_off = xmalloc(sizeof(long) * (n + 1));
    t->word_ids = xmalloc(sizeof(int) * ids_cap);
    t->word_off[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int k = i > 0 && !strcmp(lines[i], lines[i - 1]) ? -3 : 0;
        uint32_t bad;
        if (!k) k = alphabet_encode(&t->alpha, lines[i], ids, t->max_len + 1, &bad);
        if (k >= t->min_len && k <= t->max_len) {
            long o = t->word_off[t->nwords];
            if ((size_t)(o + k) > ids_cap)
                t->word_ids = xrealloc(t->word_ids, sizeof(int) * (ids_cap *= 2));
            memcpy(t->word_ids + o, ids, sizeof(int) * k);
            t->word_off[++t->nwords] = o + k;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
    free(ids);
}

static void text_source_init(TextSource *t, const SynthArgs *a, int quiet) {
    memset(t, 0, sizeof *t);
    Err err = {0};
    if (alphabet_init(&t->alpha, a->alphabet, &err)) die(EXIT_USAGE, "--alphabet: %s", err.msg);
    t->min_len = a->min_len;
    t->max_len = a->max_len;
    int n = t->alpha.n;
    t->plain = xmalloc(sizeof(int) * n);
    t->upper_of = xmalloc(sizeof(int) * (n + 1));
    for (int id = 1; id <= n; id++) {
        uint32_t cp = t->alpha.cps[id - 1];
        t->upper_of[id] = id;
        if (cp >= 'A' && cp <= 'Z') t->has_upper = 1;
        if (cp >= 'a' && cp <= 'z' && alphabet_id(&t->alpha, cp - 'a' + 'A'))
            t->upper_of[id] = alphabet_id(&t->alpha, cp - 'a' + 'A');
        if (cp != ' ') t->plain[t->nplain++] = id;
        if (cp >= '0' && cp <= '9') t->digits[t->ndigits++] = id;
        if (cp && cp < 128 && strchr(".,-:", (int)cp) && t->nseps < 4) t->seps[t->nseps++] = id;
    }
    if (!t->nplain) die(EXIT_USAGE, "--alphabet has no printable symbol");
    if (a->words_given || access(a->words, R_OK) == 0)
        load_words(t, a->words);
    else if (!quiet)
        fprintf(stderr, "ocrkd-synth: no word list at %s: random strings and numbers only\n",
                a->words);
    if (!quiet)
        fprintf(stderr, "ocrkd-synth: %ld words of %s fit the alphabet and lengths %d..%d\n",
                t->nwords, a->words, a->min_len, a->max_len);
}

static void text_source_free(TextSource *t) {
    alphabet_free(&t->alpha);
    free(t->word_ids);
    free(t->word_off);
    free(t->plain);
    free(t->upper_of);
}

static int rand_between(Rng *r, int lo, int hi) {
    return lo + (int)rng_below(r, hi - lo + 1);
}
static double rand_range(Rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform(r);
}

/* A dictionary word, sometimes capitalised or upper-cased when the alphabet
 * has both cases. */
static int text_word(const TextSource *t, Rng *r, int *ids) {
    long k = (long)rng_below(r, t->nwords);
    int n = (int)(t->word_off[k + 1] - t->word_off[k]);
    memcpy(ids, t->word_ids + t->word_off[k], sizeof(int) * n);
    double u = rng_uniform(r);
    if (t->has_upper && u < 0.25) {
        int upto = u < 0.1 ? n : 1;
        for (int i = 0; i < upto; i++)
            ids[i] = t->upper_of[ids[i]];
    }
    return n;
}

static int text_random(const TextSource *t, Rng *r, int *ids) {
    int n = rand_between(r, t->min_len, t->max_len);
    for (int i = 0; i < n; i++)
        ids[i] = t->plain[rng_below(r, t->nplain)];
    return n;
}

/* Digits, with now and then one separator inside ("3.14", "12-05"). */
static int text_number(const TextSource *t, Rng *r, int *ids) {
    int n = rand_between(r, t->min_len, MAX(t->min_len, MIN(t->max_len, 10)));
    for (int i = 0; i < n; i++)
        ids[i] = t->digits[rng_below(r, t->ndigits)];
    if (t->nseps && n >= 3 && rng_uniform(r) < 0.3)
        ids[rand_between(r, 1, n - 2)] = t->seps[rng_below(r, t->nseps)];
    return n;
}

/* About 60% words, 25% random strings, 15% numbers; a kind the alphabet or
 * word list cannot make falls back to a random string. Returns the length. */
static int make_text(const TextSource *t, Rng *r, int *ids) {
    double u = rng_uniform(r);
    if (u < 0.60 && t->nwords) return text_word(t, r, ids);
    if (u >= 0.85 && t->ndigits) return text_number(t, r, ids);
    return text_random(t, r, ids);
}

/* ---- fonts ---- */

typedef struct {
    char **paths;
    int n, cap;
} FontList;

static int is_font_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && (!strcasecmp(name + n - 4, ".ttf") || !strcasecmp(name + n - 4, ".otf"));
}

static void font_list_add(FontList *l, const char *path) {
    if (l->n == l->cap) l->paths = xrealloc(l->paths, sizeof(char *) * (l->cap = 2 * l->cap + 16));
    l->paths[l->n++] = xstrdup(path);
}

static void collect_fonts(FontList *l, const char *path, int explicit_path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (explicit_path) die(EXIT_USAGE, "--fonts: %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        font_list_add(l, path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) die(EXIT_USAGE, "--fonts: cannot list %s: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            collect_fonts(l, sub, 0);
        else if (is_font_name(e->d_name))
            font_list_add(l, sub);
    }
    closedir(d);
}

/* Keeps the fonts FreeType opens that have a glyph for every symbol of the
 * alphabet; sorted, so the font index a sample draws means the same file on
 * every run. */
static void select_fonts(FontList *l, const SynthArgs *a, const Alphabet *alpha) {
    char *spec = xstrdup(a->fonts);
    for (char *p = strtok(spec, ":"); p; p = strtok(NULL, ":"))
        collect_fonts(l, p, a->fonts_given);
    free(spec);
    qsort(l->paths, l->n, sizeof(char *), cmp_str);
    FT_Library lib;
    if (FT_Init_FreeType(&lib)) die(1, "cannot initialise FreeType");
    int kept = 0;
    for (int i = 0; i < l->n; i++) {
        FT_Face face;
        int ok = FT_New_Face(lib, l->paths[i], 0, &face) == 0;
        const char *why = ok ? NULL : "FreeType cannot open it";
        if (ok && !FT_IS_SCALABLE(face)) why = "not scalable";
        for (int k = 0; ok && !why && k < alpha->n; k++)
            if (!FT_Get_Char_Index(face, alpha->cps[k])) why = "lacks glyphs of the alphabet";
        if (ok) FT_Done_Face(face);
        if (why && !a->quiet)
            fprintf(stderr, "ocrkd-synth: skipping font %s: %s\n", l->paths[i], why);
        if (why)
            free(l->paths[i]);
        else
            l->paths[kept++] = l->paths[i];
    }
    FT_Done_FreeType(lib);
    l->n = kept;
    if (!kept)
        die(EXIT_USAGE, "no usable font (with glyphs for every symbol) in --fonts %s", a->fonts);
    if (!a->quiet) fprintf(stderr, "ocrkd-synth: %d fonts\n", kept);
}

/* ---- rendering ---- */

typedef struct {
    int font, px;           /* face index, pixel size */
    double spacing, jitter; /* extra advance and baseline jitter sigma, in em */
    double angle, shear;    /* radians; x shift per unit of y */
    double margin[4];       /* left, right, top, bottom, in em */
    int fg, bg;             /* grey levels */
    double gradient;        /* background change from left to right edge */
    double blur, noise;     /* blur sigma (px at H = 32, 0 = none), noise sigma (levels) */
} Style;

static void draw_style(Rng *r, int nfonts, Style *s) {
    s->font = (int)rng_below(r, nfonts);
    s->px = rand_between(r, 22, 44);
    s->spacing = rand_range(r, -0.04, 0.18);
    s->jitter = rand_range(r, 0, 0.03);
    s->angle = rand_range(r, -3, 3) * M_PI / 180;
    s->shear = rng_uniform(r) < 0.4 ? rand_range(r, -0.25, 0.25) : 0;
    s->margin[0] = rand_range(r, 0.02, 0.3);
    s->margin[1] = rand_range(r, 0.02, 0.3);
    s->margin[2] = rand_range(r, 0.0, 0.15);
    s->margin[3] = rand_range(r, 0.0, 0.15);
    do {
        s->bg = (int)rng_below(r, 256);
        s->fg = (int)rng_below(r, 256);
    } while (abs(s->fg - s->bg) < 90);
    s->gradient = rand_range(r, -25, 25);
    s->blur = rng_uniform(r) < 0.6 ? rand_range(r, 0.3, 0.9) : 0;
    s->noise = rand_range(r, 0, 7);
}

/* Per-thread state: FreeType objects are not shared between threads, and
 * the buffers grow to the largest sample seen and are then reused. */
typedef struct {
    FT_Library lib;
    FT_Face *faces;
    int nfaces;
    uint8_t *canvas, *line; /* glyph coverage; the warped, coloured line */
    size_t canvas_cap, line_cap;
    float *tmp; /* (H,W) for the blur */
    int *ids;   /* text of the current sample */
} Renderer;

static void renderer_init(Renderer *R, const FontList *fonts, int H, int W, int max_len) {
    memset(R, 0, sizeof *R);
    if (FT_Init_FreeType(&R->lib)) die(1, "cannot initialise FreeType");
    R->faces = xcalloc(fonts->n, sizeof(FT_Face));
    for (int i = 0; i < fonts->n; i++)
        if (FT_New_Face(R->lib, fonts->paths[i], 0, &R->faces[i]))
            die(1, "cannot open font %s", fonts->paths[i]);
    R->nfaces = fonts->n;
    R->tmp = xalloc_floats((size_t)H * W);
    R->ids = xmalloc(sizeof(int) * (max_len + 1));
}

static void renderer_free(Renderer *R) {
    for (int i = 0; i < R->nfaces; i++)
        FT_Done_Face(R->faces[i]);
    FT_Done_FreeType(R->lib);
    free(R->faces);
    free(R->canvas);
    free(R->line);
    free(R->tmp);
    free(R->ids);
}

static uint8_t *grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need > *cap) {
        free(*buf);
        *buf = xmalloc(need);
        *cap = need;
    }
    return *buf;
}

/* Where the rendered text lies on the canvas: the crop box (x0,y0)-(x1,y1). */
typedef struct {
    int cw, ch;
    double x0, y0, x1, y1;
} Crop;

/* Max-combines one glyph bitmap into the canvas (cw x ch) at (gx, gy). */
static void blit(uint8_t *canvas, int cw, int ch, const FT_Bitmap *bm, int gx, int gy) {
    for (unsigned y = 0; y < bm->rows; y++) {
        int cy = gy + (int)y;
        if (cy < 0 || cy >= ch) continue;
        const uint8_t *src = bm->buffer + (long)y * bm->pitch;
        for (unsigned x = 0; x < bm->width; x++) {
            int cx = gx + (int)x;
            if (cx >= 0 && cx < cw && src[x] > canvas[(size_t)cy * cw + cx])
                canvas[(size_t)cy * cw + cx] = src[x];
        }
    }
}

/* Renders ids with style s into R->canvas; fills the crop box (ink box
 * widened to the font's line height plus margins). Returns 0, 1 if there is
 * no ink (draw again), or -1 on a FreeType error (message in err). */
static int render_glyphs(Renderer *R, const TextSource *t, const int *ids, int n, const Style *s,
                         Rng *r, Crop *c, Err *err) {
    FT_Face face = R->faces[s->font];
    if (FT_Set_Pixel_Sizes(face, 0, s->px))
        return err_set(err, 1, "font %s: cannot set size %d", face->family_name, s->px), -1;
    double asc = face->size->metrics.ascender / 64.0, desc = -face->size->metrics.descender / 64.0;
    double adv_max = MAX(face->size->metrics.max_advance / 64.0, s->px);
    int pad = s->px;
    c->cw = (int)(n * (adv_max + fabs(s->spacing) * s->px + 2)) + 2 * pad;
    c->ch = (int)(asc + desc) + 2 * pad;
    uint8_t *canvas = grow(&R->canvas, &R->canvas_cap, (size_t)c->cw * c->ch);
    memset(canvas, 0, (size_t)c->cw * c->ch);
    double pen = pad, base = pad + asc;
    int ix0 = c->cw, iy0 = c->ch, ix1 = -1, iy1 = -1;
    FT_UInt prev = 0;
    for (int i = 0; i < n; i++) {
        FT_UInt gi = FT_Get_Char_Index(face, t->alpha.cps[ids[i] - 1]);
        FT_Vector kern = {0, 0};
        if (prev && FT_HAS_KERNING(face)) FT_Get_Kerning(face, prev, gi, FT_KERNING_DEFAULT, &kern);
        pen += kern.x / 64.0;
        if (FT_Load_Glyph(face, gi, FT_LOAD_RENDER | FT_LOAD_NO_BITMAP))
            return err_set(err, 1, "font %s: cannot render glyph %u", face->family_name, gi), -1;
        FT_GlyphSlot g = face->glyph;
        int gx = (int)lround(pen) + g->bitmap_left;
        int gy = (int)lround(base + rng_normal(r) * s->jitter * s->px) - g->bitmap_top;
        if (g->bitmap.pixel_mode == FT_PIXEL_MODE_GRAY && g->bitmap.width && g->bitmap.rows) {
            blit(canvas, c->cw, c->ch, &g->bitmap, gx, gy);
            ix0 = MIN(ix0, gx);
            iy0 = MIN(iy0, gy);
            ix1 = MAX(ix1, gx + (int)g->bitmap.width);
            iy1 = MAX(iy1, gy + (int)g->bitmap.rows);
        }
        pen += g->advance.x / 64.0 + s->spacing * s->px;
        prev = gi;
    }
    if (ix1 < 0) return 1;
    c->x0 = MAX(0, ix0 - s->margin[0] * s->px);
    c->x1 = MIN(c->cw, ix1 + s->margin[1] * s->px);
    c->y0 = MAX(0, MIN(iy0, base - asc) - s->margin[2] * s->px);
    c->y1 = MIN(c->ch, MAX(iy1, base + desc) + s->margin[3] * s->px);
    return 0;
}

/* Bilinear sample of the canvas at (x, y) in pixel-centre coordinates, 0 outside. */
static double sample_canvas(const uint8_t *cv, int cw, int ch, double x, double y) {
    int xi = (int)floor(x), yi = (int)floor(y);
    double fx = x - xi, fy = y - yi, v = 0;
    for (int dy = 0; dy < 2; dy++)
        for (int dx = 0; dx < 2; dx++) {
            int px = xi + dx, py = yi + dy;
            if (px < 0 || py < 0 || px >= cw || py >= ch) continue;
            v += (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy) * cv[(size_t)py * cw + px];
        }
    return v;
}

/* The crop box rotated and sheared about its centre: size of the result. */
static void warped_size(const Crop *c, const Style *s, int *ow, int *oh) {
    double w = c->x1 - c->x0, h = c->y1 - c->y0, ca = cos(s->angle), sa = sin(s->angle);
    /* forward map of (dx, dy): shear then rotate */
    double ax = fabs(ca) * w, ay = fabs(sa) * w;
    double bx = fabs(ca * s->shear - sa) * h, by = fabs(sa * s->shear + ca) * h;
    *ow = MAX(1, (int)ceil(ax + bx));
    *oh = MAX(1, (int)ceil(ay + by));
}

/* Warps the crop of the coverage canvas into R->line (ow x oh) as grey
 * levels: background (with its gradient) blended towards the ink level. */
static void paint_line(Renderer *R, const Crop *c, const Style *s, int ow, int oh) {
    uint8_t *out = grow(&R->line, &R->line_cap, (size_t)ow * oh);
    double ca = cos(s->angle), sa = sin(s->angle);
    double cx = (c->x0 + c->x1) / 2, cy = (c->y0 + c->y1) / 2;
    /* inverse of rotate(angle) * shear(k): unrotate, then unshear */
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double dx = x + 0.5 - ow / 2.0, dy = y + 0.5 - oh / 2.0;
            double ux = ca * dx + sa * dy, uy = -sa * dx + ca * dy;
            double sx = ux - s->shear * uy + cx - 0.5, sy = uy + cy - 0.5;
            double m = sample_canvas(R->canvas, c->cw, c->ch, sx, sy) / 255.0;
            double bg = s->bg + s->gradient * ((double)x / ow - 0.5);
            double v = bg + (s->fg - bg) * m;
            out[(size_t)y * ow + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
}

/* 3-tap Gaussian blur of the used columns of img (H,W), then noise, then the
 * right padding is replicated again from the last used column. */
static void finish_pixels(Renderer *R, uint8_t *img, int H, int W, int used, const Style *s,
                          Rng *r) {
    float *t = R->tmp;
    double e = s->blur > 0 ? exp(-1.0 / (2 * s->blur * s->blur)) : 0;
    float k1 = (float)(e / (1 + 2 * e)), k0 = 1 - 2 * k1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            const uint8_t *row = img + (size_t)y * W;
            t[y * W + x] = k0 * row[x] + k1 * (row[MAX(x - 1, 0)] + row[MIN(x + 1, used - 1)]);
        }
    for (int y = 0; y < H; y++) {
        const float *up = t + MAX(y - 1, 0) * W, *dn = t + MIN(y + 1, H - 1) * W;
        for (int x = 0; x < used; x++) {
            double v = k0 * t[y * W + x] + k1 * (up[x] + dn[x]) + s->noise * rng_normal(r);
            img[(size_t)y * W + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
        memset(img + (size_t)y * W + used, img[(size_t)y * W + used - 1], (size_t)(W - used));
    }
}

/* One sample from its own RNG: img (H,W), used width, UTF-8 label. A text
 * that does not fit W is tried with up to 3 styles and then replaced. */
static int render_sample(Renderer *R, const TextSource *t, Rng *r, int H, int W, uint8_t *img,
                         int *used, char *label, size_t label_cap, Err *err) {
    for (int attempt = 0; attempt < 200; attempt++) {
        int n = make_text(t, r, R->ids);
        for (int try = 0; try < 3; try++) {
            Style s;
            Crop c;
            draw_style(r, R->nfaces, &s);
            int rc = render_glyphs(R, t, R->ids, n, &s, r, &c, err);
            if (rc < 0) return -1;
            if (rc > 0) continue;
            int ow, oh;
            warped_size(&c, &s, &ow, &oh);
            if (image_scaled_width(ow, oh, H) > W) continue;
            paint_line(R, &c, &s, ow, oh);
            image_fit(R->line, ow, oh, H, W, img, used);
            finish_pixels(R, img, H, W, *used, &s, r);
            alphabet_decode(&t->alpha, R->ids, n, label, label_cap);
            return 0;
        }
    }
    err_set(err, EXIT_USAGE, "no text fits width %d after 200 attempts (lower --max-len?)", W);
    return -1;
}

/* ---- the pool: workers render blocks, the main thread writes in order ---- */

enum { SLOT_FREE = 0, SLOT_BUSY, SLOT_READY };

typedef struct {
    int state;
    long block;
    uint8_t *images; /* (BLOCK,H,W) */
    int *used;       /* (BLOCK) */
    char *labels;    /* (BLOCK, label_cap) */
} Slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    const TextSource *text;
    uint64_t seed;
    int split, H, W;
    size_t label_cap;
    long n, nblocks, next_block;
    Slot slots[SLOTS];
    int failed;
    Err err;
} Pool;

typedef struct {
    Pool *pool;
    Renderer *R;
} Worker;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The seed of sample `index` of `split`: depends on nothing else. */
static uint64_t sample_seed(uint64_t seed, int split, long index) {
    return mix64(mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (uint64_t)(split + 1)) ^
                 (uint64_t)index);
}

static int render_block(Pool *p, Renderer *R, Slot *s, Err *err) {
    long first = s->block * BLOCK;
    for (long i = first; i < MIN(first + BLOCK, p->n); i++) {
        long k = i - first;
        Rng r;
        rng_seed(&r, sample_seed(p->seed, p->split, i));
        if (render_sample(R, p->text, &r, p->H, p->W, s->images + k * p->H * p->W, &s->used[k],
                          s->labels + k * p->label_cap, p->label_cap, err))
            return -1;
    }
    return 0;
}

static void *worker_main(void *arg) {
    Worker *w = arg;
    Pool *p = w->pool;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->failed && p->next_block < p->nblocks &&
               p->slots[p->next_block % SLOTS].state != SLOT_FREE)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->failed || p->next_block >= p->nblocks) break;
        Slot *s = &p->slots[p->next_block % SLOTS];
        s->block = p->next_block++;
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        Err err = {0};
        int rc = render_block(p, w->R, s, &err);
        pthread_mutex_lock(&p->mu);
        if (rc && !p->failed) {
            p->failed = 1;
            p->err = err;
        }
        s->state = SLOT_READY;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- output files ---- */

static void make_dirs(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1;; p++) {
        int end = *p == 0;
        if (*p == '/' || end) {
            *p = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                die(EXIT_DATA, "cannot create directory %s: %s", buf, strerror(errno));
            if (end) break;
            *p = '/';
        }
    }
}

/* Writes the samples of one split, in order, into its file(s). */
typedef struct {
    const SynthArgs *a;
    int split, nfiles, file;
    long n, next_start; /* index where the next file begins */
    DatasetWriter *w;
    char path[4096];
} Output;

static void output_open_next(Output *o) {
    Err err = {0};
    if (o->w && dswriter_close(o->w, &err)) die(err.code, "%s", err.msg);
    o->w = NULL;
    if (o->file >= o->nfiles) return;
    if (o->nfiles > 1)
        snprintf(o->path, sizeof o->path, "%s/%s-%03d.h5", o->a->out_dir, SPLIT_NAME[o->split],
                 o->file);
    else
        snprintf(o->path, sizeof o->path, "%s/%s.h5", o->a->out_dir, SPLIT_NAME[o->split]);
    if (dswriter_open(&o->w, o->path, SYNTH_H, o->a->width, o->a->alphabet, o->a->gzip, &err))
        die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    o->file++;
    o->next_start = o->n * o->file / o->nfiles; /* file k holds [kN/K, (k+1)N/K) */
}

static void output_add(Output *o, long index, const uint8_t *img, int used, const char *label) {
    Err err = {0};
    while (index >= o->next_start && o->file < o->nfiles)
        output_open_next(o);
    if (dswriter_add(o->w, img, used, label, &err)) {
        dswriter_abort(o->w);
        die(err.code ? err.code : EXIT_DATA, "%s", err.msg);
    }
}

/* ---- main ---- */

static void write_slot(Pool *p, Slot *s, Output *o) {
    long first = s->block * BLOCK;
    for (long i = first; i < MIN(first + BLOCK, p->n); i++) {
        long k = i - first;
        output_add(o, i, s->images + k * p->H * p->W, s->used[k], s->labels + k * p->label_cap);
    }
}

static void pool_init(Pool *p, const SynthArgs *a, const TextSource *t, int split) {
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->text = t;
    p->seed = a->seed;
    p->split = split;
    p->H = SYNTH_H;
    p->W = a->width;
    p->label_cap = (size_t)a->max_len * 4 + 1;
    p->n = a->n[split];
    p->nblocks = (p->n + BLOCK - 1) / BLOCK;
    for (int i = 0; i < SLOTS; i++) {
        p->slots[i].images = xmalloc((size_t)BLOCK * p->H * p->W);
        p->slots[i].used = xmalloc(sizeof(int) * BLOCK);
        p->slots[i].labels = xmalloc(BLOCK * p->label_cap);
    }
}

static void pool_free(Pool *p) {
    for (int i = 0; i < SLOTS; i++) {
        free(p->slots[i].images);
        free(p->slots[i].used);
        free(p->slots[i].labels);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static void progress(const SynthArgs *a, int split, long done, double t0, double *last, int end) {
    double now = now_seconds();
    if (a->quiet || (!end && now - *last < 3.0)) return;
    *last = now;
    fprintf(stderr, "ocrkd-synth: %s %ld/%ld images (%.0f img/s)\n", SPLIT_NAME[split], done,
            a->n[split], done / MAX(now - t0, 1e-6));
}

static void synth_split(const SynthArgs *a, const TextSource *t, Renderer *R, int split) {
    Pool p;
    pool_init(&p, a, t, split);
    Output o = {.a = a, .split = split, .nfiles = split == SPLIT_TRAIN ? a->shards : 1, .n = p.n};
    Worker w[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < a->threads; i++) {
        w[i] = (Worker){&p, &R[i]};
        if (pthread_create(&th[i], NULL, worker_main, &w[i])) die(1, "cannot start a thread");
    }
    double t0 = now_seconds(), last = t0;
    for (long b = 0; b < p.nblocks; b++) {
        Slot *s = &p.slots[b % SLOTS];
        pthread_mutex_lock(&p.mu);
        while (!p.failed && !(s->state == SLOT_READY && s->block == b))
            pthread_cond_wait(&p.cv, &p.mu);
        int failed = p.failed;
        pthread_mutex_unlock(&p.mu);
        if (failed) {
            if (o.w) dswriter_abort(o.w);
            die(p.err.code ? p.err.code : 1, "%s", p.err.msg);
        }
        write_slot(&p, s, &o);
        pthread_mutex_lock(&p.mu);
        s->state = SLOT_FREE;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        progress(a, split, MIN((b + 1) * BLOCK, p.n), t0, &last, 0);
    }
    for (int i = 0; i < a->threads; i++)
        pthread_join(th[i], NULL);
    output_open_next(&o); /* closes the last file */
    progress(a, split, p.n, t0, &last, 1);
    pool_free(&p);
}

int main(int argc, char **argv) {
    tool_name = "ocrkd-synth";
    SynthArgs a;
    parse_args(argc, argv, &a);
    TextSource text;
    text_source_init(&text, &a, a.quiet);
    FontList fonts = {0};
    select_fonts(&fonts, &a, &text.alpha);
    make_dirs(a.out_dir);
    Renderer R[MAX_THREADS];
    for (int i = 0; i < a.threads; i++)
        renderer_init(&R[i], &fonts, SYNTH_H, a.width, a.max_len);
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (a.n[s] > 0) synth_split(&a, &text, R, s);
    for (int i = 0; i < a.threads; i++)
        renderer_free(&R[i]);
    for (int i = 0; i < fonts.n; i++)
        free(fonts.paths[i]);
    free(fonts.paths);
    text_source_free(&text);
    return 0;
}
