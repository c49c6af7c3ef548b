/* synth.c - ocrkd-synth: an MJSynth / TextRecognitionDataGenerator-style
 * generator of synthetic grey text-line images (FreeType), written as ocrkd
 * datasets (SPEC "Dataset file").
 *
 * Per sample, all from the sample's own RNG:
 *   text   a dictionary word, a number (integer, decimal, date, time, price
 *          ... as the alphabet allows), a random string or a pseudo-word
 *          (letter bigrams of the word list), sometimes with punctuation;
 *          drawn in lower case, Capitalised or UPPER case. When the alphabet
 *          has no upper case the label stays lower case and only the
 *          rendered glyphs change ("render glyphs" vs "label ids").
 *   font   a family first, then a file (style) of it, so a family with many
 *          weights does not dominate.
 *   style  size, hinting, spacing, baseline jitter, stroke weight,
 *          condensing, stroke contrast, per-glyph wobble, and the optional effects of the EFFECTS table
 *          (geometry, crop, background, lines, clutter, polarity, blur,
 *          noise, JPEG, low resolution), each with a probability and a range.
 * The glyph coverage is drawn on a canvas, cropped, warped (rotation, shear,
 * trapezoid, sine baseline), scaled to H = 32 by image_fit (the same rule
 * ocrkd-pack and `ocrkd predict` use), composited over the background and
 * degraded. A text that does not fit W is re-styled narrower from the
 * fonts' em metrics before any rendering, and replaced only if that fails.
 *
 * Determinism: each sample's RNG is seeded from (seed, split, index) alone,
 * so the output is byte-identical for the same arguments whatever the thread
 * count. Worker threads render blocks of samples; the main thread writes
 * them in order.
 *
 * Not for real images (ocrkd-pack) or augmentation at training time
 * (dataset_augment.c). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>

#include <ft2build.h>
#include FT_FREETYPE_H
#include FT_OUTLINE_H

#include "ocrkd/common.h"
#include "ocrkd/dataset.h"
#include "ocrkd/image.h"
#include "tool_util.h"

#define SYNTH_H 32
#define BLOCK 64 /* samples a worker renders at a time */
#define SLOTS 8  /* blocks in flight between workers and the writer */
#define MAX_THREADS 16
#define AUTO_MAX_LEN 25 /* the longest text when --max-len is 0 (auto) */
#define SX_MIN 0.68     /* the narrowest condensing used to make a text fit */
#define MIN_CONTRAST 40 /* grey levels between ink and background, after all effects */
#define CLUTTER_MAX 48  /* glyphs of a neighbouring line */
#define MAX_BIGRAM 512  /* largest alphabet that gets pseudo-words */
#define DEFAULT_ALPHABET "0123456789abcdefghijklmnopqrstuvwxyz"
/* The training fonts, by Debian package (.ci/deps.sh installs them). Listed
 * one directory each: other font packages on the machine (some are kept for
 * a held-out test set) are never picked up. */
#define DEFAULT_FONTS                                                                              \
    "/usr/share/fonts/truetype/dejavu:"          /* fonts-dejavu-core, -extra */                   \
    "/usr/share/fonts/truetype/liberation2:"     /* fonts-liberation2 */                           \
    "/usr/share/fonts/truetype/freefont:"        /* fonts-freefont-ttf */                          \
    "/usr/share/fonts/opentype/urw-base35:"      /* fonts-urw-base35 */                            \
    "/usr/share/fonts/truetype/croscore:"        /* fonts-croscore */                              \
    "/usr/share/fonts/truetype/crosextra:"       /* fonts-crosextra-carlito, -caladea */           \
    "/usr/share/fonts/truetype/noto:"            /* fonts-noto-core */                             \
    "/usr/share/fonts/opentype/cantarell:"       /* fonts-cantarell */                             \
    "/usr/share/fonts/fonts-go:"                 /* fonts-go */                                    \
    "/usr/share/fonts/truetype/hack:"            /* fonts-hack */                                  \
    "/usr/share/fonts/truetype/inconsolata:"     /* fonts-inconsolata */                           \
    "/usr/share/fonts/opentype/linux-libertine:" /* fonts-linuxlibertine */                        \
    "/usr/share/fonts/truetype/gentiumplus:"     /* fonts-sil-gentiumplus */                       \
    "/usr/share/fonts/truetype/charis:"          /* fonts-sil-charis */                            \
    "/usr/share/fonts/truetype/andika:"          /* fonts-sil-andika */                            \
    "/usr/share/fonts/truetype/doulos:"          /* fonts-sil-doulos */                            \
    "/usr/share/fonts/opentype/comic-neue:"      /* fonts-comic-neue */                            \
    "/usr/share/fonts/truetype/oxygen:"          /* fonts-oxygen */                                \
    "/usr/share/fonts/truetype/quicksand:"       /* fonts-quicksand */                             \
    "/usr/share/fonts/opentype/league-spartan:"  /* fonts-league-spartan */                        \
    "/usr/share/fonts/truetype/jetbrains-mono:"  /* fonts-jetbrains-mono */                        \
    "/usr/share/fonts/truetype/mononoki:"        /* fonts-mononoki */                              \
    "/usr/share/fonts/opentype/courier-prime:"   /* fonts-courier-prime */                         \
    "/usr/share/fonts/opentype/b612:"            /* fonts-b612 */                                  \
    "/usr/share/fonts/opentype/ebgaramond:"      /* fonts-ebgaramond */                            \
    "/usr/share/fonts/opentype/cabin:"           /* fonts-cabin */                                 \
    "/usr/share/fonts/truetype/tuffy:"           /* fonts-tuffy */                                 \
    "/usr/share/fonts/truetype/anonymous-pro:"   /* fonts-anonymous-pro */                         \
    "/usr/share/fonts/opentype/stix:"            /* fonts-stix */                                  \
    "/usr/share/fonts/opentype/stix-word:"       /* fonts-stix */                                  \
    "/usr/share/fonts/truetype/fifthhorseman:"   /* fonts-dkg-handwriting */                       \
    "/usr/share/fonts/truetype/breip:"           /* fonts-breip */                                 \
    "/usr/share/fonts/truetype/rufscript:"       /* fonts-rufscript */                             \
    "/usr/share/fonts/opentype/arapey:"          /* fonts-arapey: high-contrast serif */           \
    "/usr/share/fonts/truetype/cardo:"           /* fonts-cardo: old-style serif */                \
    "/usr/share/fonts/truetype/fonts-century-catalogue:" /* fonts-century-catalogue */             \
    "/usr/share/fonts/truetype/clear-sans:"      /* fonts-clear-sans */                            \
    "/usr/share/fonts/truetype/karla:"           /* fonts-karla: grotesque */                      \
    "/usr/share/fonts/opentype/quattrocento:"    /* fonts-quattrocento */                          \
    "/usr/share/fonts/truetype/opendin:"         /* fonts-opendin: DIN */                          \
    "/usr/share/fonts/opentype/junction:"        /* fonts-junction */                              \
    "/usr/share/fonts/truetype/fanwood:"         /* fonts-fanwood: old-style serif */              \
    "/usr/share/fonts/truetype/ocr-a:"           /* fonts-ocr-a */                                 \
    "/usr/share/fonts/opentype/ocr-b:"           /* fonts-ocr-b */                                 \
    "/usr/share/fonts/truetype/tiresias:"        /* fonts-tiresias: signage */                     \
    "/usr/share/fonts/truetype/monofur:"         /* fonts-monofur */                               \
    "/usr/share/fonts/truetype/routed-gothic:"   /* fonts-routed-gothic: narrow to wide */         \
    "/usr/share/fonts/truetype/eurofurence"      /* fonts-eurofurence: rounded, condensed */

enum { SPLIT_TRAIN = 0, SPLIT_VAL, SPLIT_TEST, SPLIT_COUNT };
static const char *SPLIT_NAME[SPLIT_COUNT] = {"train", "val", "test"};

/* ---- effects: optional per-sample variations, each with a probability ---- */

enum {
    FX_SPACING,
    FX_JITTER,
    FX_WEIGHT,
    FX_GAMMA,
    FX_CONDENSE,
    FX_STROKES,
    FX_WOBBLE,
    FX_ROTATE,
    FX_SHEAR,
    FX_PERSPECTIVE,
    FX_CURVE,
    FX_TIGHT,
    FX_LOOSE,
    FX_INVERT,
    FX_LOWCONTRAST,
    FX_GRADIENT,
    FX_TEXTURE,
    FX_LINES,
    FX_CLUTTER,
    FX_LOWRES,
    FX_BLUR,
    FX_MOTION,
    FX_NOISE,
    FX_SALTPEPPER,
    FX_JPEG,
    FX_COUNT
};

typedef struct {
    const char *name;
    double p; /* default probability */
    const char *range;
} EffectInfo;

/* Ranges at H = 32 where they are in pixels; "em" is the font size. The
 * last value of each range is what --extreme uses. */
static const EffectInfo EFFECTS[FX_COUNT] = {
    [FX_SPACING] = {"spacing", 0.40, "letter spacing -0.02..-0.06 or 0.05..0.3 em"},
    [FX_JITTER] = {"jitter", 0.30, "baseline jitter, sigma 0.005..0.04 em"},
    [FX_WEIGHT] = {"weight", 0.30, "stroke thinning 0.005..0.015 or emboldening 0.01..0.05 em"},
    [FX_GAMMA] = {"gamma", 0.30, "coverage gamma 0.85..0.6 or 1.15..1.8 (other rasterisers)"},
    [FX_CONDENSE] = {"condense", 0.30, "glyph width x0.95..0.62 or x1.05..1.35"},
    [FX_STROKES] = {"strokes", 0.20,
                    "stroke contrast: verticals 0.02..0.08 em bolder than horizontals"
                    " (a quarter of them the reverse)"},
    [FX_WOBBLE] = {"wobble", 0.15,
                   "each glyph its own rotation and scale (up to 1..5 deg, 3..12 %) and a"
                   " wavy outline 0.005..0.025 em (hand-drawn)"},
    [FX_ROTATE] = {"rotate", 0.50, "rotation 0.2..2 degrees, 15% of them up to 5"},
    [FX_SHEAR] = {"shear", 0.25, "shear (slant) 0.05..0.35"},
    [FX_PERSPECTIVE] = {"perspective", 0.04, "trapezoid, width or height x(1 +- 0.05..0.3)"},
    [FX_CURVE] = {"curve", 0.03, "sine baseline, amplitude 0.03..0.15 em"},
    [FX_TIGHT] = {"tight", 0.20, "crop at the ink, cutting 0..8% of its height"},
    [FX_LOOSE] = {"loose", 0.10, "wide margins, 0.2..0.6 em (sides 0.3..1 em)"},
    [FX_INVERT] = {"invert", 0.25, "light text on a dark background"},
    [FX_LOWCONTRAST] = {"lowcontrast", 0.12, "ink and background 85..50 levels apart"},
    [FX_GRADIENT] = {"gradient", 0.35, "linear background gradient, 10..100 levels"},
    [FX_TEXTURE] = {"texture", 0.30, "smooth random background (value noise), 6..60 levels"},
    [FX_LINES] = {"lines", 0.08, "underline, strike-through, ruled or table-border lines"},
    [FX_CLUTTER] = {"clutter", 0.06, "cut-off neighbouring lines at the top/bottom, 0.03..0.2 em"},
    [FX_LOWRES] = {"lowres", 0.10, "render at 14..8 px, or down/up-scale the image by 1.5..3"},
    [FX_BLUR] = {"blur", 0.50, "Gaussian blur, sigma 0.3..1 px (some to 1.5)"},
    [FX_MOTION] = {"motion", 0.04, "box (motion) blur, 2..5 px"},
    [FX_NOISE] = {"noise", 0.50, "Gaussian noise, sigma 1..14 levels"},
    [FX_SALTPEPPER] = {"saltpepper", 0.04, "salt-and-pepper noise, 0.1..2% of the pixels"},
    [FX_JPEG] = {"jpeg", 0.25, "JPEG artifacts, quality 60..10"},
};

typedef struct {
    double p[FX_COUNT];
    int extreme; /* effects that fire use the last value of their range */
} Effects;

static const char *USAGE =
    "usage: ocrkd-synth --out DIR --train N --val N --test N [options]\n"
    "Renders synthetic grey text lines (height 32) into DIR/train.h5, DIR/val.h5,\n"
    "DIR/test.h5 (a split with N = 0 is skipped).\n"
    "  --seed S          seed of the whole set (default 1)\n"
    "  --width W         image width (default 128)\n"
    "  --alphabet STR    symbols of the labels (default " DEFAULT_ALPHABET ")\n"
    "  --fonts PATHS     colon-separated font files or directories of .ttf/.otf\n"
    "                    (default: 33 directories of Debian font packages, see doc/tools.md)\n"
    "  --words FILE      word list (default /usr/share/dict/words)\n"
    "  --shards K        write train as DIR/train-000.h5 .. train-(K-1).h5\n"
    "  --min-len N       shortest text (default 1)\n"
    "  --max-len N       longest text; 0 = auto: up to 25, as long as fits the width\n"
    "                    (default 0)\n"
    "  --kinds W,N,R     shares of dictionary words, numbers, random strings (half of\n"
    "                    them pseudo-words from the words' letter bigrams)\n"
    "                    (default 0.65,0.15,0.2)\n"
    "  --case L,C,U      shares of lower, Capitalised, UPPER texts, or 'off' (render\n"
    "                    as the label). Without upper case in the alphabet, labels stay\n"
    "                    lower case (default 0.5,0.25,0.25)\n"
    "  --punct P         share of words/numbers with punctuation attached, when the\n"
    "                    alphabet has some (default 0.3)\n"
    "  --effects SPEC    effect probabilities, applied in order: 'none' (all 0),\n"
    "                    'all=P', 'NAME=P', comma-separated, e.g. none,blur=1\n"
    "  --extreme         effects that fire take the extreme end of their range\n"
    "  --gzip L          gzip level 0..9 of /images (default 0)\n"
    "  --threads T       rendering threads (default 2; output does not depend on it)\n"
    "  --quiet           no progress on stderr\n";

static void print_usage(void) {
    fputs(USAGE, stdout);
    puts("Effects (default probability: what, range):");
    for (int i = 0; i < FX_COUNT; i++)
        printf("  %-12s %.2f  %s\n", EFFECTS[i].name, EFFECTS[i].p, EFFECTS[i].range);
}

typedef struct {
    const char *out_dir, *alphabet, *fonts, *words;
    long n[SPLIT_COUNT];
    uint64_t seed;
    int width, shards, min_len, max_len, gzip, threads, quiet;
    double kinds[3]; /* word, number, random; normalised */
    double cases[3]; /* lower, Capitalised, UPPER; normalised */
    int case_off;
    double punct;
    Effects fx;
    /* A missing path given on the command line is an error; a missing default is not. */
    int fonts_given, words_given;
} SynthArgs;

/* ---- command line ---- */

/* How an option's value is checked and where it is stored in SynthArgs. */
typedef enum {
    OPT_FLAG,    /* no value: sets an int to 1 */
    OPT_TEXT,    /* a string, kept as given */
    OPT_PATH,    /* a string, and an int "given" flag (a missing path given is an error) */
    OPT_INT,     /* an int in [lo, hi] */
    OPT_LONG,    /* a long in [lo, hi] */
    OPT_SEED,    /* a uint64_t in [lo, hi] */
    OPT_PROB,    /* a double in [0, 1] */
    OPT_SHARES,  /* double[3]: three shares, normalised to sum 1 */
    OPT_CASE,    /* double[3] as OPT_SHARES, or 'off' (sets case_off) */
    OPT_EFFECTS, /* Effects: an --effects SPEC applied to the probabilities */
} OptKind;

typedef struct {
    const char *name;
    OptKind kind;
    size_t field;       /* offsetof the value in SynthArgs */
    long lo, hi;        /* range of OPT_INT, OPT_LONG, OPT_SEED */
    size_t given_field; /* OPT_PATH: offsetof its "given" int */
} SynthOption;

#define MAX_COUNT (1L << 40) /* largest --train/--val/--test */
#define SHARE_MAX 1e9        /* largest single share of --kinds and --case */

static const SynthOption OPTIONS[] = {
    {"--out", OPT_TEXT, offsetof(SynthArgs, out_dir), 0, 0, 0},
    {"--train", OPT_LONG, offsetof(SynthArgs, n[SPLIT_TRAIN]), 0, MAX_COUNT, 0},
    {"--val", OPT_LONG, offsetof(SynthArgs, n[SPLIT_VAL]), 0, MAX_COUNT, 0},
    {"--test", OPT_LONG, offsetof(SynthArgs, n[SPLIT_TEST]), 0, MAX_COUNT, 0},
    {"--seed", OPT_SEED, offsetof(SynthArgs, seed), 0, INT64_MAX, 0},
    {"--width", OPT_INT, offsetof(SynthArgs, width), 8, 8192, 0},
    {"--alphabet", OPT_TEXT, offsetof(SynthArgs, alphabet), 0, 0, 0},
    {"--fonts", OPT_PATH, offsetof(SynthArgs, fonts), 0, 0, offsetof(SynthArgs, fonts_given)},
    {"--words", OPT_PATH, offsetof(SynthArgs, words), 0, 0, offsetof(SynthArgs, words_given)},
    {"--shards", OPT_INT, offsetof(SynthArgs, shards), 1, 100000, 0},
    {"--min-len", OPT_INT, offsetof(SynthArgs, min_len), 1, 1000, 0},
    {"--max-len", OPT_INT, offsetof(SynthArgs, max_len), 0, 1000, 0},
    {"--gzip", OPT_INT, offsetof(SynthArgs, gzip), 0, 9, 0},
    {"--threads", OPT_INT, offsetof(SynthArgs, threads), 1, MAX_THREADS, 0},
    {"--kinds", OPT_SHARES, offsetof(SynthArgs, kinds), 0, 0, 0},
    {"--case", OPT_CASE, offsetof(SynthArgs, cases), 0, 0, 0},
    {"--punct", OPT_PROB, offsetof(SynthArgs, punct), 0, 0, 0},
    {"--effects", OPT_EFFECTS, offsetof(SynthArgs, fx), 0, 0, 0},
    {"--quiet", OPT_FLAG, offsetof(SynthArgs, quiet), 0, 0, 0},
    {"--extreme", OPT_FLAG, offsetof(SynthArgs, fx.extreme), 0, 0, 0},
};

static const SynthOption *find_option(const char *name) {
    for (size_t i = 0; i < ARRAY_LEN(OPTIONS); i++)
        if (!strcmp(name, OPTIONS[i].name)) return &OPTIONS[i];
    return NULL;
}

static void normalise3(const char *opt, const char *v, double *p) {
    double sum = p[0] + p[1] + p[2];
    if (!(sum > 0)) die(EXIT_USAGE, "%s: the shares in '%s' sum to 0", opt, v);
    for (int i = 0; i < 3; i++)
        p[i] /= sum;
}

/* --effects SPEC: comma-separated items applied in order. */
static void parse_effects(const char *spec, Effects *fx) {
    char *copy = xstrdup(spec), *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (!strcmp(item, "none")) {
            for (int i = 0; i < FX_COUNT; i++)
                fx->p[i] = 0;
            continue;
        }
        char *eq = strchr(item, '=');
        if (!eq) die(EXIT_USAGE, "--effects: expected 'none', 'all=P' or 'NAME=P', got '%s'", item);
        *eq = 0;
        double p = parse_double("--effects", eq + 1, 0, 1);
        int all = !strcmp(item, "all"), found = all;
        for (int i = 0; i < FX_COUNT; i++)
            if (all || !strcmp(item, EFFECTS[i].name)) fx->p[i] = p, found = 1;
        if (!found) die(EXIT_USAGE, "--effects: unknown effect '%s' (--help lists them)", item);
    }
    free(copy);
}

/* Checks v as opt's value and stores it (v is NULL for an OPT_FLAG). */
static void set_option(SynthArgs *a, const SynthOption *opt, const char *v) {
    char *field = (char *)a + opt->field;
    const char *o = opt->name;
    switch (opt->kind) {
    case OPT_FLAG:
        *(int *)field = 1;
        break;
    case OPT_PATH:
        *(int *)((char *)a + opt->given_field) = 1;
        /* fall through */
    case OPT_TEXT:
        *(const char **)field = v;
        break;
    case OPT_INT:
        *(int *)field = (int)parse_long(o, v, opt->lo, opt->hi);
        break;
    case OPT_LONG:
        *(long *)field = parse_long(o, v, opt->lo, opt->hi);
        break;
    case OPT_SEED:
        *(uint64_t *)field = (uint64_t)parse_long(o, v, opt->lo, opt->hi);
        break;
    case OPT_PROB:
        *(double *)field = parse_double(o, v, 0, 1);
        break;
    case OPT_CASE:
        a->case_off = !strcmp(v, "off");
        if (a->case_off) break;
        /* fall through */
    case OPT_SHARES:
        parse_doubles(o, v, (double *)field, 3, 0, SHARE_MAX);
        normalise3(o, v, (double *)field);
        break;
    case OPT_EFFECTS:
        parse_effects(v, (Effects *)field);
        break;
    }
}

static void set_defaults(SynthArgs *a) {
    *a = (SynthArgs){.alphabet = DEFAULT_ALPHABET,
                     .fonts = DEFAULT_FONTS,
                     .words = "/usr/share/dict/words",
                     .n = {-1, -1, -1},
                     .seed = 1,
                     .width = 128,
                     .shards = 1,
                     .min_len = 1,
                     .max_len = 0,
                     .threads = 2,
                     .kinds = {0.65, 0.15, 0.20},
                     .cases = {0.5, 0.25, 0.25},
                     .punct = 0.3};
    for (int i = 0; i < FX_COUNT; i++)
        a->fx.p[i] = EFFECTS[i].p;
}

/* The rules that join several options. */
static void check_args(const SynthArgs *a) {
    if (!a->out_dir) die(EXIT_USAGE, "--out DIR is required");
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (a->n[s] < 0) die(EXIT_USAGE, "--%s N is required (0 skips the split)", SPLIT_NAME[s]);
    int max_len = a->max_len ? a->max_len : AUTO_MAX_LEN;
    if (a->min_len > max_len)
        die(EXIT_USAGE, "--min-len %d is greater than --max-len %d%s", a->min_len, max_len,
            a->max_len ? "" : " (auto)");
    if (a->n[SPLIT_TRAIN] > 0 && a->shards > a->n[SPLIT_TRAIN])
        die(EXIT_USAGE, "--shards %d is more than the %ld training images", a->shards,
            a->n[SPLIT_TRAIN]);
}

static void parse_args(int argc, char **argv, SynthArgs *a) {
    set_defaults(a);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            print_usage();
            exit(0);
        }
        const SynthOption *opt = find_option(o);
        if (!opt) {
            if (strncmp(o, "--", 2) != 0) die(EXIT_USAGE, "unexpected argument '%s'", o);
            die(EXIT_USAGE, "unknown option '%s'", o);
        }
        if (opt->kind == OPT_FLAG) {
            set_option(a, opt, NULL);
            continue;
        }
        if (i + 1 >= argc) die(EXIT_USAGE, "%s needs a value", o);
        set_option(a, opt, argv[++i]);
    }
    check_args(a);
}

/* ---- the text source: label ids, and the glyphs that render them ---- */

/* Upper case of a lower-case letter (Basic Latin, Latin-1, Greek, Cyrillic), or 0. */
static uint32_t upper_of_cp(uint32_t c) {
    if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c == 0xFF) return 0x178;
    if ((c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) || (c >= 0x430 && c <= 0x44F)) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return 0;
}

static int is_upper_cp(uint32_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7) || c == 0x178 ||
           (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x400 && c <= 0x42F);
}

enum { KIND_WORD, KIND_NUMBER, KIND_RANDOM };
enum { CASE_LOWER, CASE_CAPITAL, CASE_UPPER };

typedef struct {
    Alphabet alpha;
    int *word_ids;  /* all words' ids, concatenated */
    long *word_off; /* word k is word_ids[word_off[k] .. word_off[k+1]) */
    long nwords;
    int *plain; /* ids usable anywhere in a random string (not space) */
    int nplain;
    int digits[10], ndigits;
    int space, hyphen, apostrophe, letter_s; /* ids, 0 when not in the alphabet */
    int lead[16], nlead;                     /* opening punctuation */
    int trail[16], ntrail;                   /* closing and final punctuation */
    int open[8], close[8], npairs;           /* brackets and quotes */
    int has_upper; /* the alphabet has upper case: labels keep the rendered case */
    int fold;      /* labels are lower case, the rendering may not be */
    int case_off;  /* --case off: render exactly the label */
    double kinds[3], cases[3], punct;
    int min_len, max_len, rand_max; /* rand_max: longest random string or number */
    /* Letter bigrams of the word list, for pseudo-words: row a (0 = word
     * start, else id a) holds cumulative counts of the next id 1..n. NULL
     * without words or for an alphabet of more than MAX_BIGRAM symbols. */
    uint32_t *bigram;
    /* The code points a font must render: the alphabet (glyph id - 1), then
     * the upper-case forms the alphabet lacks when labels are folded. */
    uint32_t *glyph_cp;
    int nglyphs;
    int *upper_glyph; /* id -> glyph of its upper case (its own glyph if none) */
    int *upper_id;    /* id -> id of its upper case (itself if none or not in the alphabet) */
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

/* Counts the letter bigrams of the loaded words (see TextSource.bigram). */
static void build_bigrams(TextSource *t) {
    int n = t->alpha.n;
    if (!t->nwords || n > MAX_BIGRAM) return;
    uint32_t *b = t->bigram = xcalloc((size_t)(n + 1) * (n + 1), sizeof(uint32_t));
    for (long k = 0; k < t->nwords; k++)
        for (long i = t->word_off[k]; i < t->word_off[k + 1]; i++) {
            int prev = i == t->word_off[k] ? 0 : t->word_ids[i - 1];
            b[(size_t)prev * (n + 1) + t->word_ids[i]]++;
        }
    for (int a = 0; a <= n; a++)
        for (int c = 1; c <= n; c++)
            b[(size_t)a * (n + 1) + c] += b[(size_t)a * (n + 1) + c - 1];
}

/* Punctuation of the alphabet, sorted into what may open and close a word. */
static void find_punctuation(TextSource *t) {
    static const uint32_t trail[] = {'.', ',', ';', ':', '!', '?', '\'', '"', ')', ']', 0x2026};
    static const uint32_t lead[] = {'(', '[', '"', '\'', 0x201C, 0x2018, 0xAB, 0xBF, 0xA1, '#'};
    static const uint32_t pairs[][2] = {{'(', ')'},   {'[', ']'},       {'"', '"'},
                                        {'\'', '\''}, {0x201C, 0x201D}, {0x2018, 0x2019},
                                        {0xAB, 0xBB}};
    for (size_t i = 0; i < ARRAY_LEN(trail); i++)
        if (alphabet_id(&t->alpha, trail[i]))
            t->trail[t->ntrail++] = alphabet_id(&t->alpha, trail[i]);
    for (size_t i = 0; i < ARRAY_LEN(lead); i++)
        if (alphabet_id(&t->alpha, lead[i])) t->lead[t->nlead++] = alphabet_id(&t->alpha, lead[i]);
    for (size_t i = 0; i < ARRAY_LEN(pairs); i++)
        if (alphabet_id(&t->alpha, pairs[i][0]) && alphabet_id(&t->alpha, pairs[i][1])) {
            t->open[t->npairs] = alphabet_id(&t->alpha, pairs[i][0]);
            t->close[t->npairs++] = alphabet_id(&t->alpha, pairs[i][1]);
        }
    t->space = alphabet_id(&t->alpha, ' ');
    t->hyphen = alphabet_id(&t->alpha, '-');
    t->apostrophe = alphabet_id(&t->alpha, '\'');
    t->letter_s = alphabet_id(&t->alpha, 's');
}

/* The glyph set fonts must cover, and the case maps between ids and glyphs. */
static void build_glyph_set(TextSource *t) {
    int n = t->alpha.n;
    t->glyph_cp = xmalloc(sizeof(uint32_t) * 2 * n);
    t->upper_glyph = xmalloc(sizeof(int) * (n + 1));
    t->upper_id = xmalloc(sizeof(int) * (n + 1));
    memcpy(t->glyph_cp, t->alpha.cps, sizeof(uint32_t) * n);
    t->nglyphs = n;
    for (int id = 1; id <= n; id++) {
        uint32_t up = upper_of_cp(t->alpha.cps[id - 1]);
        int up_id = up ? alphabet_id(&t->alpha, up) : 0;
        t->upper_id[id] = up_id ? up_id : id;
        t->upper_glyph[id] = up_id ? up_id - 1 : id - 1;
        if (up && !up_id && t->fold) {
            t->upper_glyph[id] = t->nglyphs;
            t->glyph_cp[t->nglyphs++] = up;
        }
    }
}

static void text_source_init(TextSource *t, const SynthArgs *a, int W) {
    memset(t, 0, sizeof *t);
    Err err = {0};
    if (alphabet_init(&t->alpha, a->alphabet, &err)) die(EXIT_USAGE, "--alphabet: %s", err.msg);
    t->min_len = a->min_len;
    t->max_len = a->max_len ? a->max_len : AUTO_MAX_LEN;
    /* random strings and numbers: about as many symbols as fit W at H */
    t->rand_max = a->max_len ? a->max_len
                             : MAX(t->min_len, MIN(AUTO_MAX_LEN, (int)lround(3.2 * W / SYNTH_H)));
    memcpy(t->kinds, a->kinds, sizeof t->kinds);
    memcpy(t->cases, a->cases, sizeof t->cases);
    t->case_off = a->case_off;
    t->punct = a->punct;
    int n = t->alpha.n, lower = 0;
    t->plain = xmalloc(sizeof(int) * n);
    for (int id = 1; id <= n; id++) {
        uint32_t cp = t->alpha.cps[id - 1];
        if (is_upper_cp(cp)) t->has_upper = 1;
        if (upper_of_cp(cp)) lower = 1;
        if (cp != ' ') t->plain[t->nplain++] = id;
        if (cp >= '0' && cp <= '9') t->digits[t->ndigits++] = id;
    }
    if (!t->nplain) die(EXIT_USAGE, "--alphabet has no printable symbol");
    t->fold = !t->has_upper && lower && !t->case_off;
    find_punctuation(t);
    build_glyph_set(t);
    if (a->words_given || access(a->words, R_OK) == 0)
        load_words(t, a->words);
    else if (!a->quiet)
        fprintf(stderr, "ocrkd-synth: no word list at %s: random strings and numbers only\n",
                a->words);
    build_bigrams(t);
    if (!a->quiet)
        fprintf(stderr, "ocrkd-synth: %ld words of %s fit the alphabet and lengths %d..%d\n",
                t->nwords, a->words, t->min_len, t->max_len);
}

static void text_source_free(TextSource *t) {
    alphabet_free(&t->alpha);
    free(t->word_ids);
    free(t->word_off);
    free(t->plain);
    free(t->glyph_cp);
    free(t->upper_glyph);
    free(t->upper_id);
    free(t->bigram);
}

static int rand_between(Rng *r, int lo, int hi) {
    return lo + (int)rng_below(r, hi - lo + 1);
}
static double rand_range(Rng *r, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform(r);
}

/* Inserts id at position at of ids[0..n). */
static void insert_id(int *ids, int *n, int at, int id) {
    memmove(ids + at + 1, ids + at, sizeof(int) * (*n - at));
    ids[at] = id;
    (*n)++;
}

/* Punctuation around a word or number: mostly a final mark, else brackets
 * or quotes, or an opening mark alone; only within max_len. */
static void attach_punct(const TextSource *t, Rng *r, int *ids, int *n) {
    double u = rng_uniform(r);
    int room = t->max_len - *n;
    if (u < 0.6 && t->ntrail && room >= 1)
        ids[(*n)++] = t->trail[rng_below(r, t->ntrail)];
    else if (u < 0.85 && t->npairs && room >= 2) {
        int k = (int)rng_below(r, t->npairs);
        insert_id(ids, n, 0, t->open[k]);
        ids[(*n)++] = t->close[k];
    } else if (t->nlead && room >= 1)
        insert_id(ids, n, 0, t->lead[rng_below(r, t->nlead)]);
}

static int pick_word(const TextSource *t, Rng *r, int *ids) {
    long k = (long)rng_below(r, t->nwords);
    int n = (int)(t->word_off[k + 1] - t->word_off[k]);
    memcpy(ids, t->word_ids + t->word_off[k], sizeof(int) * n);
    return n;
}

/* A dictionary word; with a space or hyphen in the alphabet sometimes two
 * ("new york", "well-known"), with an apostrophe sometimes a possessive. */
static int text_word(const TextSource *t, Rng *r, int *ids) {
    int n = pick_word(t, r, ids);
    double u = rng_uniform(r);
    int join = u < 0.15 ? t->space : u < 0.2 ? t->hyphen : 0;
    if (join) {
        int m = pick_word(t, r, ids + n + 1);
        if (n + 1 + m <= t->max_len) {
            ids[n] = join;
            n += 1 + m;
        }
    }
    if (u > 0.97 && t->apostrophe && t->letter_s && n + 2 <= t->max_len) {
        ids[n++] = t->apostrophe;
        ids[n++] = t->letter_s;
    }
    return n;
}

/* ASCII text as ids, or 0 if a character is missing or the length is out of range. */
static int encode_text(const TextSource *t, const char *s, int *ids) {
    uint32_t bad;
    int n = alphabet_encode(&t->alpha, s, ids, t->max_len + 1, &bad);
    return n >= t->min_len && n <= t->max_len ? n : 0;
}

/* A number in one of the shapes people write: integers, thousands,
 * decimals, dates, times, prices, percentages, signed values. A shape whose
 * symbols the alphabet lacks becomes a plain integer. */
static int text_number(const TextSource *t, Rng *r, int *ids) {
    char s[64];
    int a = (int)rng_below(r, 100000), b = (int)rng_below(r, 1000), c = (int)rng_below(r, 100);
    int d = 1 + (int)rng_below(r, 28), m = 1 + (int)rng_below(r, 12),
        y = 1950 + (int)rng_below(r, 80);
    int shape = (int)rng_below(r, 12), n = 0;
    switch (shape) {
    case 4:
        snprintf(s, sizeof s, rng_below(r, 2) ? "%d,%03d" : "%d.%03d", 1 + a % 999, b);
        break;
    case 5:
        snprintf(s, sizeof s, rng_below(r, 3) ? "%d.%d" : "%d,%02d", a % 1000, c);
        break;
    case 6: {
        static const char *const fmt[] = {"%02d/%02d/%04d", "%04d-%02d-%02d", "%02d.%02d.%02d",
                                          "%d/%d/%02d"};
        int k = (int)rng_below(r, 4);
        if (k == 1)
            snprintf(s, sizeof s, fmt[k], y, m, d);
        else
            snprintf(s, sizeof s, fmt[k], d, m, k >= 2 ? y % 100 : y);
        break;
    }
    case 7:
        snprintf(s, sizeof s, rng_below(r, 3) ? "%02d:%02d" : "%d:%02d:%02d", d % 24, c % 60,
                 b % 60);
        break;
    case 8: {
        static const char *const fmt[] = {"$%d.%02d", "%d.%02d$", "\xe2\x82\xac%d,%02d",
                                          "%d,%02d\xe2\x82\xac", "\xc2\xa3%d.%02d"};
        snprintf(s, sizeof s, fmt[rng_below(r, 5)], a % (rng_below(r, 2) ? 100 : 10000), c);
        break;
    }
    case 9:
        snprintf(s, sizeof s, rng_below(r, 2) ? "%d%%" : "%d.%d%%", c, b % 10);
        break;
    case 10:
        snprintf(s, sizeof s, rng_below(r, 2) ? "-%d" : "+%d.%d", a % 1000, c % 10);
        break;
    default:
        s[0] = 0;
    }
    if (s[0]) n = encode_text(t, s, ids);
    if (!n) { /* an integer of 1..10 digits */
        n = rand_between(r, t->min_len, MAX(t->min_len, MIN(t->rand_max, 10)));
        for (int i = 0; i < n; i++)
            ids[i] = t->digits[rng_below(r, t->ndigits)];
    }
    return n;
}

/* A pseudo-word: letters drawn from the word list's bigrams, so it reads
 * like a word without being one (the model cannot lean on a lexicon). */
static int text_pseudo(const TextSource *t, Rng *r, int *ids) {
    int n = rand_between(r, t->min_len, t->rand_max), k = t->alpha.n + 1, prev = 0;
    for (int i = 0; i < n; i++) {
        const uint32_t *row = t->bigram + (size_t)prev * k;
        if (!row[k - 1]) row = t->bigram; /* a symbol no word continues: restart */
        uint32_t x = (uint32_t)rng_below(r, row[k - 1]);
        int lo = 1, hi = k - 1; /* first c with row[c] > x */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (row[mid] > x)
                hi = mid;
            else
                lo = mid + 1;
        }
        ids[i] = prev = lo;
    }
    return n;
}

static int text_random(const TextSource *t, Rng *r, int *ids) {
    int n = rand_between(r, t->min_len, t->rand_max);
    for (int i = 0; i < n; i++)
        ids[i] = t->plain[rng_below(r, t->nplain)];
    return n;
}

/* Applies the case mode to the text. With a cased alphabet the label
 * follows (ids change); otherwise only the glyphs do. Random strings in the
 * "Capitalised" mode get a random case per letter. */
static void apply_case(const TextSource *t, Rng *r, int kind, int *ids, int *glyphs, int n) {
    for (int i = 0; i < n; i++)
        glyphs[i] = ids[i] - 1;
    double u = rng_uniform(r);
    int mode = u < t->cases[0]                 ? CASE_LOWER
               : u < t->cases[0] + t->cases[1] ? CASE_CAPITAL
                                               : CASE_UPPER;
    if (t->case_off || mode == CASE_LOWER || (t->has_upper && kind == KIND_RANDOM)) return;
    int first = 1;
    for (int i = 0; i < n; i++) {
        int up = mode == CASE_UPPER || (kind == KIND_RANDOM ? rng_uniform(r) < 0.5 : first);
        uint32_t cp = t->alpha.cps[ids[i] - 1];
        if (upper_of_cp(cp) || is_upper_cp(cp)) {
            first = 0; /* the first cased letter */
            if (!up) continue;
            if (t->has_upper) ids[i] = t->upper_id[ids[i]];
            glyphs[i] = t->has_upper ? ids[i] - 1 : t->upper_glyph[ids[i]];
        } else if (t->space && ids[i] == t->space)
            first = 1; /* Capitalised Each Word */
    }
}

/* The text of one sample: label ids, and the glyph (index into glyph_cp)
 * that renders each. About 65% words, 15% numbers, 20% random strings by
 * default (--kinds); a kind the alphabet or word list cannot make becomes a
 * random string. The case mode is drawn from its own stream, so --case never
 * changes which texts are drawn. Returns the length. */
static int make_text(const TextSource *t, Rng *r, int *ids, int *glyphs) {
    double u = rng_uniform(r);
    Rng case_rng;
    rng_seed(&case_rng, rng_u64(r));
    int kind = u < t->kinds[0]                 ? KIND_WORD
               : u < t->kinds[0] + t->kinds[1] ? KIND_NUMBER
                                               : KIND_RANDOM;
    if (kind == KIND_WORD && !t->nwords) kind = KIND_RANDOM;
    if (kind == KIND_NUMBER && !t->ndigits) kind = KIND_RANDOM;
    int n;
    if (kind == KIND_RANDOM && t->bigram && rng_uniform(r) < 0.5) {
        n = text_pseudo(t, r, ids);
        kind = KIND_WORD; /* cased and punctuated like a word */
    } else
        n = kind == KIND_WORD     ? text_word(t, r, ids)
            : kind == KIND_NUMBER ? text_number(t, r, ids)
                                  : text_random(t, r, ids);
    if (kind != KIND_RANDOM && rng_uniform(r) < t->punct) attach_punct(t, r, ids, &n);
    apply_case(t, &case_rng, kind, ids, glyphs, n);
    return n;
}

/* ---- fonts: files, families, em metrics of the glyphs a text may use ---- */

typedef struct {
    char *path, *family;
    float asc, desc;        /* em: the font's line box above and below the baseline */
    float *adv, *top, *bot; /* em, per glyph of the text source: advance, ink top, ink bottom */
    FT_UInt *gid;           /* FreeType glyph index per glyph */
} Font;

typedef struct {
    int first, n; /* the family's files are fonts[first .. first + n) */
} Family;

typedef struct {
    Font *fonts;
    int n;
    Family *fams;
    int nfam;
} FontSet;

typedef struct {
    char **paths;
    int n, cap;
} PathList;

static int is_font_name(const char *name) {
    size_t n = strlen(name);
    return n > 4 && (!strcasecmp(name + n - 4, ".ttf") || !strcasecmp(name + n - 4, ".otf"));
}

static void path_list_add(PathList *l, const char *path) {
    if (l->n == l->cap) l->paths = xrealloc(l->paths, sizeof(char *) * (l->cap = 2 * l->cap + 16));
    l->paths[l->n++] = xstrdup(path);
}

static void collect_fonts(PathList *l, const char *path, int explicit_path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        if (explicit_path) die(EXIT_USAGE, "--fonts: %s: %s", path, strerror(errno));
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        path_list_add(l, path);
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
            path_list_add(l, sub);
    }
    closedir(d);
}

static int cmp_uint(const void *a, const void *b) {
    FT_UInt x = *(const FT_UInt *)a, y = *(const FT_UInt *)b;
    return (x > y) - (x < y);
}

/* Ink of glyph g rendered at 24 px (sum of coverage). */
static long glyph_ink(FT_Face face, FT_UInt gi) {
    if (FT_Load_Glyph(face, gi, FT_LOAD_RENDER | FT_LOAD_NO_BITMAP)) return 0;
    const FT_Bitmap *bm = &face->glyph->bitmap;
    long ink = 0;
    for (unsigned y = 0; y < bm->rows; y++)
        for (unsigned x = 0; x < bm->width; x++)
            ink += bm->buffer[(long)y * bm->pitch + x];
    return bm->pixel_mode == FT_PIXEL_MODE_GRAY ? ink : 0;
}

/* Index of cp in the glyph set, or -1. */
static int glyph_of_cp(const TextSource *t, uint32_t cp) {
    for (int g = 0; g < t->nglyphs; g++)
        if (t->glyph_cp[g] == cp) return g;
    return -1;
}

/* The glyph named like a letter: "a", "a.alt", "uni0061", or an unnamed one. */
static int glyph_name_ok(FT_Face face, FT_UInt gi, uint32_t cp) {
    char name[64], uni[16];
    if (!FT_HAS_GLYPH_NAMES(face) || FT_Get_Glyph_Name(face, gi, name, sizeof name)) return 1;
    snprintf(uni, sizeof uni, "uni%04X", (unsigned)cp);
    size_t n = strlen(name);
    return (n >= 1 && name[0] == (char)cp && (n == 1 || name[1] == '.' || name[1] == '_')) ||
           !strncmp(name, uni, 7) || !strncmp(name, "glyph", 5) || !strncmp(name, "gid", 3) ||
           !strncmp(name, "cid", 3);
}

/* Letters that look like letters: named as such (symbol and dingbat fonts
 * map 'a' to other glyphs), lower case with ascenders and descenders (not
 * keyboard keys or small capitals), x-height below the capitals. */
static int letter_shapes_ok(FT_Face face, const TextSource *t, const Font *f) {
    for (const char *c = "aA"; *c; c++) {
        int g = glyph_of_cp(t, (uint32_t)*c);
        if (g >= 0 && !glyph_name_ok(face, f->gid[g], (uint32_t)*c)) return 0;
    }
    int o = glyph_of_cp(t, 'o'), l = glyph_of_cp(t, 'l'), p = glyph_of_cp(t, 'p'),
        O = glyph_of_cp(t, 'O');
    if (o >= 0 && l >= 0 && f->top[o] > 0.9 * f->top[l]) return 0;
    if (o >= 0 && p >= 0 && f->bot[p] > f->bot[o] - 0.1) return 0;
    if (o >= 0 && O >= 0 && f->top[o] > 0.9 * f->top[O]) return 0;
    return 1;
}

/* Fills f's metrics from face; returns why the font cannot be used, or NULL.
 * Usable: scalable, a Unicode map, an outline glyph with ink for every glyph
 * of the text source (the alphabet plus the upper-case forms it may render),
 * distinct glyphs for distinct characters, and with a cased alphabet a
 * lower case that is not small capitals. */
static const char *probe_face(FT_Face face, const TextSource *t, Font *f) {
    if (!FT_IS_SCALABLE(face)) return "not scalable";
    if (!face->charmap || face->charmap->encoding != FT_ENCODING_UNICODE)
        return "no Unicode character map (symbol font)";
    double em = face->units_per_EM;
    if (em <= 0) return "no units per em";
    float max_top = 0, min_bot = 0;
    for (int g = 0; g < t->nglyphs; g++) {
        uint32_t cp = t->glyph_cp[g];
        FT_UInt gi = FT_Get_Char_Index(face, cp);
        if (!gi) return "lacks glyphs of the alphabet (or their upper case)";
        if (FT_Load_Glyph(face, gi, FT_LOAD_NO_SCALE | FT_LOAD_NO_HINTING | FT_LOAD_NO_BITMAP))
            return "cannot load a glyph";
        FT_GlyphSlot s = face->glyph;
        f->gid[g] = gi;
        f->adv[g] = (float)(s->metrics.horiAdvance / em);
        f->top[g] = f->bot[g] = 0;
        if (cp == ' ') continue;
        if (s->format != FT_GLYPH_FORMAT_OUTLINE || s->outline.n_points < 3)
            return "a glyph without an outline";
        FT_BBox cb;
        FT_Outline_Get_CBox(&s->outline, &cb);
        if ((cb.xMax - cb.xMin) / em < 0.02 && (cb.yMax - cb.yMin) / em < 0.02)
            return "a degenerate glyph";
        if (f->adv[g] < 0.05 || f->adv[g] > 3) return "a glyph with no or a huge advance";
        f->top[g] = (float)(cb.yMax / em);
        f->bot[g] = (float)(cb.yMin / em);
        max_top = MAX(max_top, f->top[g]);
        min_bot = MIN(min_bot, f->bot[g]);
    }
    FT_UInt *ids = xmalloc(sizeof(FT_UInt) * t->nglyphs);
    memcpy(ids, f->gid, sizeof(FT_UInt) * t->nglyphs);
    qsort(ids, t->nglyphs, sizeof(FT_UInt), cmp_uint);
    int distinct = t->nglyphs > 0;
    for (int g = 1; g < t->nglyphs; g++)
        distinct += ids[g] != ids[g - 1];
    free(ids);
    if (distinct < 0.9 * t->nglyphs) return "one glyph for several characters";
    if (!letter_shapes_ok(face, t, f)) return "not a text font (symbols, keys or small capitals)";
    if (FT_Set_Pixel_Sizes(face, 0, 24)) return "cannot be scaled";
    for (const char *c = "ao0eA"; *c; c++) {
        int g = glyph_of_cp(t, (uint32_t)*c);
        if (g >= 0 && glyph_ink(face, f->gid[g]) < 255 * 6)
            return "a test glyph renders without ink";
    }
    f->asc = (float)(face->ascender / em);
    f->desc = (float)(-face->descender / em);
    if (f->asc < 0.5 || f->asc > 1.6) f->asc = max_top;
    if (f->desc < 0.05 || f->desc > 0.8) f->desc = -min_bot;
    f->family = xstrdup(face->family_name ? face->family_name : "?");
    return NULL;
}

static int cmp_font(const void *a, const void *b) {
    const Font *x = a, *y = b;
    int c = strcmp(x->family, y->family);
    return c ? c : strcmp(x->path, y->path);
}

/* The usable fonts of --fonts, sorted by family then path and grouped by
 * family, so the indices a sample draws mean the same files on every run. */
static void font_set_init(FontSet *fs, const SynthArgs *a, const TextSource *t) {
    PathList l = {0};
    char *spec = xstrdup(a->fonts), *save = NULL;
    for (char *p = strtok_r(spec, ":", &save); p; p = strtok_r(NULL, ":", &save))
        collect_fonts(&l, p, a->fonts_given);
    free(spec);
    qsort(l.paths, l.n, sizeof(char *), cmp_str);
    FT_Library lib;
    if (FT_Init_FreeType(&lib)) die(1, "cannot initialise FreeType");
    memset(fs, 0, sizeof *fs);
    fs->fonts = xcalloc(l.n + 1, sizeof(Font));
    const char *reasons[16];
    int counts[16], nreasons = 0, skipped = 0;
    for (int i = 0; i < l.n; i++) {
        Font *f = &fs->fonts[fs->n];
        f->adv = xmalloc(sizeof(float) * 3 * t->nglyphs + 1);
        f->top = f->adv + t->nglyphs;
        f->bot = f->top + t->nglyphs;
        f->gid = xmalloc(sizeof(FT_UInt) * t->nglyphs + 1);
        FT_Face face;
        const char *why = "FreeType cannot open it";
        if (FT_New_Face(lib, l.paths[i], 0, &face) == 0) {
            why = probe_face(face, t, f);
            FT_Done_Face(face);
        }
        if (!why) {
            f->path = l.paths[i];
            fs->n++;
            continue;
        }
        if (!a->quiet && a->fonts_given && l.n <= 50)
            fprintf(stderr, "ocrkd-synth: skipping font %s: %s\n", l.paths[i], why);
        int k = 0;
        while (k < nreasons && reasons[k] != why)
            k++;
        if (k == nreasons && nreasons < 16) reasons[nreasons] = why, counts[nreasons++] = 0;
        if (k < nreasons) counts[k]++;
        skipped++;
        free(f->adv);
        free(f->gid);
        free(f->family);
        f->family = NULL;
        free(l.paths[i]);
    }
    FT_Done_FreeType(lib);
    free(l.paths);
    if (!fs->n)
        die(EXIT_USAGE, "no usable font (with glyphs for every symbol) in %s%s",
            a->fonts_given ? "--fonts " : "the default font directories (doc/tools.md)",
            a->fonts_given ? a->fonts : "");
    qsort(fs->fonts, fs->n, sizeof(Font), cmp_font);
    fs->fams = xmalloc(sizeof(Family) * fs->n);
    for (int i = 0; i < fs->n; i++) {
        if (i == 0 || strcmp(fs->fonts[i].family, fs->fonts[i - 1].family))
            fs->fams[fs->nfam++] = (Family){i, 0};
        fs->fams[fs->nfam - 1].n++;
    }
    if (a->quiet) return;
    fprintf(stderr, "ocrkd-synth: %d font families, %d font files", fs->nfam, fs->n);
    if (skipped) fprintf(stderr, " (%d files skipped:", skipped);
    for (int k = 0; k < nreasons; k++)
        fprintf(stderr, "%s %d %s", k ? ";" : "", counts[k], reasons[k]);
    fprintf(stderr, "%s\n", skipped ? ")" : "");
}

static void font_set_free(FontSet *fs) {
    for (int i = 0; i < fs->n; i++) {
        free(fs->fonts[i].path);
        free(fs->fonts[i].family);
        free(fs->fonts[i].adv);
        free(fs->fonts[i].gid);
    }
    free(fs->fonts);
    free(fs->fams);
}

/* ---- style: the per-sample rendering choices ---- */

enum { LINE_UNDER = 1, LINE_STRIKE = 2, LINE_TOP = 4, LINE_BOTTOM = 8, LINE_SIDES = 16 };

typedef struct {
    int font, px, hint;                    /* font index, pixel size, HINTING[] index */
    double sx;                             /* horizontal scale of the glyphs */
    double gamma;                          /* ink = coverage ^ gamma */
    double spacing, jitter, weight;        /* em: extra advance, baseline sigma, emboldening */
    double strokes;                        /* em: x minus y emboldening (stroke contrast) */
    double wob_rot, wob_scale, wob_amp;    /* per-glyph: radians, scale, outline wave (em) */
    double angle, shear, persp_x, persp_y; /* radians; x per y; trapezoid factors */
    double curve_amp, curve_period, curve_phase; /* em; in crop heights; radians */
    int tight;                                   /* crop at the ink box, cutting cut[] of it */
    double margin[4], cut[2];                    /* left, right, top, bottom (em); top, bottom */
    int fg, bg;                                  /* grey levels */
    double grad_amp, grad_dir, tex_amp, tex_cell;
    int lines;                     /* LINE_* bits */
    double line_alpha, line_width; /* coverage 0..1; em */
    int clutter;                   /* 1: a line above, 2: below */
    double clutter_overlap;        /* em of the neighbour inside the crop */
    double downup;                 /* 0, or the factor of the down/up-scaling */
    double blur;                   /* Gaussian sigma, px at H */
    int motion, motion_vertical;   /* box blur length, px */
    double noise, saltpepper;      /* sigma in levels; share of pixels */
    int jpeg_q;                    /* 0 = no JPEG round trip */
} Style;

static const FT_Int32 HINTING[3] = {FT_LOAD_DEFAULT, FT_LOAD_TARGET_LIGHT, FT_LOAD_NO_HINTING};

static int fires(Rng *r, const Effects *fx, int k) {
    return rng_uniform(r) < fx->p[k];
}
/* A parameter of an effect that fired: uniform from a to b, or b under
 * --extreme (b may be below a: the extreme end is always b). */
static double fx_value(Rng *r, const Effects *fx, double a, double b) {
    double u = rng_uniform(r);
    return fx->extreme ? b : a + (b - a) * u;
}
static double fx_signed(Rng *r, const Effects *fx, double a, double b) {
    double v = fx_value(r, fx, a, b);
    return rng_uniform(r) < 0.5 ? -v : v;
}

static void draw_geometry(Rng *r, const Effects *fx, Style *s) {
    if (fires(r, fx, FX_ROTATE)) {
        int big = rng_uniform(r) < 0.15 || fx->extreme;
        s->angle = fx_signed(r, fx, 0.2, big ? 5 : 2) * M_PI / 180;
    }
    if (fires(r, fx, FX_SHEAR)) s->shear = fx_signed(r, fx, 0.05, 0.35);
    if (fires(r, fx, FX_PERSPECTIVE)) {
        double v = fx_signed(r, fx, 0.05, 0.3);
        if (rng_uniform(r) < 0.5)
            s->persp_x = v;
        else
            s->persp_y = v;
    }
    if (fires(r, fx, FX_CURVE)) {
        s->curve_amp = fx_value(r, fx, 0.03, 0.15);
        s->curve_period = rand_range(r, 2, 5);
        s->curve_phase = rand_range(r, 0, 2 * M_PI);
    }
    for (int i = 0; i < 2; i++)
        s->margin[i] = rand_range(r, 0.02, 0.3);
    for (int i = 2; i < 4; i++)
        s->margin[i] = rand_range(r, 0.0, 0.15);
    if (fires(r, fx, FX_LOOSE)) {
        for (int i = 0; i < 2; i++)
            s->margin[i] = fx_value(r, fx, 0.3, 1.0);
        for (int i = 2; i < 4; i++)
            s->margin[i] = fx_value(r, fx, 0.2, 0.6);
    }
    if (fires(r, fx, FX_TIGHT)) {
        s->tight = 1;
        s->cut[0] = fx_value(r, fx, 0, 0.08);
        s->cut[1] = fx_value(r, fx, 0, 0.08);
    }
}

/* Grey levels: ink and background at least c apart (90..255, or 50..85 for
 * low contrast), dark on light unless inverted; background shading. */
static void draw_colours(Rng *r, const Effects *fx, Style *s, double *contrast) {
    double c = fires(r, fx, FX_LOWCONTRAST) ? fx_value(r, fx, 85, 50) : rand_range(r, 90, 255);
    int fg = (int)floor(rand_range(r, 0, 255 - c));
    int bg = MIN(255, (int)ceil(rand_range(r, fg + c, 255)));
    int invert = fires(r, fx, FX_INVERT);
    s->fg = invert ? 255 - fg : fg;
    s->bg = invert ? 255 - bg : bg;
    if (fires(r, fx, FX_GRADIENT)) {
        s->grad_amp = fx_value(r, fx, 10, 100);
        s->grad_dir = rand_range(r, 0, 2 * M_PI);
    }
    if (fires(r, fx, FX_TEXTURE)) {
        s->tex_amp = fx_value(r, fx, 6, 60);
        s->tex_cell = rand_range(r, 3, 16);
    }
    *contrast = c;
}

static void draw_style(Rng *r, const Effects *fx, const FontSet *fs, Style *s) {
    memset(s, 0, sizeof *s);
    const Family *fam = &fs->fams[rng_below(r, fs->nfam)];
    s->font = fam->first + (int)rng_below(r, fam->n);
    s->hint = (int)rng_below(r, 3);
    s->px = rand_between(r, 24, 44);
    s->sx = 1;
    s->spacing = rand_range(r, -0.01, 0.04);
    if (fires(r, fx, FX_SPACING))
        s->spacing =
            rng_uniform(r) < 0.25 ? -fx_value(r, fx, 0.02, 0.06) : fx_value(r, fx, 0.05, 0.3);
    if (fires(r, fx, FX_JITTER)) s->jitter = fx_value(r, fx, 0.005, 0.04);
    if (fires(r, fx, FX_WEIGHT))
        s->weight =
            rng_uniform(r) < 0.3 ? -fx_value(r, fx, 0.005, 0.015) : fx_value(r, fx, 0.01, 0.05);
    s->gamma = 1;
    if (fires(r, fx, FX_GAMMA))
        s->gamma = rng_uniform(r) < 0.5 ? fx_value(r, fx, 0.85, 0.6) : fx_value(r, fx, 1.15, 1.8);
    if (fires(r, fx, FX_CONDENSE))
        s->sx = rng_uniform(r) < 0.6 ? 1 - fx_value(r, fx, 0.05, 0.38)
                                     : 1 + fx_value(r, fx, 0.05, 0.35);
    if (fires(r, fx, FX_STROKES))
        s->strokes =
            rng_uniform(r) < 0.25 ? -fx_value(r, fx, 0.02, 0.05) : fx_value(r, fx, 0.02, 0.08);
    if (fires(r, fx, FX_WOBBLE)) {
        s->wob_rot = fx_value(r, fx, 1, 5) * M_PI / 180;
        s->wob_scale = fx_value(r, fx, 0.03, 0.12);
        s->wob_amp = fx_value(r, fx, 0.005, 0.025);
    }
    draw_geometry(r, fx, s);
    double contrast;
    draw_colours(r, fx, s, &contrast);
    if (fires(r, fx, FX_LINES)) {
        static const int kinds[] = {LINE_UNDER,
                                    LINE_UNDER,
                                    LINE_UNDER,
                                    LINE_STRIKE,
                                    LINE_TOP,
                                    LINE_BOTTOM,
                                    LINE_BOTTOM,
                                    LINE_TOP | LINE_BOTTOM,
                                    LINE_TOP | LINE_BOTTOM | LINE_SIDES,
                                    LINE_SIDES};
        int k = (int)rng_below(r, ARRAY_LEN(kinds));
        s->lines =
            fx->extreme ? LINE_UNDER | LINE_STRIKE | LINE_TOP | LINE_BOTTOM | LINE_SIDES : kinds[k];
        s->line_alpha = rand_range(r, 0.4, 1);
        s->line_width = fx_value(r, fx, 0.04, 0.1);
        if (s->lines & LINE_SIDES)
            s->margin[0] = MAX(s->margin[0], 0.25), s->margin[1] = MAX(s->margin[1], 0.25);
    }
    if (fires(r, fx, FX_CLUTTER)) {
        s->clutter = fx->extreme ? 3 : 1 + (int)rng_below(r, 3);
        s->clutter_overlap = fx_value(r, fx, 0.03, 0.2);
    }
    if (fires(r, fx, FX_LOWRES)) {
        int small_px = fx->extreme || rng_uniform(r) < 0.5;
        if (small_px) s->px = (int)lround(fx_value(r, fx, 14, 8));
        if (!small_px || fx->extreme) s->downup = fx_value(r, fx, 1.5, 3);
    }
    if (fires(r, fx, FX_BLUR)) {
        int big = rng_uniform(r) < 0.1 || fx->extreme;
        s->blur = fx_value(r, fx, 0.3, big ? 1.5 : 1.0);
    }
    if (fires(r, fx, FX_MOTION)) {
        s->motion = (int)lround(fx_value(r, fx, 2, 5));
        s->motion_vertical = rng_uniform(r) < 0.3;
    }
    if (fires(r, fx, FX_NOISE)) s->noise = MIN(fx_value(r, fx, 1, 14), contrast / 4);
    if (fires(r, fx, FX_SALTPEPPER)) s->saltpepper = fx_value(r, fx, 0.001, 0.02);
    if (fires(r, fx, FX_JPEG))
        s->jpeg_q =
            (int)lround(rng_uniform(r) < 0.2 ? fx_value(r, fx, 20, 10) : fx_value(r, fx, 60, 10));
}

/* ---- geometry: the warp of the crop (rotation, shear, trapezoid, sine) ---- */

typedef struct {
    double ca, sa, shear, px, py, amp, freq, phase; /* in canvas pixels */
    double hw, hh;                                  /* half the crop size */
    double ox0, oy0;                                /* output origin, centred coordinates */
    int ow, oh, identity;
} Warp;

/* Crop-centred (x, y) -> output-centred: shear, sine, trapezoid, rotation. */
static void warp_forward(const Warp *w, double x, double y, double *ox, double *oy) {
    x += w->shear * y;
    if (w->amp) y += w->amp * sin(w->freq * x + w->phase);
    x *= 1 + w->px * y / w->hh;
    y *= 1 + w->py * x / w->hw;
    *ox = w->ca * x - w->sa * y;
    *oy = w->sa * x + w->ca * y;
}

/* The exact inverse of warp_forward. */
static void warp_inverse(const Warp *w, double ox, double oy, double *x, double *y) {
    double u = w->ca * ox + w->sa * oy, v = -w->sa * ox + w->ca * oy;
    if (w->py) v /= 1 + w->py * u / w->hw;
    if (w->px) u /= 1 + w->px * v / w->hh;
    if (w->amp) v -= w->amp * sin(w->freq * u + w->phase);
    *x = u - w->shear * v;
    *y = v;
}

/* The warp of a crop of cw x ch canvas pixels and the size of its result:
 * the bounding box of the warped crop border. */
static void warp_init(Warp *w, const Style *s, double cw, double ch) {
    memset(w, 0, sizeof *w);
    w->hw = MAX(cw, 1) / 2;
    w->hh = MAX(ch, 1) / 2;
    w->ca = cos(s->angle);
    w->sa = sin(s->angle);
    w->shear = s->shear;
    w->px = s->persp_x;
    w->py = s->persp_y;
    w->amp = s->curve_amp * s->px;
    w->freq = s->curve_amp ? 2 * M_PI / (s->curve_period * MAX(ch, 1)) : 0;
    w->phase = s->curve_phase;
    w->identity = !s->angle && !s->shear && !s->persp_x && !s->persp_y && !s->curve_amp;
    double x0 = -w->hw, y0 = -w->hh, x1 = w->hw, y1 = w->hh;
    if (!w->identity) {
        enum { STEPS = 48 };
        x0 = y0 = 1e30;
        x1 = y1 = -1e30;
        for (int k = 0; k <= STEPS; k++) {
            double t = -1 + 2.0 * k / STEPS, pts[4][2] = {{t * w->hw, -w->hh},
                                                          {t * w->hw, w->hh},
                                                          {-w->hw, t * w->hh},
                                                          {w->hw, t * w->hh}};
            for (int i = 0; i < 4; i++) {
                double ox, oy;
                warp_forward(w, pts[i][0], pts[i][1], &ox, &oy);
                x0 = MIN(x0, ox), x1 = MAX(x1, ox), y0 = MIN(y0, oy), y1 = MAX(y1, oy);
            }
        }
    }
    w->ox0 = x0;
    w->oy0 = y0;
    w->ow = MAX(1, (int)ceil(x1 - x0 - 1e-6));
    w->oh = MAX(1, (int)ceil(y1 - y0 - 1e-6));
}

/* ---- fitting the width: narrower styles from the em metrics, before rendering ---- */

/* Emboldening (em, negative: thinning) across and along the text: the
 * stroke weight, with the stroke contrast added 3:1 to the verticals and
 * taken from the horizontals (a negative one the reverse), never thinner than
 * MAX_THINNING (hairline fonts keep their strokes). */
#define MAX_THINNING 0.015
static double embolden_x(const Style *s) {
    return MAX(s->weight + 0.75 * s->strokes, -MAX_THINNING);
}
static double embolden_y(const Style *s) {
    return MAX(s->weight - 0.25 * s->strokes, -MAX_THINNING);
}

typedef struct {
    double adv, top, bot; /* em: sum of advances, highest and lowest ink */
} TextMetrics;

static TextMetrics text_metrics(const Font *f, const int *glyphs, int n) {
    TextMetrics m = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        m.adv += f->adv[glyphs[i]];
        m.top = MAX(m.top, f->top[glyphs[i]]);
        m.bot = MIN(m.bot, f->bot[glyphs[i]]);
    }
    return m;
}

/* Crop size in em that style s gives the text (kerning and hinting aside). */
static void crop_em(const Font *f, const TextMetrics *m, int n, const Style *s, double *w,
                    double *h) {
    const double ey = embolden_y(s);
    *w = s->sx * m->adv + s->spacing * (n - 1) + embolden_x(s) * n + s->margin[0] + s->margin[1];
    if (s->tight)
        *h = (m->top - m->bot + ey) * (1 - s->cut[0] - s->cut[1]);
    else
        *h = MAX(f->asc, m->top + ey) + MAX(f->desc, -m->bot) + s->margin[2] + s->margin[3];
}

static double predicted_width(const Font *f, const TextMetrics *m, int n, const Style *s, int H) {
    double w, h;
    crop_em(f, m, n, s, &w, &h);
    Warp wp;
    warp_init(&wp, s, w * s->px, h * s->px);
    return (double)wp.ow * H / wp.oh;
}

/* Makes the text fit W: first without extra spacing, side margins and
 * emboldening, then condensed (down to SX_MIN); if that is not enough, with
 * a line-box crop instead of a tight one, then with wider top and bottom
 * margins (a smaller text in the same height). 0 if it cannot. */
static int fit_style(const Font *f, const int *glyphs, int n, Style *s, int H, int W) {
    TextMetrics m = text_metrics(f, glyphs, n);
    double target = 0.97 * W, got = predicted_width(f, &m, n, s, H);
    if (got <= target) return 1;
    s->spacing = MIN(s->spacing, 0.0);
    s->weight = MIN(s->weight, 0.01);
    s->strokes = MIN(s->strokes, 0.03);
    s->margin[0] = MIN(s->margin[0], 0.05);
    s->margin[1] = MIN(s->margin[1], 0.05);
    s->lines &= ~LINE_SIDES;
    for (int step = 0; step < 10; step++) {
        if ((got = predicted_width(f, &m, n, s, H)) <= target) return 1;
        double w, h;
        crop_em(f, &m, n, s, &w, &h);
        double sx = (w * target / got - (w - s->sx * m.adv)) / m.adv;
        if (sx >= SX_MIN)
            s->sx = MIN(s->sx, sx);
        else if (s->tight)
            s->tight = 0;
        else if (s->margin[2] + s->margin[3] < 0.6)
            s->margin[2] += 0.15, s->margin[3] += 0.15;
        else
            return 0;
    }
    return 0;
}

/* Keeps the degradations readable at the text's final size: an em of fe
 * pixels at H takes a blur sigma up to 0.055 fe, a motion blur up to 0.15 fe
 * and a down/up-scaling up to fe / 8; glyphs rendered small keep 4.5 px per
 * average advance and are scaled up at most 2.5 times; blur is halved on
 * top of low resolution. */
static void limit_degradation(const Font *f, const int *glyphs, int n, Style *s, int H) {
    TextMetrics m = text_metrics(f, glyphs, n);
    double w, h;
    crop_em(f, &m, n, s, &w, &h);
    double fe = H / MAX(h, 0.3), avg = s->sx * m.adv / MAX(n, 1);
    s->blur = MIN(s->blur, 0.055 * fe);
    s->downup = MIN(s->downup, fe / 8);
    if (s->downup < 1.2) s->downup = 0;
    s->motion = MIN(s->motion, MAX(2, (int)(0.15 * fe)));
    if (s->px < 16)
        s->px = MAX(s->px, (int)ceil(MAX(4.5 / MAX(avg, 0.2), H / (2.5 * MAX(h, 0.3)))));
    if (s->px < 16 || s->downup) s->blur *= 0.5;
}

/* ---- the renderer: per-thread FreeType, libjpeg and buffers ---- */

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
} JpegErr;

/* FreeType and libjpeg objects are not shared between threads; faces are
 * opened on first use; buffers grow to the largest sample seen and are then
 * reused. */
typedef struct {
    const FontSet *fs;
    FT_Library lib;
    FT_Face *faces;
    uint8_t *canvas, *line; /* glyph coverage; the warped crop of it */
    size_t canvas_cap, line_cap;
    uint8_t *mask, *small, *small2; /* (H,W): coverage at H; down/up-scaling */
    float *img, *tmp, *grid;        /* (H,W) grey image and scratch; value-noise nodes */
    int *ids, *glyphs, *clutter;    /* the sample's label ids and glyphs; a neighbour line */
    struct jpeg_compress_struct jc;
    struct jpeg_decompress_struct jd;
    JpegErr je;
    unsigned char *jbuf, *jout; /* jout: where libjpeg left the compressed bytes */
    unsigned long jcap, jsize;
} Renderer;

static void jpeg_fail(j_common_ptr c) {
    longjmp(((JpegErr *)c->err)->jump, 1);
}
static void jpeg_quiet(j_common_ptr c, int level) {
    (void)c, (void)level;
}

static void renderer_init(Renderer *R, const FontSet *fs, int H, int W, int max_len) {
    memset(R, 0, sizeof *R);
    R->fs = fs;
    if (FT_Init_FreeType(&R->lib)) die(1, "cannot initialise FreeType");
    R->faces = xcalloc(fs->n, sizeof(FT_Face));
    size_t hw = (size_t)H * W;
    R->mask = xmalloc(hw);
    R->small = xmalloc(hw);
    R->small2 = xmalloc(hw);
    R->img = xalloc_floats(hw);
    R->tmp = xalloc_floats(hw);
    R->grid = xalloc_floats((size_t)(H + 4) * (W + 4));
    R->ids = xmalloc(sizeof(int) * (2 * max_len + 8));
    R->glyphs = xmalloc(sizeof(int) * (2 * max_len + 8));
    R->clutter = xmalloc(sizeof(int) * CLUTTER_MAX);
    R->jc.err = jpeg_std_error(&R->je.base);
    R->jd.err = &R->je.base;
    R->je.base.error_exit = jpeg_fail;
    R->je.base.emit_message = jpeg_quiet;
    jpeg_create_compress(&R->jc);
    jpeg_create_decompress(&R->jd);
    R->jcap = 2 * hw + 65536;
    R->jbuf = xmalloc(R->jcap);
}

static void renderer_free(Renderer *R) {
    for (int i = 0; i < R->fs->n; i++)
        if (R->faces[i]) FT_Done_Face(R->faces[i]);
    FT_Done_FreeType(R->lib);
    jpeg_destroy_compress(&R->jc);
    jpeg_destroy_decompress(&R->jd);
    free(R->faces);
    free(R->canvas);
    free(R->line);
    free(R->mask);
    free(R->small);
    free(R->small2);
    free(R->img);
    free(R->tmp);
    free(R->grid);
    free(R->ids);
    free(R->glyphs);
    free(R->clutter);
    free(R->jbuf);
}

static FT_Face renderer_face(Renderer *R, int k, Err *err) {
    if (!R->faces[k] && FT_New_Face(R->lib, R->fs->fonts[k].path, 0, &R->faces[k])) {
        R->faces[k] = NULL;
        err_set(err, 1, "cannot open font %s", R->fs->fonts[k].path);
    }
    return R->faces[k];
}

static uint8_t *grow(uint8_t **buf, size_t *cap, size_t need) {
    if (need > *cap) {
        free(*buf);
        *buf = xmalloc(need);
        *cap = need;
    }
    return *buf;
}

/* v rounded to the nearest grey level in 0..255. */
static uint8_t to_u8(double v) {
    return (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)(v + 0.5));
}

/* A cheap N(0, 1) for pixel noise: the sum of four 16-bit uniforms of one
 * draw, centred and scaled (Irwin-Hall, range +-3.46). */
static double pixel_normal(Rng *r) {
    uint64_t u = rng_u64(r);
    double sum = (double)(u & 0xffff) + (double)((u >> 16) & 0xffff) +
                 (double)((u >> 32) & 0xffff) + (double)(u >> 48);
    return (sum / 65536.0 - 2.0) * 1.7320508075688772;
}

/* ---- glyphs on the canvas ---- */

/* The canvas (cw x ch), the text's baseline, ink box and crop box on it. */
typedef struct {
    int cw, ch;
    double base;
    int ix0, iy0, ix1, iy1; /* ink box of the text */
    int x0, y0, x1, y1;     /* crop box */
} Crop;

/* Max-combines one glyph bitmap into the canvas (cw x ch) at (gx, gy). */
static void blit(uint8_t *canvas, int cw, int ch, const FT_Bitmap *bm, int gx, int gy) {
    for (unsigned y = 0; y < bm->rows; y++) {
        int cy = gy + (int)y;
        if (cy < 0 || cy >= ch) continue;
        const uint8_t *src = bm->buffer + (long)y * bm->pitch;
        uint8_t *dst = canvas + (size_t)cy * cw;
        for (unsigned x = 0; x < bm->width; x++) {
            int cx = gx + (int)x;
            if (cx >= 0 && cx < cw && src[x] > dst[cx]) dst[cx] = src[x];
        }
    }
}

static void fill_rect(uint8_t *canvas, int cw, int ch, double x0, double y0, double x1, double y1,
                      int v) {
    int ax = MAX(0, (int)lround(x0)), bx = MIN(cw, (int)lround(x1));
    int ay = MAX(0, (int)lround(y0)), by = MIN(ch, (int)lround(y1));
    for (int y = ay; y < by; y++)
        for (int x = ax; x < bx; x++)
            if (canvas[(size_t)y * cw + x] < v) canvas[(size_t)y * cw + x] = (uint8_t)v;
}

/* A hand-drawn look: the glyph's own rotation and x/y scale (about its
 * origin on the baseline) up to the style's wobble, then every outline point
 * moved by two sine waves of a random phase and a wavelength of 0.3..0.7 em,
 * amplitude wob_amp em (x by y, y by x), so strokes bend a little. */
static void wobble_glyph(FT_Outline *o, const Style *s, Rng *r) {
    double a = rand_range(r, -s->wob_rot, s->wob_rot);
    double kx = 1 + rand_range(r, -s->wob_scale, s->wob_scale),
           ky = 1 + rand_range(r, -s->wob_scale, s->wob_scale);
    FT_Matrix m = {(FT_Fixed)lround(kx * cos(a) * 65536), (FT_Fixed)lround(-ky * sin(a) * 65536),
                   (FT_Fixed)lround(kx * sin(a) * 65536), (FT_Fixed)lround(ky * cos(a) * 65536)};
    FT_Outline_Transform(o, &m);
    const double amp = s->wob_amp * s->px * 64,
                 k = 2 * M_PI / (rand_range(r, 0.3, 0.7) * s->px * 64);
    const double p1 = rand_range(r, 0, 2 * M_PI), p2 = rand_range(r, 0, 2 * M_PI);
    for (int i = 0; i < o->n_points; i++) {
        double x = o->points[i].x, y = o->points[i].y;
        o->points[i].x = (FT_Pos)lround(x + amp * sin(k * y + p1));
        o->points[i].y = (FT_Pos)lround(y + amp * sin(k * x + p2));
    }
}

/* Draws glyphs[0..n) from pen x on baseline base; jitter (NULL: none) moves
 * each glyph off the baseline. Grows the ink box in c. */
static int draw_run(Renderer *R, FT_Face face, const Font *f, const Style *s, const int *glyphs,
                    int n, double pen, double base, Rng *jitter, Crop *c, Err *err) {
    const FT_Pos sx = lround(embolden_x(s) * s->px * 64), sy = lround(embolden_y(s) * s->px * 64);
    FT_UInt prev = 0;
    for (int i = 0; i < n; i++) {
        FT_UInt gi = f->gid[glyphs[i]];
        FT_Vector kern;
        if (prev && FT_HAS_KERNING(face) &&
            !FT_Get_Kerning(face, prev, gi, FT_KERNING_DEFAULT, &kern))
            pen += kern.x / 64.0 * s->sx;
        if (FT_Load_Glyph(face, gi, HINTING[s->hint] | FT_LOAD_NO_BITMAP))
            return err_set(err, 1, "font %s: cannot load glyph %u", f->path, gi), -1;
        FT_GlyphSlot g = face->glyph;
        if (jitter && s->wob_amp > 0 && g->format == FT_GLYPH_FORMAT_OUTLINE)
            wobble_glyph(&g->outline, s, jitter);
        if ((sx || sy) && g->format == FT_GLYPH_FORMAT_OUTLINE)
            FT_Outline_EmboldenXY(&g->outline, sx, sy);
        if (FT_Render_Glyph(g, FT_RENDER_MODE_NORMAL))
            return err_set(err, 1, "font %s: cannot render glyph %u", f->path, gi), -1;
        double dy = jitter && s->jitter > 0 ? rng_normal(jitter) * s->jitter * s->px : 0;
        int gx = (int)lround(pen) + g->bitmap_left;
        int gy = (int)lround(base + dy) - g->bitmap_top;
        if (g->bitmap.pixel_mode == FT_PIXEL_MODE_GRAY && g->bitmap.width && g->bitmap.rows) {
            blit(R->canvas, c->cw, c->ch, &g->bitmap, gx, gy);
            c->ix0 = MIN(c->ix0, gx);
            c->iy0 = MIN(c->iy0, gy);
            c->ix1 = MAX(c->ix1, gx + (int)g->bitmap.width);
            c->iy1 = MAX(c->iy1, gy + (int)g->bitmap.rows);
        }
        pen += g->advance.x / 64.0 + sx / 64.0 + s->spacing * s->px;
        prev = gi;
    }
    return 0;
}

/* Underline, strike-through, ruled lines at the crop's top/bottom, table
 * borders at its sides; drawn on the canvas so the warp bends them too. */
static void draw_lines(Renderer *R, const Style *s, Crop *c) {
    int v = (int)lround(255 * s->line_alpha);
    double t = MAX(1.0, round(s->line_width * s->px)), em = s->px;
    if (s->lines & LINE_UNDER) {
        double y = c->base + 0.12 * em;
        fill_rect(R->canvas, c->cw, c->ch, c->ix0 - 0.05 * em, y, c->ix1 + 0.05 * em, y + t, 255);
        c->y1 = MAX(c->y1, (int)ceil(y + t + 1));
    }
    if (s->lines & LINE_STRIKE)
        fill_rect(R->canvas, c->cw, c->ch, c->ix0 - 0.05 * em, c->base - 0.3 * em - t / 2,
                  c->ix1 + 0.05 * em, c->base - 0.3 * em + t / 2, 255);
    if (s->lines & LINE_TOP) fill_rect(R->canvas, c->cw, c->ch, c->x0, c->y0, c->x1, c->y0 + t, v);
    if (s->lines & LINE_BOTTOM)
        fill_rect(R->canvas, c->cw, c->ch, c->x0, c->y1 - t, c->x1, c->y1, v);
    if (s->lines & LINE_SIDES) {
        fill_rect(R->canvas, c->cw, c->ch, c->x0, c->y0, c->x0 + t, c->y1, v);
        fill_rect(R->canvas, c->cw, c->ch, c->x1 - t, c->y0, c->x1, c->y1, v);
    }
}

/* Neighbouring lines cut by the crop: only their lowest (above) or highest
 * (below) clutter_overlap em show, as in crops from a page. */
static int draw_clutter(Renderer *R, FT_Face face, const Font *f, const TextSource *t,
                        const Style *s, Rng *r, Crop *c, Err *err) {
    for (int side = 1; side <= 2; side++) {
        if (!(s->clutter & side)) continue;
        int n = MIN(CLUTTER_MAX, (int)((c->x1 - c->x0) / (0.3 * s->px * s->sx)) + 2);
        for (int i = 0; i < n; i++)
            R->clutter[i] = t->plain[rng_below(r, t->nplain)] - 1;
        TextMetrics m = text_metrics(f, R->clutter, n);
        double ov = s->clutter_overlap * s->px, pen = c->x0 - rand_range(r, 0, 1) * s->px;
        double base = side == 1 ? c->y0 + ov + m.bot * s->px : c->y1 - ov + m.top * s->px;
        Crop ink = *c;
        if (draw_run(R, face, f, s, R->clutter, n, pen, base, NULL, &ink, err)) return -1;
    }
    return 0;
}

/* Renders the text with style s into R->canvas and sets the crop box.
 * Returns 0, 1 if there is no ink (draw again), or -1 on a FreeType error. */
static int render_text(Renderer *R, const TextSource *t, int n, const Style *s, Rng *r, Crop *c,
                       Err *err) {
    const Font *f = &R->fs->fonts[s->font];
    FT_Face face = renderer_face(R, s->font, err);
    if (!face) return -1;
    if (FT_Set_Pixel_Sizes(face, 0, s->px))
        return err_set(err, 1, "font %s: cannot set size %d", f->path, s->px), -1;
    FT_Matrix scale = {(FT_Fixed)lround(s->sx * 65536), 0, 0, 0x10000};
    FT_Set_Transform(face, &scale, NULL);
    TextMetrics m = text_metrics(f, R->glyphs, n);
    double em = s->px, w, h;
    crop_em(f, &m, n, s, &w, &h);
    int padx = (int)(1.3 * em) + 4, pady = (int)(0.8 * em) + 4;
    /* ink above the baseline: emboldening, and a wobbled glyph scaled by up
     * to 1 + wob_scale rises by up to wob_scale em */
    const double bold = MAX(fabs(embolden_x(s)), fabs(embolden_y(s)));
    double above = MAX(f->asc, m.top + bold + s->wob_scale), below = MAX(f->desc, -m.bot);
    memset(c, 0, sizeof *c);
    c->cw = (int)ceil(w * em) + 2 * n + 2 * padx;
    c->ch = (int)ceil((above + below) * em) + 2 * pady;
    memset(grow(&R->canvas, &R->canvas_cap, (size_t)c->cw * c->ch), 0, (size_t)c->cw * c->ch);
    c->base = pady + above * em;
    c->ix0 = c->cw, c->iy0 = c->ch, c->ix1 = c->iy1 = -1;
    if (draw_run(R, face, f, s, R->glyphs, n, padx, c->base, r, c, err)) return -1;
    if (c->ix1 < 0) return 1;
    c->x0 = (int)floor(c->ix0 - s->margin[0] * em);
    c->x1 = (int)ceil(c->ix1 + s->margin[1] * em);
    if (s->tight) {
        double ih = c->iy1 - c->iy0;
        c->y0 = (int)lround(c->iy0 + s->cut[0] * ih);
        c->y1 = (int)lround(c->iy1 - s->cut[1] * ih);
    } else {
        c->y0 = (int)floor(MIN(c->iy0, c->base - f->asc * em) - s->margin[2] * em);
        c->y1 = (int)ceil(MAX(c->iy1, c->base + f->desc * em) + s->margin[3] * em);
    }
    c->x0 = MAX(0, c->x0), c->y0 = MAX(0, c->y0);
    c->x1 = MIN(c->cw, MAX(c->x1, c->x0 + 1)), c->y1 = MIN(c->ch, MAX(c->y1, c->y0 + 1));
    if (s->lines) draw_lines(R, s, c);
    c->y1 = MIN(c->ch, c->y1);
    if (s->clutter && draw_clutter(R, face, f, t, s, r, c, err)) return -1;
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

/* The crop of the canvas, warped, into R->line (w->ow x w->oh). */
static void warp_line(Renderer *R, const Crop *c, const Warp *w) {
    uint8_t *out = grow(&R->line, &R->line_cap, (size_t)w->ow * w->oh);
    if (w->identity) {
        for (int y = 0; y < w->oh; y++)
            memcpy(out + (size_t)y * w->ow, R->canvas + (size_t)(c->y0 + y) * c->cw + c->x0,
                   (size_t)w->ow);
        return;
    }
    double cx = (c->x0 + c->x1) / 2.0 - 0.5, cy = (c->y0 + c->y1) / 2.0 - 0.5;
    for (int y = 0; y < w->oh; y++)
        for (int x = 0; x < w->ow; x++) {
            double sx, sy;
            warp_inverse(w, x + 0.5 + w->ox0, y + 0.5 + w->oy0, &sx, &sy);
            double v = sample_canvas(R->canvas, c->cw, c->ch, sx + cx, sy + cy);
            out[(size_t)y * w->ow + x] = to_u8(v);
        }
}

/* ---- pixels at H: background, composite, degradations ---- */

/* Adds smooth value noise of amplitude amp (levels) and cell size cell
 * (px) to the used columns of im (H, stride W). */
static void add_value_noise(float *im, float *grid, int H, int W, int used, double cell, double amp,
                            Rng *r) {
    int nx = (int)(used / cell) + 2, ny = (int)(H / cell) + 2;
    for (int k = 0; k < nx * ny; k++)
        grid[k] = (float)(amp * rng_normal(r));
    for (int y = 0; y < H; y++) {
        double fy = y / cell;
        int iy = (int)fy;
        double ty = fy - iy;
        ty = ty * ty * (3 - 2 * ty);
        for (int x = 0; x < used; x++) {
            double fx = x / cell;
            int ix = (int)fx;
            double tx = fx - ix;
            tx = tx * tx * (3 - 2 * tx);
            const float *g0 = grid + iy * nx + ix, *g1 = g0 + nx;
            double top = g0[0] + (g0[1] - g0[0]) * tx, bot = g1[0] + (g1[1] - g1[0]) * tx;
            im[(size_t)y * W + x] += (float)(top + (bot - top) * ty);
        }
    }
}

/* Background (level, gradient, texture), kept at least MIN_CONTRAST + 5
 * from the ink everywhere, then the ink blended in by coverage. */
static void composite(Renderer *R, const Style *s, Rng *r, int H, int W, int used) {
    float *im = R->img;
    double gx = s->grad_amp * cos(s->grad_dir) / MAX(used, 1),
           gy = s->grad_amp * sin(s->grad_dir) / H;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++)
            im[(size_t)y * W + x] = (float)(s->bg + gx * (x - used / 2.0) + gy * (y - H / 2.0));
    if (s->tex_amp) {
        add_value_noise(im, R->grid, H, W, used, s->tex_cell, s->tex_amp, r);
        add_value_noise(im, R->grid, H, W, used, MAX(1.5, s->tex_cell / 3), s->tex_amp / 3, r);
    }
    float ink[256];
    for (int v = 0; v < 256; v++)
        ink[v] = (float)(s->gamma == 1 ? v / 255.0 : pow(v / 255.0, s->gamma));
    int dark = s->fg < s->bg, lo = dark ? s->fg + MIN_CONTRAST + 5 : 0;
    int hi = dark ? 255 : s->fg - MIN_CONTRAST - 5;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            float *p = &im[(size_t)y * W + x];
            double b = *p < lo ? lo : *p > hi ? hi : *p, m = ink[R->mask[(size_t)y * W + x]];
            *p = (float)(b + (s->fg - b) * m);
        }
}

/* Low resolution: the image scaled down by factor f and up again (the same
 * resampling as image_fit). The used width may change by a pixel. */
static void down_up(Renderer *R, int H, int W, int *used, double f) {
    int u = *used, h2 = MAX(4, (int)lround(H / f));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < u; x++)
            R->small[(size_t)y * u + x] = to_u8(R->img[(size_t)y * W + x]);
    int w2 = image_scaled_width(u, H, h2);
    image_fit(R->small, u, H, h2, w2, R->small2, NULL);
    image_fit(R->small2, w2, h2, H, W, R->small, used);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < *used; x++)
            R->img[(size_t)y * W + x] = R->small[(size_t)y * W + x];
}

/* Separable Gaussian blur (sigma px) of the used columns, edges clamped. */
static void blur_gauss(float *im, float *tmp, int H, int W, int used, double sigma) {
    float k[9];
    int rad = MIN(4, (int)ceil(2.5 * sigma));
    double sum = 0;
    for (int j = -rad; j <= rad; j++)
        sum += k[j + rad] = (float)exp(-j * j / (2 * sigma * sigma));
    for (int j = 0; j <= 2 * rad; j++)
        k[j] = (float)(k[j] / sum);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            float v = 0;
            for (int j = -rad; j <= rad; j++)
                v += k[j + rad] * im[(size_t)y * W + MIN(MAX(x + j, 0), used - 1)];
            tmp[(size_t)y * W + x] = v;
        }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            float v = 0;
            for (int j = -rad; j <= rad; j++)
                v += k[j + rad] * tmp[(size_t)MIN(MAX(y + j, 0), H - 1) * W + x];
            im[(size_t)y * W + x] = v;
        }
}

/* Motion blur: a box of len px along x (or y). */
static void blur_box(float *im, float *tmp, int H, int W, int used, int len, int vertical) {
    memcpy(tmp, im, sizeof(float) * H * W);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            float v = 0;
            for (int j = 0; j < len; j++) {
                int o = j - len / 2;
                v += vertical ? tmp[(size_t)MIN(MAX(y + o, 0), H - 1) * W + x]
                              : tmp[(size_t)y * W + MIN(MAX(x + o, 0), used - 1)];
            }
            im[(size_t)y * W + x] = v / len;
        }
}

/* Compresses the used columns of img (H, stride W) as a grey JPEG of
 * quality q and decodes it back in place; leaves img as it was on a libjpeg
 * error. */
static void jpeg_round_trip(Renderer *R, uint8_t *img, int H, int W, int used, int q) {
    R->jout = R->jbuf;
    R->jsize = R->jcap;
    if (setjmp(R->je.jump)) {
        jpeg_abort_compress(&R->jc);
        jpeg_abort_decompress(&R->jd);
        if (R->jout != R->jbuf) free(R->jout);
        return;
    }
    jpeg_mem_dest(&R->jc, &R->jout, &R->jsize);
    R->jc.image_width = (JDIMENSION)used;
    R->jc.image_height = (JDIMENSION)H;
    R->jc.input_components = 1;
    R->jc.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&R->jc);
    jpeg_set_quality(&R->jc, q, TRUE);
    R->jc.dct_method = JDCT_ISLOW;
    jpeg_start_compress(&R->jc, TRUE);
    for (int y = 0; y < H; y++) {
        JSAMPROW row = img + (size_t)y * W;
        jpeg_write_scanlines(&R->jc, &row, 1);
    }
    jpeg_finish_compress(&R->jc);
    jpeg_mem_src(&R->jd, R->jout, R->jsize);
    jpeg_read_header(&R->jd, TRUE);
    R->jd.out_color_space = JCS_GRAYSCALE;
    R->jd.dct_method = JDCT_ISLOW;
    jpeg_start_decompress(&R->jd);
    while (R->jd.output_scanline < R->jd.output_height) {
        JSAMPROW row = img + (size_t)R->jd.output_scanline * W;
        jpeg_read_scanlines(&R->jd, &row, 1);
    }
    jpeg_finish_decompress(&R->jd);
    if (R->jout != R->jbuf) free(R->jout);
}

/* From the coverage at H (R->mask) to the final grey image: composite,
 * low resolution, blur, noise, salt and pepper, JPEG; then the right
 * padding is replicated from the last used column. */
static void finish_pixels(Renderer *R, const Style *s, Rng *r, int H, int W, int *used,
                          uint8_t *img) {
    composite(R, s, r, H, W, *used);
    if (s->downup) down_up(R, H, W, used, s->downup);
    int u = *used;
    float *im = R->img;
    if (s->blur) blur_gauss(im, R->tmp, H, W, u, s->blur);
    if (s->motion) blur_box(im, R->tmp, H, W, u, s->motion, s->motion_vertical);
    if (s->noise)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < u; x++)
                im[(size_t)y * W + x] += (float)(s->noise * pixel_normal(r));
    if (s->saltpepper)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < u; x++) {
                double v = rng_uniform(r);
                if (v < s->saltpepper && x < u - 1)
                    im[(size_t)y * W + x] = v < s->saltpepper / 2 ? 0 : 255;
            }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < u; x++)
            img[(size_t)y * W + x] = to_u8(im[(size_t)y * W + x]);
    if (s->jpeg_q) jpeg_round_trip(R, img, H, W, u, s->jpeg_q);
    for (int y = 0; y < H; y++)
        memset(img + (size_t)y * W + u, img[(size_t)y * W + u - 1], (size_t)(W - u));
}

/* Ink against background in the final image: mean grey where the coverage
 * is high minus where it is low. */
static double measured_contrast(const uint8_t *img, const uint8_t *mask, int H, int W, int used) {
    int top = 0;
    for (int i = 0; i < H * W; i++)
        top = MAX(top, mask[i]);
    double ink = 0, bg = 0;
    long nink = 0, nbg = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < used; x++) {
            int m = mask[(size_t)y * W + x], v = img[(size_t)y * W + x];
            if (m * 10 >= top * 6) ink += v, nink++;
            if (m * 10 <= top) bg += v, nbg++;
        }
    return nink && nbg && top >= 64 ? fabs(ink / nink - bg / nbg) : 0;
}

/* OCRKD_SYNTH_TRACE=1 prints each sample's style to stderr (to debug a
 * rendering; the order of lines follows the threads, not the samples). */
static int trace;

static void trace_sample(const Renderer *R, const Style *s, const char *label, int used) {
    fprintf(stderr,
            "%s\t%s px=%d hint=%d sx=%.2f sp=%.3f wt=%.3f strokes=%.3f wob=%.3f rot=%.1f "
            "shear=%.2f persp=%.2f,%.2f "
            "curve=%.2f tight=%d m=%.2f,%.2f,%.2f,%.2f fg=%d bg=%d lines=%d clutter=%d downup=%.1f "
            "blur=%.2f motion=%d noise=%.1f sp=%.3f jpeg=%d used=%d\n",
            label, R->fs->fonts[s->font].path, s->px, s->hint, s->sx, s->spacing, s->weight,
            s->strokes, s->wob_amp, s->angle * 180 / M_PI, s->shear, s->persp_x, s->persp_y,
            s->curve_amp, s->tight, s->margin[0], s->margin[1], s->margin[2], s->margin[3], s->fg,
            s->bg, s->lines, s->clutter, s->downup, s->blur, s->motion, s->noise, s->saltpepper,
            s->jpeg_q, used);
}

/* One sample from its own RNG: img (H,W), used width, UTF-8 label. A text
 * that does not fit W is tried with up to 4 styles (each made narrower as
 * needed) and then replaced; a sample whose contrast after all effects is
 * under MIN_CONTRAST is drawn again. */
static int render_sample(Renderer *R, const TextSource *t, const Effects *fx, Rng *r, int H, int W,
                         uint8_t *img, int *used, char *label, size_t label_cap, Err *err) {
    for (int attempt = 0; attempt < 200; attempt++) {
        int n = make_text(t, r, R->ids, R->glyphs);
        for (int try = 0; try < 4; try++) {
            Style s;
            Crop c;
            Warp w;
            draw_style(r, fx, R->fs, &s);
            const Font *f = &R->fs->fonts[s.font];
            if (!fit_style(f, R->glyphs, n, &s, H, W)) continue;
            limit_degradation(f, R->glyphs, n, &s, H);
            int rc = render_text(R, t, n, &s, r, &c, err);
            if (rc < 0) return -1;
            if (rc > 0) continue;
            warp_init(&w, &s, c.x1 - c.x0, c.y1 - c.y0);
            if (image_scaled_width(w.ow, w.oh, H) > W) continue;
            warp_line(R, &c, &w);
            image_fit(R->line, w.ow, w.oh, H, W, R->mask, used);
            finish_pixels(R, &s, r, H, W, used, img);
            if (attempt < 20 && measured_contrast(img, R->mask, H, W, *used) < MIN_CONTRAST)
                continue;
            alphabet_decode(&t->alpha, R->ids, n, label, label_cap);
            if (trace) trace_sample(R, &s, label, *used);
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
    const Effects *fx;
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

/* The seed of sample `index` of `split`: depends on nothing else. */
static uint64_t sample_seed(uint64_t seed, int split, long index) {
    return rng_mix64(rng_mix64(rng_mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (uint64_t)(split + 1)) ^
                     (uint64_t)index);
}

static int render_block(Pool *p, Renderer *R, Slot *s, Err *err) {
    long first = s->block * BLOCK;
    for (long i = first; i < MIN(first + BLOCK, p->n); i++) {
        long k = i - first;
        Rng r;
        rng_seed(&r, sample_seed(p->seed, p->split, i));
        if (render_sample(R, p->text, p->fx, &r, p->H, p->W, s->images + k * p->H * p->W,
                          &s->used[k], s->labels + k * p->label_cap, p->label_cap, err))
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
    p->fx = &a->fx;
    p->seed = a->seed;
    p->split = split;
    p->H = SYNTH_H;
    p->W = a->width;
    p->label_cap = (size_t)t->max_len * 4 + 1;
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
    trace = getenv("OCRKD_SYNTH_TRACE") && *getenv("OCRKD_SYNTH_TRACE") == '1';
    SynthArgs a;
    parse_args(argc, argv, &a);
    TextSource text;
    text_source_init(&text, &a, a.width);
    FontSet fonts;
    font_set_init(&fonts, &a, &text);
    make_dirs(a.out_dir);
    Renderer R[MAX_THREADS];
    for (int i = 0; i < a.threads; i++)
        renderer_init(&R[i], &fonts, SYNTH_H, a.width, text.max_len);
    for (int s = 0; s < SPLIT_COUNT; s++)
        if (a.n[s] > 0) synth_split(&a, &text, R, s);
    for (int i = 0; i < a.threads; i++)
        renderer_free(&R[i]);
    font_set_free(&fonts);
    text_source_free(&text);
    return 0;
}
