#!/usr/bin/python3
"""errors_by_font.py - words missed by font family on a held-out test set.

Reads the `ocrkd eval --errors FILE.tsv` table of one or more models on a set
that heldout_render.py or heldout_pango.py wrote (their /font_index and
`fonts` attribute name the font of every image) and prints, per family
(the font file name, without its extension, up to its first '-', '_' or
space), the number of images
and the share each model missed, worst first (by the first model).

    bin/ocrkd eval --model runs/demo-teacher/best.h5 --data data/demo-pango/test.h5 \\
        --errors teacher.tsv
    python3 data-tools/errors_by_font.py data/demo-pango/test.h5 teacher.tsv [student.tsv ...]

Only the rows of the errors table whose data column is the set (or, when the
table names one set, all its rows) count. Exit 2 on bad arguments or input,
with the file and the problem named.
"""
import argparse
import collections
import os
import re
import sys

PROG = "errors_by_font.py"


def die(msg):
    print("%s: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(2)


def family(path):
    """The typeface of a font file: its name without the extension up to the
    first '-', '_' or space (PTSans-Bold.ttf -> PTSans, cmunti.otf -> cmunti)."""
    return re.split(r"[-_ ]", os.path.splitext(os.path.basename(path))[0])[0]


def read_set(path):
    try:
        import h5py
    except ImportError:
        die("needs python3-h5py")
    try:
        with h5py.File(path, "r") as f:
            if "font_index" not in f or "fonts" not in f.attrs:
                die("%s: no /font_index or `fonts` attribute (not a heldout_render.py / "
                    "heldout_pango.py set)" % path)
            fonts = f.attrs["fonts"]
            fonts = (fonts.decode() if isinstance(fonts, bytes) else str(fonts)).split("\n")
            index = [int(i) for i in f["font_index"][:]]
    except OSError as e:
        die("%s: cannot read: %s" % (path, e))
    for n, i in enumerate(index):
        if not 0 <= i < len(fonts):
            die("%s: /font_index[%d] = %d outside the %d fonts" % (path, n, i, len(fonts)))
    return [family(fonts[i]) for i in index]


def read_errors(path, set_path, n):
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError as e:
        die("%s: cannot read: %s" % (path, e.strerror))
    if not lines or not lines[0].startswith("data\tindex"):
        die("%s: not an `ocrkd eval --errors` table (no data/index header)" % path)
    rows = [ln.split("\t") for ln in lines[1:] if ln]
    names = {r[0] for r in rows}
    wrong = []
    for k, r in enumerate(rows, start=2):
        if len(r) < 2 or not r[1].isdigit():
            die("%s:%d: malformed row" % (path, k))
        if len(names) > 1 and os.path.realpath(r[0]) != os.path.realpath(set_path):
            continue
        i = int(r[1])
        if i >= n:
            die("%s:%d: index %d outside the set's %d images (another set's errors?)"
                % (path, k, i, n))
        wrong.append(i)
    return wrong


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("set", help="the held-out test set (.h5)")
    ap.add_argument("errors", nargs="+", help="`ocrkd eval --errors` tables, one per model")
    a = ap.parse_args()
    fams = read_set(a.set)
    total = collections.Counter(fams)
    cols = []
    for e in a.errors:
        c = collections.Counter(fams[i] for i in read_errors(e, a.set, len(fams)))
        cols.append(c)
    print("%-28s %6s  %s" % ("family", "images", "  ".join(
        "%8s" % os.path.splitext(os.path.basename(e))[0][:8] for e in a.errors)))
    for fam in sorted(total, key=lambda f: (-cols[0][f] / total[f], f)):
        print("%-28s %6d  %s" % (fam, total[fam], "  ".join(
            "%7.1f%%" % (100.0 * c[fam] / total[fam]) for c in cols)))
    print("%-28s %6d  %s" % ("all", len(fams), "  ".join(
        "%7.1f%%" % (100.0 * sum(c.values()) / len(fams)) for c in cols)))


if __name__ == "__main__":
    main()
