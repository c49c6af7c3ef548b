#!/usr/bin/python3
"""heldout_render.py - a held-out OCR test set from another renderer.

ocrkd trains on data-tools/synth.c (FreeType, DejaVu/Liberation/FreeFont/...
fonts, /usr/share/dict/words). This tool renders a test set that shares none
of that: PIL's ImageFont/ImageDraw with its own transforms, fonts from other
Debian packages (HELDOUT_FONTS below), and words that are not in wamerican's
list. Writes an ocrkd dataset HDF5 (SPEC.md "Dataset file") and optionally
the same images as PNG files with a labels.txt (PATH<TAB>LABEL) for Tesseract
and `ocrkd predict`.

Per image: a text (a word in lower, Capitalised or UPPER case, a number, or a
short code), a font and size, sometimes letter spacing or faux bold, then
rotation (within +-3 degrees), blur, background grey/gradient/paper texture,
an underline/strike/border line, contrast, inversion, noise and JPEG
artefacts; cropped with random margins, scaled to height H keeping the
aspect and padded on the right to W by repeating the last column (ocrkd's
image_fit). A text that would need squeezing by more than --max-squeeze is
drawn again. Labels are folded to lower case when the alphabet has no
capitals. The output depends only on the arguments (and the installed
fonts, word lists and PIL): --seed S gives the same images every time.
doc/heldout.md describes the set.
Not for: labeled training data (ocrkd-synth makes that; a set trained on
would no longer be held out).
"""
import argparse
import io
import os
import sys
import time

import numpy as np

try:
    import h5py
    from PIL import Image, ImageDraw, ImageFilter, ImageFont
except ImportError as e:  # pragma: no cover - reported, not tested
    sys.exit("heldout_render.py: needs python3-numpy, python3-h5py and python3-pil (%s)" % e)

DEFAULT_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
HEIGHT = 32

# The held-out fonts: the regular, bold and italic styles of Debian font
# packages that ocrkd-synth never trains on (package, file). Sorted by path.
HELDOUT_FONTS = sorted([
    ("fonts-adf-accanthis", "/usr/share/fonts/truetype/adf/AccanthisADFStd-Bold.otf"),
    ("fonts-adf-accanthis", "/usr/share/fonts/truetype/adf/AccanthisADFStd-BoldItalic.otf"),
    ("fonts-adf-accanthis", "/usr/share/fonts/truetype/adf/AccanthisADFStd-Italic.otf"),
    ("fonts-adf-accanthis", "/usr/share/fonts/truetype/adf/AccanthisADFStd-Regular.otf"),
    ("fonts-adf-gillius", "/usr/share/fonts/truetype/adf/GilliusADF-Bold.otf"),
    ("fonts-adf-gillius", "/usr/share/fonts/truetype/adf/GilliusADF-BoldItalic.otf"),
    ("fonts-adf-gillius", "/usr/share/fonts/truetype/adf/GilliusADF-Italic.otf"),
    ("fonts-adf-gillius", "/usr/share/fonts/truetype/adf/GilliusADF-Regular.otf"),
    ("fonts-agave", "/usr/share/fonts/truetype/agave/agave-b-autohinted.ttf"),
    ("fonts-agave", "/usr/share/fonts/truetype/agave/agave-r-autohinted.ttf"),
    ("fonts-averia-serif-gwf", "/usr/share/fonts/truetype/averia-gwf/AveriaSerifGWF-Bold.ttf"),
    ("fonts-averia-serif-gwf", "/usr/share/fonts/truetype/averia-gwf/AveriaSerifGWF-BoldItalic.ttf"),
    ("fonts-averia-serif-gwf", "/usr/share/fonts/truetype/averia-gwf/AveriaSerifGWF-Italic.ttf"),
    ("fonts-averia-serif-gwf", "/usr/share/fonts/truetype/averia-gwf/AveriaSerifGWF-Regular.ttf"),
    ("fonts-dosis", "/usr/share/fonts/opentype/dosis/Dosis-Bold.otf"),
    ("fonts-dosis", "/usr/share/fonts/opentype/dosis/Dosis-Book.otf"),
    ("fonts-fantasque-sans", "/usr/share/fonts/truetype/fantasque-sans/Normal/TTF/FantasqueSansMono-Bold.ttf"),
    ("fonts-fantasque-sans", "/usr/share/fonts/truetype/fantasque-sans/Normal/TTF/FantasqueSansMono-BoldItalic.ttf"),
    ("fonts-fantasque-sans", "/usr/share/fonts/truetype/fantasque-sans/Normal/TTF/FantasqueSansMono-Italic.ttf"),
    ("fonts-fantasque-sans", "/usr/share/fonts/truetype/fantasque-sans/Normal/TTF/FantasqueSansMono-Regular.ttf"),
    ("fonts-firacode", "/usr/share/fonts/truetype/firacode/FiraCode-Bold.ttf"),
    ("fonts-firacode", "/usr/share/fonts/truetype/firacode/FiraCode-Regular.ttf"),
    ("fonts-gfs-neohellenic", "/usr/share/fonts/opentype/neohellenic/GFSNeohellenic.otf"),
    ("fonts-gfs-neohellenic", "/usr/share/fonts/opentype/neohellenic/GFSNeohellenicBold.otf"),
    ("fonts-gfs-neohellenic", "/usr/share/fonts/opentype/neohellenic/GFSNeohellenicBoldIt.otf"),
    ("fonts-gfs-neohellenic", "/usr/share/fonts/opentype/neohellenic/GFSNeohellenicIt.otf"),
    ("fonts-humor-sans", "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf"),
    ("fonts-junicode", "/usr/share/fonts/opentype/junicode/JunicodeTwoBeta-Bold.otf"),
    ("fonts-junicode", "/usr/share/fonts/opentype/junicode/JunicodeTwoBeta-BoldItalic.otf"),
    ("fonts-junicode", "/usr/share/fonts/opentype/junicode/JunicodeTwoBeta-Italic.otf"),
    ("fonts-junicode", "/usr/share/fonts/opentype/junicode/JunicodeTwoBeta-Regular.otf"),
    ("fonts-lato", "/usr/share/fonts/truetype/lato/Lato-Bold.ttf"),
    ("fonts-lato", "/usr/share/fonts/truetype/lato/Lato-BoldItalic.ttf"),
    ("fonts-lato", "/usr/share/fonts/truetype/lato/Lato-Italic.ttf"),
    ("fonts-lato", "/usr/share/fonts/truetype/lato/Lato-Regular.ttf"),
    ("fonts-open-sans", "/usr/share/fonts/truetype/open-sans/OpenSans-Bold.ttf"),
    ("fonts-open-sans", "/usr/share/fonts/truetype/open-sans/OpenSans-BoldItalic.ttf"),
    ("fonts-open-sans", "/usr/share/fonts/truetype/open-sans/OpenSans-Italic.ttf"),
    ("fonts-open-sans", "/usr/share/fonts/truetype/open-sans/OpenSans-Regular.ttf"),
    ("fonts-prociono", "/usr/share/fonts/opentype/fonts-prociono/Prociono.otf"),
    ("fonts-roboto-slab", "/usr/share/fonts/opentype/roboto/slab/RobotoSlab-Bold.otf"),
    ("fonts-roboto-slab", "/usr/share/fonts/opentype/roboto/slab/RobotoSlab-Regular.otf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Bold.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Italic.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoCondensed-Regular.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Bold.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-BoldItalic.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Italic.ttf"),
    ("fonts-roboto-unhinted", "/usr/share/fonts/truetype/roboto/unhinted/RobotoTTF/Roboto-Regular.ttf"),
], key=lambda pf: pf[1])

# Fonts whose lower case is drawn as capitals (other shapes of them): their
# lower case is only used when labels are folded to lower case anyway.
CAPS_ONLY_FONTS = {"Humor-Sans.ttf"}

# Word lists: British spellings and words of the large British list that the
# training list (wamerican's) does not have.
WORD_LISTS = ["/usr/share/dict/british-english-large", "/usr/share/dict/british-english"]
TRAINING_WORD_LISTS = ["/usr/share/dict/american-english", "/usr/share/dict/words"]

# Shares of the text kinds and of the cases of a word (--case mixed).
P_WORD, P_NUMBER = 0.80, 0.14  # the rest: short codes of letters and digits
P_LOWER, P_CAPITAL = 0.62, 0.26  # the rest of the words: UPPER


PROG = "heldout_render.py"  # the name in messages (heldout_pango.py sets its own)


def die(msg, code=2):
    sys.stderr.write("%s: %s\n" % (PROG, msg))
    sys.exit(code)


def parse_args(argv, description="Renders a held-out ocrkd test set with PIL, held-out fonts "
               "and words (see doc/heldout.md)."):
    p = argparse.ArgumentParser(prog=PROG, description=description)
    p.add_argument("--out", required=True, help="output dataset FILE.h5")
    p.add_argument("--n", type=int, default=2000, help="number of images (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the whole set (default 1)")
    p.add_argument("--width", type=int, default=128, help="image width W (default 128)")
    p.add_argument("--alphabet", default=DEFAULT_ALPHABET,
                   help="label symbols (default %s)" % DEFAULT_ALPHABET)
    p.add_argument("--fonts", nargs="+", metavar="PATH",
                   help="font files or directories of .ttf/.otf (colon-separated lists too); "
                   "default: the held-out list (doc/heldout.md)")
    p.add_argument("--words", help="word list, one per line (default: %s minus %s)"
                   % (" or ".join(WORD_LISTS), " and ".join(TRAINING_WORD_LISTS)))
    p.add_argument("--min-len", type=int, default=1, help="shortest label (default 1)")
    p.add_argument("--max-len", type=int, default=11, help="longest label (default 11)")
    p.add_argument("--case", choices=["mixed", "lower", "capital", "upper"], default="mixed",
                   help="case of the rendered words (default mixed: about 62%% lower, "
                   "26%% Capitalised, 12%% UPPER)")
    p.add_argument("--max-squeeze", type=float, default=1.12,
                   help="largest horizontal squeeze accepted when a text is wider than W "
                   "(default 1.12); wider texts are drawn again")
    p.add_argument("--png-dir", help="also write DIR/NNNNNN.png (used width) and DIR/labels.txt")
    p.add_argument("--gzip", type=int, default=0, help="gzip level of /images (default 0)")
    p.add_argument("--list-fonts", action="store_true", help="print the fonts used and exit")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    a = p.parse_args(argv)
    if a.n < 1:
        die("--n must be at least 1")
    if a.width < 8:
        die("--width must be at least 8")
    if not 1 <= a.min_len <= a.max_len:
        die("need 1 <= --min-len <= --max-len")
    if not a.alphabet or len(set(a.alphabet)) != len(a.alphabet):
        die("--alphabet must be non-empty without repeated symbols")
    if not 1.0 <= a.max_squeeze <= 3.0:
        die("--max-squeeze must be in [1, 3]")
    if not 0 <= a.gzip <= 9:
        die("--gzip must be 0..9")
    return a


# ---- text ----

def fold_label(text, alphabet):
    """The label of a rendered text: folded to lower case when the alphabet
    has no capitals (each character the alphabet lacks but whose lower case
    it has)."""
    out = []
    for c in text:
        if c not in alphabet and c.lower() in alphabet:
            c = c.lower()
        out.append(c)
    return "".join(out)


def read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return [w.strip() for w in f if w.strip()]


def load_words(args):
    """Words whose label fits the alphabet and lengths. Default: the British
    lists minus every word (case-insensitive) of the training lists."""
    if args.words:
        if not os.path.isfile(args.words):
            die("--words %s: no such file" % args.words)
        words = read_lines(args.words)
        source = args.words
    else:
        src = [p for p in WORD_LISTS if os.path.isfile(p)]
        if not src:
            die("no British word list (%s): install wbritish-large or wbritish, or give --words"
                % " or ".join(WORD_LISTS))
        training, used = set(), []
        for p in TRAINING_WORD_LISTS:
            if not os.path.isfile(p):
                continue
            real = os.path.realpath(p)
            if real in [os.path.realpath(b) for b in WORD_LISTS]:
                # dictionaries-common made a British list the system default:
                # ocrkd-synth's default words are then these very words
                sys.stderr.write("%s: warning: %s is %s, so ocrkd-synth's default "
                                 "words are British too; train with --words %s (wamerican)\n"
                                 % (PROG, p, real, TRAINING_WORD_LISTS[0]))
                continue
            training.update(w.lower() for w in read_lines(p))
            used.append(p)
        if not training:
            die("no training word list (%s) to exclude: install wamerican"
                % " or ".join(TRAINING_WORD_LISTS))
        words = [w for w in read_lines(src[0]) if w.lower() not in training]
        source = "%s minus %s" % (src[0], " and ".join(used))
    alpha = set(args.alphabet)
    seen, keep = set(), []
    for w in words:
        if not w.isalpha() and not w.isalnum():
            continue
        base = w if alpha & set("ABCDEFGHIJKLMNOPQRSTUVWXYZ") else w.lower()
        lab = fold_label(base, args.alphabet)
        if not args.min_len <= len(lab) <= args.max_len or any(c not in alpha for c in lab):
            continue
        if base not in seen:
            seen.add(base)
            keep.append(base)
    keep.sort()
    return keep, source


def case_of(word, mode, rng):
    if mode == "mixed":
        u = rng.random()
        mode = "lower" if u < P_LOWER else "capital" if u < P_LOWER + P_CAPITAL else "upper"
    if mode == "upper":
        return word.upper()
    if mode == "capital":
        return word[:1].upper() + word[1:]
    return word


class TextSource:
    def __init__(self, args):
        self.alphabet = args.alphabet
        self.words, self.word_source = load_words(args)
        self.digits = [c for c in "0123456789" if c in args.alphabet]
        self.letters = [c for c in args.alphabet if c.isalpha()]
        # codes avoid the letters a reader cannot tell from digits (O/0, I/l/1)
        self.code_letters = [c for c in self.letters if c.lower() not in "oil"] or self.letters
        self.min_len, self.max_len, self.case = args.min_len, args.max_len, args.case
        if not self.words and not self.digits and not self.letters:
            die("the alphabet has no letters or digits and no word fits it")

    def number(self, rng):
        lo, hi = self.min_len, min(self.max_len, 8)
        if lo > hi:
            return None
        u = rng.random()
        if u < 0.25 and lo <= 4 <= hi:  # a year
            return str(rng.integers(1850, 2031))
        n = int(rng.integers(lo, hi + 1))
        # short numbers are common; first digit not 0 unless a lone digit
        s = "".join(rng.choice(self.digits) for _ in range(n))
        if n > 1 and s[0] == "0":
            s = rng.choice(self.digits[1:] or self.digits) + s[1:]
        return s

    def code(self, rng):
        """A short code such as 'b52', 'A4', 'x7k2' (letters but o, i, l and
        digits)."""
        n = int(rng.integers(max(self.min_len, 2), max(min(self.max_len, 6), 2) + 1))
        n = min(n, self.max_len)
        pool = self.code_letters + self.digits
        s = "".join(rng.choice(pool) for _ in range(n))
        if self.case == "mixed":
            return s.upper() if rng.random() < 0.4 else s
        return s.upper() if self.case == "upper" else s

    def text(self, rng):
        """(rendered text, kind)."""
        u = rng.random()
        if u < P_WORD and self.words:
            w = self.words[int(rng.integers(len(self.words)))]
            return case_of(w, self.case, rng), "word"
        if u < P_WORD + P_NUMBER and self.digits:
            s = self.number(rng)
            if s is not None:
                return s, "number"
        if self.letters and self.digits:
            return self.code(rng), "code"
        if self.words:
            return case_of(self.words[int(rng.integers(len(self.words)))], self.case, rng), "word"
        pool = self.letters or self.digits
        n = int(rng.integers(self.min_len, self.max_len + 1))
        return "".join(rng.choice(pool) for _ in range(n)), "code"


# ---- fonts ----

def font_files(paths):
    out = []
    for item in paths:
        for p in item.split(":"):
            if not p:
                continue
            if os.path.isdir(p):
                for root, _, files in sorted(os.walk(p)):
                    out += [os.path.join(root, f) for f in sorted(files)
                            if f.lower().endswith((".ttf", ".otf"))]
            elif os.path.isfile(p):
                out.append(p)
            else:
                die("--fonts %s: no such file or directory" % p)
    return sorted(set(out))


def glyph_set(path, chars):
    """The characters of chars that the font draws (not as its .notdef box
    and not blank)."""
    try:
        f = ImageFont.truetype(path, 40, layout_engine=ImageFont.Layout.BASIC)
    except OSError:
        return None

    def sig(c):
        m = f.getmask(c)
        return m.size, bytes(m)

    notdef = {sig("\U000FFFFD"), sig("\uFFFF")}
    have = set()
    for c in chars:
        s = sig(c)
        if s in notdef or not any(s[1]):
            continue
        have.add(c)
    return frozenset(have)


class Fonts:
    """The usable fonts: --fonts, or the (package, file) list `defaults`
    (HELDOUT_FONTS), with the glyphs each draws."""

    def __init__(self, args, needed_chars, defaults=None):
        defaults = HELDOUT_FONTS if defaults is None else defaults
        if args.fonts:
            files = font_files(args.fonts)
            self.entries = [(os.path.dirname(p), p) for p in files]
        else:
            self.entries = [(pkg, p) for pkg, p in defaults if os.path.isfile(p)]
            missing = [p for _, p in defaults if not os.path.isfile(p)]
            if missing and not args.quiet:
                sys.stderr.write("%s: %d held-out fonts not installed (first: %s)\n"
                                 % (PROG, len(missing), missing[0]))
        self.glyphs = []
        kept = []
        caps_matter = any(c.isupper() for c in args.alphabet)
        for fam, p in self.entries:
            g = glyph_set(p, needed_chars)
            if g is None:
                sys.stderr.write("%s: %s: not a font PIL can read, skipped\n" % (PROG, p))
                continue
            if caps_matter and os.path.basename(p) in CAPS_ONLY_FONTS:
                g = frozenset(c for c in g if not c.islower())
            kept.append((fam, p))
            self.glyphs.append(g)
        self.entries = kept
        if not self.entries:
            die("no usable font (install the held-out font packages, see doc/heldout.md)")
        # families (packages, or directories for --fonts) sampled uniformly
        self.families = sorted(set(f for f, _ in self.entries))
        self.by_family = {f: [i for i, e in enumerate(self.entries) if e[0] == f]
                          for f in self.families}
        self.cache = {}

    def pick(self, rng, text):
        """A font index able to draw text (None if none can)."""
        fams = list(self.families)
        for _ in range(8):
            fam = fams[int(rng.integers(len(fams)))]
            idx = self.by_family[fam]
            i = idx[int(rng.integers(len(idx)))]
            if all(c in self.glyphs[i] for c in text):
                return i
        ok = [i for i in range(len(self.entries)) if all(c in self.glyphs[i] for c in text)]
        return ok[int(rng.integers(len(ok)))] if ok else None

    def get(self, i, size):
        key = (i, size)
        f = self.cache.get(key)
        if f is None:
            f = ImageFont.truetype(self.entries[i][1], size, layout_engine=ImageFont.Layout.BASIC)
            self.cache[key] = f
        return f


# ---- rendering ----

def draw_text(font, text, spacing, stroke):
    """Black-on-white 'L' mask of text (255 = ink) with its ink bounding box
    and the font's ascent/descent box."""
    asc, desc = font.getmetrics()
    if spacing == 0:
        w = int(font.getlength(text)) + 4 * stroke + asc
    else:
        w = int(sum(font.getlength(c) for c in text) + max(spacing, 0) * len(text)) + 4 * stroke + asc
    pad = asc // 2 + 2
    img = Image.new("L", (w + 2 * pad, asc + desc + 2 * pad), 0)
    d = ImageDraw.Draw(img)
    if spacing == 0:
        d.text((pad, pad), text, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
    else:
        x = float(pad)
        for c in text:
            d.text((round(x), pad), c, font=font, fill=255, stroke_width=stroke, stroke_fill=255)
            x += font.getlength(c) + spacing
    return img, (pad, pad, asc, desc)


def texture(rng, w, h):
    """A background variation in [-1, 1]-ish: smooth blotches, a gradient,
    or paper grain."""
    kind = rng.random()
    if kind < 0.4:  # smooth blotches: low-resolution noise scaled up
        gw, gh = max(2, w // int(rng.integers(8, 30))), max(2, h // int(rng.integers(6, 20)))
        g = rng.normal(0, 1, (gh, gw)).astype(np.float32)
        t = np.asarray(Image.fromarray(g, "F").resize((w, h), Image.BICUBIC))
    elif kind < 0.75:  # linear gradient
        ang = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = (np.cos(ang) * xx / max(w, 1) + np.sin(ang) * yy / max(h, 1)) * 2
    else:  # grain / fibres: horizontal-ish streaks
        g = rng.normal(0, 1, (h, max(2, w // 6))).astype(np.float32)
        t = np.asarray(Image.fromarray(g, "F").resize((w, h), Image.BILINEAR))
    t = t - t.mean()
    s = t.std()
    return t / s if s > 0 else t


RESAMPLE = [Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX, Image.HAMMING]


def draw_warped(rng, text, fonts, fi):
    """text drawn at a random size, spacing and weight in font fi, then
    sometimes rotated and sheared -> ('L' ink mask, size in px, the font's
    ascent/descent box as draw_text gives it)."""
    # size in px at which the font is drawn: small sizes are upscaled later
    # (soft, low-resolution glyphs), large ones downscaled
    u = rng.random()
    size = int(rng.integers(13, 22)) if u < 0.2 else int(rng.integers(22, 56))
    font = fonts.get(fi, size)
    stroke = 1 if (size >= 30 and rng.random() < 0.08) else 0
    spacing = 0
    if rng.random() < 0.12:
        spacing = rng.uniform(0.05, 0.3) * size
    elif rng.random() < 0.06:
        spacing = -rng.uniform(0.02, 0.06) * size  # tight tracking
    mask, font_box = draw_text(font, text, spacing, stroke)
    # rotation about the centre (+-3 degrees), bicubic
    if rng.random() < 0.7:
        ang = rng.uniform(-3, 3)
        mask = mask.rotate(ang, resample=Image.BICUBIC, expand=True, fillcolor=0)
    # slight shear (slanted scan), sometimes
    if rng.random() < 0.15:
        sh = rng.uniform(-0.15, 0.15)
        w, h = mask.size
        mask = mask.transform((w + int(abs(sh) * h) + 1, h), Image.AFFINE,
                              (1, sh, -abs(sh) * h if sh > 0 else 0, 0, 1, 0),
                              resample=Image.BILINEAR, fillcolor=0)
    return mask, size, font_box


def crop_line(rng, m, font_box):
    """The ink m (float, 1 = ink) cropped to a line box with random margins
    -> (ink, box height th, top margin mt, bottom margin mb, left margin ml),
    all in px; None when m holds no ink."""
    _, py, asc, desc = font_box
    ys, xs = np.nonzero(m > 0.08)
    if len(xs) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    # the line box: the font's ascent..descent box when it holds the ink (so
    # 'a' and 'A' sit at different heights, as in a real line), else the ink
    top = min(y0, py + int(asc * rng.uniform(0.0, 0.25)) if rng.random() < 0.6 else y0)
    bot = max(y1, py + asc + int(desc * rng.uniform(0.3, 1.0))) if rng.random() < 0.7 else y1
    th = bot - top
    # margins: top/bottom 3..30% of the box, left 0..35% of the height
    mt = int(th * rng.uniform(0.03, 0.30))
    mb = int(th * rng.uniform(0.03, 0.30))
    ml = int(th * rng.uniform(0.02, 0.35))
    mr = int(th * rng.uniform(0.05, 0.6))
    cx0, cy0, cx1, cy1 = x0 - ml, top - mt, x1 + mr, bot + mb
    ink = np.zeros((cy1 - cy0, cx1 - cx0), np.float32)
    sx0, sy0 = max(cx0, 0), max(cy0, 0)
    sx1, sy1 = min(cx1, m.shape[1]), min(cy1, m.shape[0])
    ink[sy0 - cy0:sy1 - cy0, sx0 - cx0:sx1 - cx0] = m[sy0:sy1, sx0:sx1]
    return ink, th, mt, mb, ml


def draw_rule(rng, ink, th, mt, mb, ml):
    """An underline, strike-through, or a table border above/below, drawn
    into ink (the crop_line box: text th px high below a top margin of mt)."""
    ph, pw = ink.shape
    kind = rng.random()
    lw = max(1, int(round(th * rng.uniform(0.03, 0.08))))
    if kind < 0.45:  # underline, in the bottom margin
        yl = min(ph - lw, mt + th + int(mb * rng.uniform(0.1, 0.7)))
    elif kind < 0.6:  # strike-through
        yl = mt + int(th * rng.uniform(0.45, 0.65))
    elif kind < 0.8:  # border above
        yl = int(mt * rng.uniform(0.0, 0.6))
    else:  # border below
        yl = ph - lw - int(mb * rng.uniform(0.0, 0.6))
    xa = int(rng.integers(0, max(1, ml + 1)))
    xb = pw if rng.random() < 0.6 else int(pw * rng.uniform(0.6, 1.0))
    ink[max(0, yl):max(0, yl) + lw, xa:xb] = np.maximum(
        ink[max(0, yl):max(0, yl) + lw, xa:xb], rng.uniform(0.6, 1.0))


def colour(rng, ink):
    """ink (1 = ink) as grey levels: background grey, ink grey with a
    contrast of at least 70, sometimes a textured background or inverted."""
    inverted = rng.random() < 0.1
    if rng.random() < 0.6:
        bg = rng.uniform(200, 255)
    else:
        bg = rng.uniform(130, 240)
    contrast = rng.uniform(70, max(71, bg - 5))
    fg = bg - contrast
    img = bg + (fg - bg) * ink
    if rng.random() < 0.3:
        ph, pw = ink.shape
        img = img + texture(rng, pw, ph) * rng.uniform(4, 18)
    if inverted:
        img = 255.0 - img
    return img


def render_one(rng, text, fonts, fi, H):
    """The rendered line as a float32 grey image of height H (any width) or
    None if it could not be drawn."""
    mask, size, font_box = draw_warped(rng, text, fonts, fi)
    cropped = crop_line(rng, np.asarray(mask, dtype=np.float32) / 255.0, font_box)
    if cropped is None:
        return None
    ink, th, mt, mb, ml = cropped
    if rng.random() < 0.12:
        draw_rule(rng, ink, th, mt, mb, ml)
    # blur at the drawn resolution, sometimes
    if rng.random() < 0.3:
        r = rng.uniform(0.3, 1.0) * size / 28.0
        blurred = Image.fromarray(np.clip(ink * 255, 0, 255).astype(np.uint8), "L")
        ink = np.asarray(blurred.filter(ImageFilter.GaussianBlur(r)), dtype=np.float32) / 255.0
    img = colour(rng, ink)
    # scale to height H keeping the aspect (PIL filters, not ocrkd's box)
    ph, pw = ink.shape
    tw = max(1, int(round(pw * H / ph)))
    res = RESAMPLE[int(rng.integers(len(RESAMPLE)))]
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.float32), "F").resize((tw, H), res)
    return np.asarray(out, dtype=np.float32)


def finish(rng, img):
    """Noise and JPEG artefacts at the final resolution -> uint8."""
    if rng.random() < 0.8:
        img = img + rng.normal(0, rng.uniform(1, 9), img.shape)
    if rng.random() < 0.08:  # salt and pepper specks
        k = rng.random(img.shape) < rng.uniform(0.002, 0.01)
        img = np.where(k, rng.choice([0.0, 255.0], img.shape), img)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    if rng.random() < 0.2:
        buf = io.BytesIO()
        Image.fromarray(out, "L").save(buf, "JPEG", quality=int(rng.integers(25, 80)))
        buf.seek(0)
        out = np.asarray(Image.open(buf).convert("L"), dtype=np.uint8)
    return out


def fit(img, H, W):
    """ocrkd's image_fit for an image already of height H: squeeze to W if
    wider, pad on the right by repeating the last column. -> (image, used)."""
    w = img.shape[1]
    if w > W:
        img = np.asarray(Image.fromarray(img, "L").resize((W, H), Image.BOX), dtype=np.uint8)
        w = W
    out = np.empty((H, W), np.uint8)
    out[:, :w] = img
    out[:, w:] = img[:, w - 1:w]
    return out, w


def sample(i, args, texts, fonts):
    rng = np.random.default_rng([args.seed, i, 0x484f])
    H, W = HEIGHT, args.width
    for attempt in range(64):
        text, kind = texts.text(rng)
        label = fold_label(text, args.alphabet)
        if not args.min_len <= len(label) <= args.max_len:
            continue
        fi = fonts.pick(rng, text)
        if fi is None:
            continue
        img = render_one(rng, text, fonts, fi, H)
        if img is None or img.shape[1] > W * args.max_squeeze:
            continue
        img = finish(rng, img)
        out, used = fit(img, H, W)
        return out, used, label, text, kind, fi
    die("sample %d: no text fits width %d after 64 tries (widen --width or lower --max-len)"
        % (i, W), 1)


def needed_chars(alphabet):
    """The characters a font must draw: the alphabet and both cases of its
    letters (a text may be drawn in another case than its label's)."""
    needed = set(alphabet)
    needed |= {c.upper() for c in alphabet if c.isalpha()}
    needed |= {c.lower() for c in alphabet if c.isalpha()}
    return needed


def list_fonts(fonts, needed):
    for (fam, p), g in zip(fonts.entries, fonts.glyphs):
        miss = "".join(sorted(needed - g))
        print("%s\t%s%s" % (fam, p, ("\tmissing: " + miss) if miss else ""))


class RenderedSet:
    """The N samples of the set: images (N, H, W) uint8, used widths, and
    per sample its label, rendered text, font index and kind."""

    def __init__(self, args, texts, fonts, sample_fn=None):
        sample_fn = sample if sample_fn is None else sample_fn
        N = args.n
        self.images = np.empty((N, HEIGHT, args.width), np.uint8)
        self.widths = np.empty(N, np.int32)
        self.font_idx = np.empty(N, np.int16)
        self.labels, self.rendered, self.kinds = [], [], []
        for i in range(N):
            img, used, label, text, kind, fi = sample_fn(i, args, texts, fonts)
            self.images[i], self.widths[i] = img, used
            self.labels.append(label)
            self.rendered.append(text)
            self.font_idx[i] = fi
            self.kinds.append(kind)


def write_h5(args, rs, texts, fonts):
    """The ocrkd dataset file, written to OUT.tmp and renamed (no partial
    file under the final name)."""
    N, H, W = args.n, HEIGHT, args.width
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    strs = h5py.string_dtype("utf-8")
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "ocrkd-dataset"
        f.attrs["version"] = np.int32(1)
        f.attrs.create("alphabet", args.alphabet, dtype=strs)
        f.attrs["height"] = np.int32(H)
        f.attrs["width"] = np.int32(W)
        f.attrs.create("generator", "data-tools/%s --n %d --seed %d --width %d "
                       "--min-len %d --max-len %d --case %s" % (PROG, N, args.seed, W, args.min_len,
                                                                args.max_len, args.case),
                       dtype=strs)
        f.attrs.create("words", texts.word_source, dtype=strs)
        f.attrs.create("fonts", "\n".join(p for _, p in fonts.entries), dtype=strs)
        kw = {"compression": "gzip", "compression_opts": args.gzip} if args.gzip else {}
        f.create_dataset("images", data=rs.images, chunks=(min(N, 256), H, W), **kw)
        f.create_dataset("labels", data=np.array(rs.labels, dtype=object), dtype=strs)
        f.create_dataset("widths", data=rs.widths)
        # not read by ocrkd: what was drawn (with its case), in which font
        # (an index into the "fonts" attribute's lines) and its kind
        f.create_dataset("texts", data=np.array(rs.rendered, dtype=object), dtype=strs)
        f.create_dataset("font_index", data=rs.font_idx)
        f.create_dataset("kinds", data=np.array(rs.kinds, dtype=object), dtype=strs)
    os.replace(tmp, args.out)


def write_pngs(png_dir, rs):
    """DIR/NNNNNN.png of each image's used width, and DIR/labels.txt."""
    os.makedirs(png_dir, exist_ok=True)
    with open(os.path.join(png_dir, "labels.txt"), "w", encoding="utf-8") as lf:
        for i in range(len(rs.labels)):
            name = "%06d.png" % i
            Image.fromarray(rs.images[i, :, :rs.widths[i]], "L").save(os.path.join(png_dir, name))
            lf.write("%s\t%s\n" % (name, rs.labels[i]))


def report(args, rs, texts, fonts, seconds):
    nk = {k: rs.kinds.count(k) for k in ("word", "number", "code")}
    nu = sum(1 for t in rs.rendered if any(c.isupper() for c in t))
    sys.stderr.write(
        "%s: %d images %dx%d in %.1f s -> %s%s\n"
        "  %d words (%d distinct available from %s), %d numbers, %d codes; "
        "%d with capitals; %d fonts in %d families; mean used width %.1f\n"
        % (PROG, args.n, HEIGHT, args.width, seconds, args.out,
           (" and " + args.png_dir) if args.png_dir else "", nk["word"], len(texts.words),
           texts.word_source, nk["number"], nk["code"], nu, len(fonts.entries),
           len(fonts.families), rs.widths.mean()))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    texts = TextSource(args)
    needed = needed_chars(args.alphabet)
    fonts = Fonts(args, sorted(needed))
    if args.list_fonts:
        list_fonts(fonts, needed)
        return 0
    t0 = time.time()
    rs = RenderedSet(args, texts, fonts)
    write_h5(args, rs, texts, fonts)
    if args.png_dir:
        write_pngs(args.png_dir, rs)
    if not args.quiet:
        report(args, rs, texts, fonts, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
