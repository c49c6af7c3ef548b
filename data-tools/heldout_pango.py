#!/usr/bin/python3
"""heldout_pango.py - a second held-out OCR test set, from a third renderer.

ocrkd trains on data-tools/synth.c (its own FreeType rasteriser and layout,
the DEFAULT_FONTS packages, wamerican's words); heldout_render.py tests on
PIL's rasteriser with fifteen other font packages. This tool renders with
Pango and Cairo (HarfBuzz shaping and kerning, Cairo's antialiasing and
hinting, as GTK applications and Tesseract's text2image draw text) in a third
set of font packages that neither of the other two uses (PANGO_FONTS below),
so that a model's figures on it say how it reads text from a renderer and
fonts it has never seen.

Per image: a text from heldout_render.py's source (held-out words in lower,
Capitalised or UPPER case, numbers, short codes), a font, a Cairo hint style
and antialiasing, drawn either straight at the final height (hinted pixels,
as on a screen) or at 2-4x and reduced by area averaging; sometimes letter
spacing, a Pango underline or strike-through, an outline-stroked faux bold, a
horizontal stretch, a shear, a rotation within +-2.5 degrees; ink and paper
grey levels, a gradient or a blotchy paper, inversion; Gaussian blur; then
heldout_render.py's noise and JPEG step, and ocrkd's fit to the width.
Same arguments and packages -> the same bytes (--seed). doc/heldout.md.
Not for training data.
"""
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import heldout_render as hr  # noqa: E402  (the text source, checks and writer)

hr.PROG = "heldout_pango.py"

# Packages in neither synth.c's DEFAULT_FONTS nor heldout_render.py's
# HELDOUT_FONTS (nor clones of them: TeX Gyre is URW's, Arkpandora Vera's,
# Noto Mono Noto's): regular, bold and italic or light styles.
_F = [
    ("fonts-paratype", "/usr/share/fonts/truetype/paratype/",
     ["PTS55F.ttf", "PTS56F.ttf", "PTS75F.ttf", "PTF55F.ttf", "PTF56F.ttf", "PTF75F.ttf",
      "PTM55F.ttf", "PTC55F.ttf"]),
    ("fonts-vollkorn", "/usr/share/fonts/truetype/vollkorn/",
     ["Vollkorn-Regular.ttf", "Vollkorn-Italic.ttf", "Vollkorn-Bold.ttf"]),
    ("fonts-inter", "/usr/share/fonts/opentype/inter/",
     ["Inter-Regular.otf", "Inter-Italic.otf", "Inter-Bold.otf", "Inter-Light.otf"]),
    ("fonts-oldstandard", "/usr/share/fonts/truetype/fonts-oldstandard/",
     ["OldStandard-Regular.ttf", "OldStandard-Italic.ttf", "OldStandard-Bold.ttf"]),
    ("fonts-play", "/usr/share/fonts/truetype/play/", ["Play-Regular.ttf", "Play-Bold.ttf"]),
    ("fonts-goudybookletter", "/usr/share/fonts/opentype/sortsmill/",
     ["GoudyBookletter1911.otf"]),
    ("fonts-hermit", "/usr/share/fonts/truetype/hermit/",
     ["Hermit-medium.otf", "Hermit-bold.otf", "Hermit-light.otf"]),
    ("fonts-league-mono", "/usr/share/fonts/opentype/league-mono/",
     ["LeagueMono-Regular.otf", "LeagueMono-Bold.otf", "LeagueMono-NarrowRegular.otf"]),
    ("fonts-yanone-kaffeesatz", "/usr/share/fonts/opentype/yanone-kaffeesatz/",
     ["YanoneKaffeesatz-Regular.otf", "YanoneKaffeesatz-Bold.otf", "YanoneKaffeesatz-Light.otf"]),
    ("fonts-sora", "/usr/share/fonts/opentype/sora/",
     ["Sora-Regular.otf", "Sora-Bold.otf", "Sora-Light.otf"]),
    ("fonts-jura", "/usr/share/fonts/opentype/jura/",
     ["Jura-Regular.otf", "Jura-Bold.otf", "Jura-Medium.otf"]),
    ("fonts-comfortaa", "/usr/share/fonts/truetype/comfortaa/",
     ["Comfortaa-Regular.ttf", "Comfortaa-Bold.ttf", "Comfortaa-Light.ttf"]),
    ("fonts-manrope", "/usr/share/fonts/truetype/manrope/",
     ["Manrope-Regular.ttf", "Manrope-Bold.ttf", "Manrope-Light.ttf"]),
    ("fonts-cmu", "/usr/share/fonts/truetype/cmu/",
     ["cmunrm.ttf", "cmunbx.ttf", "cmunti.ttf", "cmunss.ttf", "cmunsx.ttf", "cmuntt.ttf"]),
    ("fonts-mplus", "/usr/share/fonts/opentype/mplus/",
     ["Mplus1-Regular.otf", "Mplus2-Bold.otf", "MplusCodeLatin50-Regular.otf"]),
    ("fonts-3270", "/usr/share/fonts/truetype/3270/",
     ["3270-Regular.ttf", "3270SemiCondensed-Regular.ttf"]),
]
PANGO_FONTS = sorted((pkg, d + f) for pkg, d, files in _F for f in files)


class PangoFonts:
    """Pango descriptions of the chosen font files. fontconfig is pointed at
    a directory of links to exactly these files, so a description resolves
    to its file and nothing else (no fallback to a training font)."""

    def __init__(self, fonts):
        self.tmp = tempfile.TemporaryDirectory(prefix="heldout_pango.")
        d = os.path.join(self.tmp.name, "fonts")
        os.makedirs(d)
        for i, (_, p) in enumerate(fonts.entries):
            os.symlink(p, os.path.join(d, "%04d%s" % (i, os.path.splitext(p)[1])))
        conf = os.path.join(self.tmp.name, "fonts.conf")
        with open(conf, "w") as f:
            f.write('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
                    "<fontconfig><dir>%s</dir><cachedir>%s</cachedir></fontconfig>\n"
                    % (d, os.path.join(self.tmp.name, "cache")))
        os.environ["FONTCONFIG_FILE"] = conf
        try:
            import gi
            gi.require_version("Pango", "1.0")
            gi.require_version("PangoCairo", "1.0")
            from gi.repository import Pango, PangoCairo
            import cairo
        except (ImportError, ValueError) as e:
            hr.die("needs python3-gi, python3-gi-cairo and gir1.2-pango-1.0 (%s)" % e)
        self.Pango, self.PangoCairo, self.cairo = Pango, PangoCairo, cairo
        faces = {}
        for fam in PangoCairo.FontMap.get_default().list_families():
            for face in fam.list_faces():
                faces[(fam.get_name(), face.get_face_name())] = face.describe()
        # family and style of every file's first face, in one fc-query call
        paths = [p for _, p in fonts.entries]
        q = subprocess.run(["fc-query", "-f", "%{index}|%{family[0]}|%{style[0]}|%{file}\\n"]
                           + paths, capture_output=True, text=True)
        names = {}
        for line in q.stdout.splitlines():
            parts = line.split("|", 3)
            if len(parts) == 4 and parts[0] == "0":
                names[parts[3]] = (parts[1], parts[2])
        self.desc = []
        for p in paths:
            if p not in names:
                hr.die("fc-query %s failed: %s" % (p, q.stderr.strip() or "no face 0 listed"))
            fam, style = names[p]
            desc = faces.get((fam, style))
            if desc is None:
                desc = Pango.FontDescription.from_string("%s %s" % (fam, style))
            self.desc.append(desc)


def gaussian_blur(img, sigma):
    """Separable Gaussian blur, edges repeated."""
    r = max(1, int(3 * sigma + 0.5))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k /= k.sum()
    h, w = img.shape
    p = np.pad(img, ((0, 0), (r, r)), mode="edge")
    img = sum(k[j] * p[:, j:j + w] for j in range(2 * r + 1))
    p = np.pad(img, ((r, r), (0, 0)), mode="edge")
    return sum(k[j] * p[j:j + h, :] for j in range(2 * r + 1))


def box_weights(n, m):
    """m x n: output cell j averages input [j n/m, (j+1) n/m) by overlap."""
    e = np.linspace(0, n, m + 1)
    i = np.arange(n)
    ov = np.minimum(e[1:, None], i[None, :] + 1) - np.maximum(e[:-1, None], i[None, :])
    return (np.maximum(ov, 0) / (e[1:] - e[:-1])[:, None]).astype(np.float32)


def area_resize(img, th, tw):
    """Area-average img (h, w) to (th, tw): exact box integration."""
    return box_weights(img.shape[0], th) @ img @ box_weights(img.shape[1], tw).T


def paper(rng, h, w):
    """Background grey levels: flat, a gradient, or blotchy paper."""
    base = rng.uniform(150, 255)
    u = rng.random()
    if u < 0.55:
        return np.full((h, w), base, np.float32)
    if u < 0.8:
        a = rng.uniform(-50, 50)
        t = np.linspace(0, 1, w if rng.random() < 0.6 else h, dtype=np.float32)
        g = base + a * (t - 0.5)
        return np.broadcast_to(g[None, :] if g.size == w else g[:, None], (h, w)).astype(np.float32)
    gh, gw = max(2, h // 6), max(2, w // 6)
    grid = rng.normal(0, rng.uniform(6, 20), (gh, gw)).astype(np.float32)
    return base + area_resize(np.kron(grid, np.ones((6, 6), np.float32))[:h + 6, :w + 6], h, w)


def render_pango(rng, text, fonts, fi, H, pf):
    """Float32 grey image of height H (any width), or None."""
    Pango, PangoCairo, cairo = pf.Pango, pf.PangoCairo, pf.cairo
    direct = rng.random() < 0.5
    scale = 1.0 if direct else rng.uniform(2.0, 4.0)
    px = rng.uniform(0.52, 0.80) * H * scale  # em size; the line box is ~1.2 em
    n = len(text)
    sw, sh = int(px * (1.2 * n + 3) + 16), int(px * 2.4 + 16)
    surf = cairo.ImageSurface(cairo.FORMAT_A8, sw, sh)
    ctx = cairo.Context(surf)
    fo = cairo.FontOptions()
    fo.set_antialias(cairo.ANTIALIAS_NONE if direct and rng.random() < 0.1
                     else cairo.ANTIALIAS_GRAY)
    fo.set_hint_style([cairo.HINT_STYLE_NONE, cairo.HINT_STYLE_SLIGHT, cairo.HINT_STYLE_MEDIUM,
                       cairo.HINT_STYLE_FULL][int(rng.integers(4))])
    fo.set_hint_metrics(cairo.HINT_METRICS_ON if rng.random() < 0.5 else cairo.HINT_METRICS_OFF)
    layout = PangoCairo.create_layout(ctx)
    PangoCairo.context_set_font_options(layout.get_context(), fo)
    desc = pf.desc[fi].copy()
    desc.set_absolute_size(px * Pango.SCALE)
    layout.set_font_description(desc)
    attrs = Pango.AttrList()
    if rng.random() < 0.25:
        attrs.insert(Pango.attr_letter_spacing_new(int(rng.uniform(-0.04, 0.25) * px * Pango.SCALE)))
    u = rng.random()
    if u < 0.06:
        attrs.insert(Pango.attr_underline_new(Pango.Underline.SINGLE))
    elif u < 0.09:
        attrs.insert(Pango.attr_strikethrough_new(True))
    layout.set_attributes(attrs)
    layout.set_text(text, -1)
    ink, logical = layout.get_pixel_extents()
    if logical.width <= 0 or ink.width <= 0:
        return None
    # affine: stretch, shear, rotation about the line's centre
    sx = rng.uniform(0.85, 1.2) if rng.random() < 0.35 else 1.0
    shear = rng.uniform(-0.25, 0.25) if rng.random() < 0.2 else 0.0
    ang = np.radians(rng.uniform(-2.5, 2.5)) if rng.random() < 0.5 else 0.0
    cx, cy = logical.x + logical.width / 2.0, logical.y + logical.height / 2.0
    m = cairo.Matrix(1, 0, 0, 1, sw / 2.0, sh / 2.0)
    m = cairo.Matrix.init_rotate(ang).multiply(m)
    m = cairo.Matrix(sx, 0, -shear, 1, 0, 0).multiply(m)
    m = cairo.Matrix(1, 0, 0, 1, -cx, -cy).multiply(m)
    ctx.set_matrix(m)
    PangoCairo.update_layout(ctx, layout)
    ctx.move_to(0, 0)
    if rng.random() < 0.12:  # faux bold: fill and stroke the outline
        PangoCairo.layout_path(ctx, layout)
        ctx.set_line_width(px * rng.uniform(0.02, 0.06))
        ctx.stroke_preserve()
        ctx.fill()
    else:
        PangoCairo.show_layout(ctx, layout)
    surf.flush()
    a = np.ndarray((sh, surf.get_stride()), np.uint8, surf.get_data())[:, :sw]
    a = a.astype(np.float32) / 255.0
    cols = np.nonzero(a.max(axis=0) > 0.1)[0]
    if cols.size == 0:
        return None
    # rows: the transformed logical box (ascent to descent), so that lower
    # case is not blown up to capital height; columns: the ink
    corners = [m.transform_point(x, y) for x in (logical.x, logical.x + logical.width)
               for y in (logical.y, logical.y + logical.height)]
    ys = [p[1] for p in corners]
    lh = logical.height
    top = int(np.floor(min(ys) + rng.uniform(-0.05, 0.15) * lh))
    bot = int(np.ceil(max(ys) + rng.uniform(-0.08, 0.15) * lh))
    left = int(cols[0] - rng.uniform(0.0, 0.5) * px)
    right = int(cols[-1] + 1 + rng.uniform(0.0, 0.5) * px)
    top, left = max(0, top), max(0, left)
    bot, right = min(sh, bot), min(sw, right)
    if bot - top < 4 or right - left < 2:
        return None
    ink = a[top:bot, left:right]
    h, w = ink.shape
    bg = paper(rng, h, w)
    fg = rng.uniform(0, 90)
    if bg.mean() - fg < 60:
        fg = max(0.0, float(bg.mean()) - 60)
    img = bg * (1 - ink) + fg * ink
    if rng.random() < 0.12:
        img = 255.0 - img
    tw = max(1, int(round(w * H / h)))
    if h != H:  # drawn at 2-4x, or a direct line box a pixel off the height
        img = area_resize(img, H, tw)
    if rng.random() < 0.3:
        img = gaussian_blur(img, rng.uniform(0.3, 0.9))
    return img.astype(np.float32)


def main(argv=None):
    args = hr.parse_args(sys.argv[1:] if argv is None else argv,
                         description="Renders a held-out ocrkd test set with Pango/Cairo in font "
                         "packages neither ocrkd-synth nor heldout_render.py uses (doc/heldout.md).")
    texts = hr.TextSource(args)
    needed = hr.needed_chars(args.alphabet)
    fonts = hr.Fonts(args, sorted(needed), defaults=PANGO_FONTS)
    if args.list_fonts:
        hr.list_fonts(fonts, needed)
        return 0
    pf = PangoFonts(fonts)

    def sample(i, args, texts, fonts):
        rng = np.random.default_rng([args.seed, i, 0x5061])
        H, W = hr.HEIGHT, args.width
        for _ in range(64):
            text, kind = texts.text(rng)
            label = hr.fold_label(text, args.alphabet)
            if not args.min_len <= len(label) <= args.max_len:
                continue
            fi = fonts.pick(rng, text)
            if fi is None:
                continue
            img = render_pango(rng, text, fonts, fi, H, pf)
            if img is None or img.shape[1] > W * args.max_squeeze:
                continue
            out, used = hr.fit(hr.finish(rng, img), H, W)
            return out, used, label, text, kind, fi
        hr.die("sample %d: no text fits width %d after 64 tries (widen --width or lower "
               "--max-len)" % (i, W), 1)

    t0 = time.time()
    rs = hr.RenderedSet(args, texts, fonts, sample_fn=sample)
    hr.write_h5(args, rs, texts, fonts)
    if args.png_dir:
        hr.write_pngs(args.png_dir, rs)
    if not args.quiet:
        hr.report(args, rs, texts, fonts, time.time() - t0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
