#!/usr/bin/python3
"""tesseract_eval.py - Tesseract as a reference row beside ocrkd's models.

Reads an ocrkd dataset (FILE.h5) or a PNG directory with labels.txt
(PATH<TAB>LABEL, as heldout_render.py --png-dir writes), runs
`tesseract - stdout --psm 7` on each image upscaled (3x by default, PIL
bicubic), normalizes the output (strip; lower case when the alphabet has no
capitals; characters outside the alphabet dropped) and prints one JSON line
in the style of `ocrkd eval --json`:

  {"model":"tesseract","data":FILE,"n":N,"word_acc":..,"cer":..,"ned":..,"img_per_s":..}

The metrics are those of src/train/evaluate.c: word_acc = exact matches / N,
cer = total edit distance / total label characters, ned = 1 - mean of
edit distance / max(len(prediction), len(label)) (0 for two empty strings).
img_per_s is N over the wall time with --jobs Tesseract processes at once.
Not for: ocrkd's own models (`ocrkd eval --json`), or tuning Tesseract beyond
--psm, --lang, --scale and --whitelist.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

DEFAULT_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def die(msg, code=2):
    sys.stderr.write("tesseract_eval.py: %s\n" % msg)
    sys.exit(code)


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        ai = a[i - 1]
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j - 1] + (ai != b[j - 1]), prev[j] + 1, cur[j - 1] + 1)
        prev = cur
    return prev[len(b)]


def normalize(text, alphabet):
    text = text.strip()
    if not any(c.isupper() for c in alphabet):
        text = text.lower()
    return "".join(c for c in text if c in alphabet)


class Counts:
    def __init__(self):
        self.n = self.correct = self.edits = self.chars = 0
        self.ned = 0.0

    def add(self, pred, label):
        ed = edit_distance(pred, label)
        longest = max(len(pred), len(label))
        self.n += 1
        self.correct += ed == 0
        self.edits += ed
        self.chars += len(label)
        self.ned += ed / longest if longest else 0.0

    def result(self):
        n = self.n
        return {
            "word_acc": self.correct / n if n else 0.0,
            "cer": self.edits / self.chars if self.chars else float(self.edits > 0),
            "ned": 1.0 - self.ned / n if n else 0.0,
        }


def load_h5(path, limit):
    try:
        import h5py
        import numpy as np  # noqa: F401 - h5py needs it
    except ImportError as e:
        die("reading .h5 needs python3-h5py and python3-numpy (%s)" % e)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        die("%s: cannot open as HDF5: %s" % (path, e))
    with f:
        if f.attrs.get("format") not in ("ocrkd-dataset", b"ocrkd-dataset"):
            die("%s: not an ocrkd dataset (format attribute)" % path)
        if "labels" not in f:
            die("%s: has no /labels (an unlabeled file cannot be evaluated)" % path)
        alpha = f.attrs.get("alphabet", DEFAULT_ALPHABET)
        alpha = alpha.decode() if isinstance(alpha, bytes) else str(alpha)
        n = f["images"].shape[0]
        if limit:
            n = min(n, limit)
        images = f["images"][:n]
        widths = f["widths"][:n] if "widths" in f else [images.shape[2]] * n
        labels = [s.decode() if isinstance(s, bytes) else str(s) for s in f["labels"][:n]]
    items = [(images[i][:, :max(1, int(widths[i]))], labels[i]) for i in range(n)]
    return items, alpha


def load_png_dir(path, limit):
    lf = os.path.join(path, "labels.txt")
    if not os.path.isfile(lf):
        die("%s: no labels.txt (PATH<TAB>LABEL lines)" % path)
    items = []
    with open(lf, encoding="utf-8") as f:
        for k, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            if "\t" not in line:
                die("%s:%d: not PATH<TAB>LABEL" % (lf, k))
            p, lab = line.split("\t", 1)
            items.append((p if os.path.isabs(p) else os.path.join(path, p), lab))
            if limit and len(items) >= limit:
                break
    return items, None


def png_bytes(item, scale):
    from PIL import Image
    src, _ = item
    if isinstance(src, str):
        try:
            im = Image.open(src).convert("L")
        except OSError as e:
            die("%s: cannot read image: %s" % (src, e), 1)
    else:
        im = Image.fromarray(src, "L")
    if scale != 1:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                       Image.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="tesseract_eval.py",
        description="Word accuracy, CER and 1-NED of Tesseract (--psm 7) on an ocrkd dataset "
        "or a PNG directory with labels.txt; prints one JSON line.")
    p.add_argument("--data", required=True, help="ocrkd dataset FILE.h5 or a PNG directory")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N images only")
    p.add_argument("--alphabet", help="label alphabet (default: the file's, or %s for a "
                   "PNG directory)" % DEFAULT_ALPHABET)
    p.add_argument("--scale", type=float, default=3.0, help="upscaling factor (default 3)")
    p.add_argument("--psm", type=int, default=7, help="Tesseract page segmentation mode "
                   "(default 7: a single text line)")
    p.add_argument("--lang", default="eng", help="Tesseract language (default eng)")
    p.add_argument("--whitelist", action="store_true",
                   help="restrict Tesseract to the alphabet (tessedit_char_whitelist; "
                   "with capitals added when labels are lower case)")
    p.add_argument("--jobs", type=int, default=2, help="Tesseract processes at once (default 2)")
    p.add_argument("--predictions", metavar="FILE",
                   help="also write INDEX<TAB>LABEL<TAB>PREDICTION lines to FILE")
    a = p.parse_args(argv)
    if a.limit < 0 or a.jobs < 1 or a.scale <= 0:
        die("--limit must be >= 0, --jobs >= 1 and --scale > 0")
    return a


def find_tesseract(lang):
    """The tesseract executable, once it and PIL and lang's data are known
    to be there (exit code 3 for a missing tesseract or language)."""
    exe = shutil.which("tesseract")
    if not exe:
        die("tesseract is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)", 3)
    try:
        from PIL import Image  # noqa: F401
    except ImportError:
        die("needs python3-pil")
    langs = subprocess.run([exe, "--list-langs"], capture_output=True, text=True)
    if lang not in (langs.stdout + langs.stderr).split():
        die("tesseract has no '%s' language data (Debian: tesseract-ocr-%s)" % (lang, lang), 3)
    return exe


def load_items(data, limit):
    """[(image array or PNG path, label)] and the file's alphabet (None for
    a PNG directory)."""
    if os.path.isdir(data):
        return load_png_dir(data, limit)
    if os.path.isfile(data):
        return load_h5(data, limit)
    die("--data %s: no such file or directory" % data)


def tesseract_command(exe, a, alphabet):
    cmd = [exe, "-", "stdout", "--psm", str(a.psm), "-l", a.lang]
    if a.whitelist:
        wl = alphabet
        # labels folded to lower case: Tesseract may still read capitals
        if not any(c.isupper() for c in alphabet):
            wl += "".join(c.upper() for c in alphabet if c.isalpha())
        cmd += ["-c", "tessedit_char_whitelist=" + wl]
    return cmd


def run_tesseract(cmd, items, scale, jobs):
    """Tesseract's raw output of each item, in order, and the wall seconds."""
    # one thread per process: the --jobs processes share the cores
    env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def run(k):
        r = subprocess.run(cmd, input=png_bytes(items[k], scale), capture_output=True, env=env)
        if r.returncode != 0:
            die("tesseract failed on image %d: %s" % (k, r.stderr.decode(errors="replace")[:300]), 1)
        return r.stdout.decode("utf-8", errors="replace")

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        raw = list(ex.map(run, range(len(items))))
    return raw, time.time() - t0


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    exe = find_tesseract(a.lang)
    items, alpha = load_items(a.data, a.limit)
    alphabet = a.alphabet or alpha or DEFAULT_ALPHABET
    if not items:
        die("%s: no images" % a.data)
    raw, secs = run_tesseract(tesseract_command(exe, a, alphabet), items, a.scale, a.jobs)
    c = Counts()
    rows = []
    for k, ((_, label), out) in enumerate(zip(items, raw)):
        pred = normalize(out, alphabet)
        c.add(pred, label)
        rows.append("%d\t%s\t%s\n" % (k, label, pred))
    if a.predictions:
        with open(a.predictions, "w", encoding="utf-8") as f:
            f.writelines(rows)
    r = c.result()
    print(json.dumps({"model": "tesseract", "data": a.data, "n": c.n,
                      "word_acc": round(r["word_acc"], 6), "cer": round(r["cer"], 6),
                      "ned": round(r["ned"], 6),
                      "img_per_s": round(c.n / secs, 1) if secs > 0 else 0.0},
                     separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
