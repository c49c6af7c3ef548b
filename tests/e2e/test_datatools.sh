#!/bin/sh
# test_datatools.sh - the Python data tools end to end: heldout_render.py
# (determinism, file format accepted by ocrkd info, labels within the
# alphabet and lengths, capitals drawn but labels folded, words not in the
# training list, no font from ocrkd-synth's training directories, --png-dir),
# tesseract_eval.py (metrics as src/train/evaluate.c; a run on 20 images when
# tesseract is installed, else skipped) and plot_run.py (a PNG from synthetic
# metrics, errors on a missing run).
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HR=$ROOT/data-tools/heldout_render.py
TE=$ROOT/data-tools/tesseract_eval.py
PR=$ROOT/data-tools/plot_run.py

if ! "$PY" -c 'import numpy, h5py, PIL, matplotlib' 2>"$TMP/err"; then
  fail "python3-numpy, python3-h5py, python3-pil and python3-matplotlib are needed (.ci/deps.sh installs them): $(tail -n 1 "$TMP/err")"
  e2e_end; exit 1
fi

# digest FILE: a hash of /images, /labels and /widths
digest() { dataset_digest "$1"; }

# ---- heldout_render.py: usage and errors ----
expect_code 0 "heldout_render --help" -- "$PY" "$HR" --help
expect_code 2 "heldout_render without --out" -- "$PY" "$HR" --n 5
expect_code 2 "heldout_render --n 0" -- "$PY" "$HR" --out "$TMP/x.h5" --n 0
expect_code 2 "heldout_render with a missing font path" -- "$PY" "$HR" --out "$TMP/x.h5" --n 5 --fonts /nonexistent.ttf
expect_code 2 "heldout_render with a missing word list" -- "$PY" "$HR" --out "$TMP/x.h5" --n 5 --words /nonexistent.txt
if [ ! -e "$TMP/x.h5" ]; then pass "no output left by the failed runs"; else fail "a failed run left $TMP/x.h5"; fi

# ---- determinism ----
expect_code 0 "heldout_render run A (seed 3)" -- "$PY" "$HR" --out "$TMP/a.h5" --n 160 --seed 3 --quiet
expect_code 0 "heldout_render run B (same args)" -- "$PY" "$HR" --out "$TMP/b.h5" --n 160 --seed 3 --quiet --png-dir "$TMP/png"
expect_code 0 "heldout_render run C (seed 4)" -- "$PY" "$HR" --out "$TMP/c.h5" --n 160 --seed 4 --quiet
if [ "$(digest "$TMP/a.h5")" = "$(digest "$TMP/b.h5")" ]; then pass "same seed -> identical images, labels, widths"; else fail "same seed differs"; fi
if [ "$(digest "$TMP/a.h5")" != "$(digest "$TMP/c.h5")" ]; then pass "another seed differs"; else fail "another seed gives the same data"; fi
expect_code 0 "ocrkd info accepts the held-out file" -- "$BIN/ocrkd" info "$TMP/a.h5"
expect_grep "samples +160" "$TMP/out" "ocrkd info counts 160 samples"
expect_grep "32 x 128" "$TMP/out" "ocrkd info: 32 x 128 images"

# ---- contents (contents.py: also run on heldout_pango.py's output below) ----
cat >"$TMP/contents.py" <<'EOF'
import sys, h5py, numpy as np
A = "0123456789abcdefghijklmnopqrstuvwxyz"
def strs(d): return [s.decode() if isinstance(s, bytes) else s for s in d[:]]
bad = []
with h5py.File(sys.argv[1], "r") as f:
    at = f.attrs
    if at["format"] not in ("ocrkd-dataset", b"ocrkd-dataset"): bad.append("format %r" % at["format"])
    if not isinstance(at["version"], (int, np.integer)) or int(at["version"]) != 1: bad.append("version %r" % at["version"])
    alpha = at["alphabet"].decode() if isinstance(at["alphabet"], bytes) else at["alphabet"]
    if alpha != A: bad.append("alphabet %r" % alpha)
    if (int(at["height"]), int(at["width"])) != (32, 128): bad.append("height/width")
    im = f["images"]
    if im.dtype != np.uint8 or im.shape != (160, 32, 128): bad.append("images %s %s" % (im.dtype, im.shape))
    if im.chunks is None or im.chunks[1:] != (32, 128): bad.append("images not chunked along N: %s" % (im.chunks,))
    img, lab, w = im[:], strs(f["labels"]), f["widths"][:]
    texts, kinds = strs(f["texts"]), strs(f["kinds"])
    if f["widths"].dtype != np.int32: bad.append("widths dtype %s" % f["widths"].dtype)
for i, (l, t) in enumerate(zip(lab, texts)):
    if not 1 <= len(l) <= 11: bad.append("label %d length %d" % (i, len(l)))
    if any(c not in A for c in l): bad.append("label %d %r outside the alphabet" % (i, l))
    if t.lower() != l: bad.append("label %d %r is not the text %r folded" % (i, l, t))
    if not 1 <= w[i] <= 128: bad.append("width %d = %d" % (i, w[i]))
    elif (img[i, :, w[i]:] != img[i, :, w[i] - 1:w[i]]).any(): bad.append("image %d not padded by its last column" % i)
    if img[i].std() < 5: bad.append("image %d nearly blank" % i)
caps = sum(any(c.isupper() for c in t) for t in texts)
if not 15 <= caps <= 100: bad.append("%d of 160 texts with capitals (mixed case wanted)" % caps)
nwords = kinds.count("word")
if not 100 <= nwords <= 150 or kinds.count("number") < 8: bad.append("kinds %s" % {k: kinds.count(k) for k in set(kinds)})
train = set(x.strip().lower() for x in open("/usr/share/dict/american-english", encoding="utf-8", errors="replace"))
inside = [l for l, k in zip(lab, kinds) if k == "word" and l in train]
if inside: bad.append("words of the training list: %s" % inside[:5])
if len(set(lab)) < 120: bad.append("only %d distinct labels" % len(set(lab)))
print("\n".join(bad) if bad else "ok")
EOF
"$PY" "$TMP/contents.py" "$TMP/a.h5" >"$TMP/check" 2>&1
if [ "$(cat "$TMP/check")" = ok ]; then pass "contents: format, labels folded and within alphabet/lengths, padding, case mix, words not in wamerican"; else fail "contents:"; sed 's/^/    /' "$TMP/check" | head -n 20; fi

# lengths and case options
expect_code 0 "heldout_render --case upper --min-len 3 --max-len 6" -- "$PY" "$HR" --out "$TMP/u.h5" --n 60 --seed 5 --quiet --case upper --min-len 3 --max-len 6
"$PY" - "$TMP/u.h5" >"$TMP/check" 2>&1 <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    lab = [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
    texts = [s.decode() if isinstance(s, bytes) else s for s in f["texts"][:]]
    kinds = [s.decode() if isinstance(s, bytes) else s for s in f["kinds"][:]]
bad = [l for l in lab if not 3 <= len(l) <= 6 or l != l.lower()]
bad += [t for t, k in zip(texts, kinds) if k == "word" and t != t.upper()]
print("bad: %s" % bad[:5] if bad else "ok")
EOF
if [ "$(cat "$TMP/check")" = ok ]; then pass "--case upper draws capitals, labels lower case, lengths 3..6"; else fail "--case upper: $(cat "$TMP/check")"; fi

# ---- fonts: none in ocrkd-synth's default (training) font directories ----
# DEFAULT_FONTS of data-tools/synth.c, read now (it is being extended)
awk '/#define DEFAULT_FONTS/ { on = 1 } on { print; if ($0 !~ /\\$/) exit }' "$ROOT/data-tools/synth.c" |
  grep -o '"[^"]*"' | tr -d '"' | tr -d '\n' | tr ':' '\n' | sed '/^$/d' >"$TMP/trainfonts"
expect_code 0 "heldout_render --list-fonts" -- "$PY" "$HR" --out "$TMP/y.h5" --list-fonts
cut -f 2 "$TMP/out" >"$TMP/heldfonts"
cat >"$TMP/fonts_outside.py" <<'EOF'
# fonts_outside.py TRAIN_PATHS HELD: no font of HELD (one path per line)
# under or the same file as a path of TRAIN_PATHS
import os, sys
train = [os.path.realpath(p.strip()) for p in open(sys.argv[1]) if p.strip()]
held = [p.strip() for p in open(sys.argv[2]) if p.strip()]
def under(f, d): return f == d or f.startswith(d.rstrip("/") + "/")
bad = ["%s (in %s)" % (f, d) for f in held for d in train if under(os.path.realpath(f), d) or under(f, d)]
# the training fonts themselves, wherever they live: no file with the same
# content (hashing only training files of a held-out file's size)
import hashlib
def h(p): return hashlib.sha256(open(p, "rb").read()).hexdigest()
sizes = {os.path.getsize(f) for f in held}
files = [d for d in train if os.path.isfile(d)]
for d in train:
    for root, _, names in os.walk(d):
        files += [os.path.join(root, x) for x in names]
tr = {h(p) for p in files if os.path.isfile(p) and os.path.getsize(p) in sizes}
bad += [f + " (same file as a training font)" for f in held if h(f) in tr]
print("\n".join(bad) if bad else "ok")
EOF
if [ -s "$TMP/trainfonts" ] && [ "$(wc -l <"$TMP/heldfonts")" -ge 20 ]; then
  "$PY" "$TMP/fonts_outside.py" "$TMP/trainfonts" "$TMP/heldfonts" >"$TMP/check" 2>&1
  if [ "$(cat "$TMP/check")" = ok ]; then pass "none of the $(wc -l <"$TMP/heldfonts") default fonts is in ocrkd-synth's DEFAULT_FONTS ($(tr '\n' ' ' <"$TMP/trainfonts"))"
  else fail "held-out fonts among the training fonts:"; sed 's/^/    /' "$TMP/check" | head -n 10; fi
else
  fail "could not read DEFAULT_FONTS from synth.c ($(wc -l <"$TMP/trainfonts") dirs) or list the held-out fonts ($(wc -l <"$TMP/heldfonts"))"
fi

# ---- heldout_pango.py: the third renderer (Pango/Cairo, a third font set) ----
HP=$ROOT/data-tools/heldout_pango.py
if "$PY" -c 'import gi; gi.require_version("PangoCairo", "1.0"); from gi.repository import PangoCairo; import cairo' 2>"$TMP/err"; then
  expect_code 2 "heldout_pango --n 0" -- "$PY" "$HP" --out "$TMP/px.h5" --n 0
  expect_code 2 "heldout_pango with a missing font path" -- "$PY" "$HP" --out "$TMP/px.h5" --n 5 --fonts /nonexistent.ttf
  expect_grep 'heldout_pango.py: --fonts /nonexistent.ttf: no such file' "$TMP/err" "the error names the tool and the path"
  if [ ! -e "$TMP/px.h5" ]; then pass "no output left by the failed pango runs"; else fail "a failed pango run left $TMP/px.h5"; fi
  expect_code 0 "heldout_pango run A (seed 3)" -- "$PY" "$HP" --out "$TMP/pa.h5" --n 160 --seed 3 --quiet
  expect_code 0 "heldout_pango run B (same args)" -- "$PY" "$HP" --out "$TMP/pb.h5" --n 160 --seed 3 --quiet
  expect_code 0 "heldout_pango run C (seed 4)" -- "$PY" "$HP" --out "$TMP/pc.h5" --n 160 --seed 4 --quiet
  if [ "$(digest "$TMP/pa.h5")" = "$(digest "$TMP/pb.h5")" ]; then pass "pango: same seed -> identical images, labels, widths"; else fail "pango: same seed differs"; fi
  if [ "$(digest "$TMP/pa.h5")" != "$(digest "$TMP/pc.h5")" ]; then pass "pango: another seed differs"; else fail "pango: another seed gives the same data"; fi
  if [ "$(digest "$TMP/pa.h5")" != "$(digest "$TMP/a.h5")" ]; then pass "pango and PIL sets differ"; else fail "pango set equals the PIL set"; fi
  expect_code 0 "ocrkd info accepts the pango file" -- "$BIN/ocrkd" info "$TMP/pa.h5"
  "$PY" "$TMP/contents.py" "$TMP/pa.h5" >"$TMP/check" 2>&1
  if [ "$(cat "$TMP/check")" = ok ]; then pass "pango contents: format, labels folded and within alphabet/lengths, padding, case mix, words not in wamerican"; else fail "pango contents:"; sed 's/^/    /' "$TMP/check" | head -n 20; fi
  expect_code 0 "heldout_pango --list-fonts" -- "$PY" "$HP" --out "$TMP/py.h5" --list-fonts
  cut -f 2 "$TMP/out" >"$TMP/pangofonts"
  # outside the training fonts and outside heldout_render.py's fonts
  cat "$TMP/trainfonts" "$TMP/heldfonts" >"$TMP/otherfonts"
  if [ "$(wc -l <"$TMP/pangofonts")" -ge 20 ]; then
    "$PY" "$TMP/fonts_outside.py" "$TMP/otherfonts" "$TMP/pangofonts" >"$TMP/check" 2>&1
    if [ "$(cat "$TMP/check")" = ok ]; then pass "none of the $(wc -l <"$TMP/pangofonts") pango fonts is a training or a PIL held-out font"
    else fail "pango fonts among the other sets' fonts:"; sed 's/^/    /' "$TMP/check" | head -n 10; fi
  else
    fail "heldout_pango lists only $(wc -l <"$TMP/pangofonts") fonts (.ci/deps.sh installs its packages)"
  fi
else
  fail "python3-gi, python3-gi-cairo and gir1.2-pango-1.0 are needed for heldout_pango.py (.ci/deps.sh installs them): $(tail -n 1 "$TMP/err")"
fi

# ---- --png-dir ----
"$PY" - "$TMP/b.h5" "$TMP/png" >"$TMP/check" 2>&1 <<'EOF'
import os, sys, h5py, numpy as np
from PIL import Image
f = h5py.File(sys.argv[1], "r"); d = sys.argv[2]
img, w = f["images"][:], f["widths"][:]
lab = [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(d, "labels.txt"), encoding="utf-8")]
bad = [] if len(rows) == len(lab) else ["%d labels.txt lines for %d images" % (len(rows), len(lab))]
for i, (p, l) in enumerate(rows):
    a = np.asarray(Image.open(os.path.join(d, p)))
    if l != lab[i]: bad.append("line %d label %r != %r" % (i, l, lab[i]))
    if a.shape != (32, w[i]) or (a != img[i, :, :w[i]]).any(): bad.append("%s differs from image %d" % (p, i))
print("\n".join(bad[:10]) if bad else "ok")
EOF
if [ "$(cat "$TMP/check")" = ok ]; then pass "--png-dir: one PNG per image (its used width) and labels.txt"; else fail "--png-dir:"; sed 's/^/    /' "$TMP/check"; fi

# ---- tesseract_eval.py ----
"$PY" - "$TE" >"$TMP/check" 2>&1 <<'EOF'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("te", sys.argv[1]); te = importlib.util.module_from_spec(spec); spec.loader.exec_module(te)
A = "0123456789abcdefghijklmnopqrstuvwxyz"
c = te.Counts()
for pred, lab in [("abc", "abc"), ("abd", "abc"), ("", "ab"), ("", ""), ("abcd", "ab")]:
    c.add(pred, lab)
r = c.result()
want = {"word_acc": 2 / 5, "cer": (0 + 1 + 2 + 0 + 2) / 10, "ned": 1 - (0 + 1 / 3 + 1 + 0 + 2 / 4) / 5}
bad = ["%s %g != %g" % (k, r[k], v) for k, v in want.items() if abs(r[k] - v) > 1e-12]
if te.normalize(" Hello, World 42!\n", A) != "helloworld42": bad.append("normalize %r" % te.normalize(" Hello, World 42!\n", A))
if te.normalize("AbC", A + "ABC") != "AbC": bad.append("normalize keeps capitals of a cased alphabet")
print("\n".join(bad) if bad else "ok")
EOF
if [ "$(cat "$TMP/check")" = ok ]; then pass "tesseract_eval metrics match evaluate.c (word_acc, CER, 1-NED) and normalization"; else fail "tesseract_eval metrics:"; sed 's/^/    /' "$TMP/check"; fi
expect_code 3 "tesseract_eval without tesseract on PATH" -- env PATH=/nonexistent "$PY" "$TE" --data "$TMP/a.h5"
expect_grep "not installed" "$TMP/err" "the missing-tesseract message says so"
if command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>&1 | grep -qx eng; then
  expect_code 0 "tesseract_eval on 20 held-out images" -- "$PY" "$TE" --data "$TMP/a.h5" --limit 20
  "$PY" - "$TMP/out" >"$TMP/check" 2>&1 <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().strip().split("\n")
o = json.loads(lines[-1]) if len(lines) == 1 else {}
ok = (o.get("model") == "tesseract" and o.get("n") == 20 and 0 <= o["word_acc"] <= 1 and 0 <= o["ned"] <= 1
      and o["cer"] >= 0 and o["img_per_s"] > 0 and o["data"].endswith("a.h5"))
print("ok" if ok else "bad: %s" % lines)
EOF
  if [ "$(cat "$TMP/check")" = ok ]; then pass "tesseract_eval prints one JSON line: $(cat "$TMP/out")"; else fail "tesseract_eval JSON: $(cat "$TMP/check")"; fi
  expect_code 0 "tesseract_eval on a PNG directory (5 images)" -- "$PY" "$TE" --data "$TMP/png" --limit 5
  expect_grep '"n":5,' "$TMP/out" "PNG directory: 5 images read"
else
  echo "  skip tesseract_eval runs (tesseract or its eng data not installed; not counted)"
fi

# ---- plot_run.py ----
mkdir -p "$TMP/run1" "$TMP/run2" "$TMP/run3"
cat >"$TMP/run1/metrics.jsonl" <<'EOF'
{"wall":0.5,"step":0,"split":"val","model":"teacher","word_acc":0.8,"cer":0.05,"ned":0.95}
{"wall":10.0,"step":100,"epoch":0,"loss":3.2,"distance":2.5,"ctc":4.1,"lr":0.003,"img_per_s":350.0}
{"wall":20.0,"step":200,"epoch":0,"loss":1.9,"distance":1.5,"ctc":2.0,"lr":0.0028,"img_per_s":360.0}
{"wall":21.0,"step":200,"split":"val","word_acc":0.3,"cer":0.25,"ned":0.7,"gap_to_teacher":-0.5}
{"wall":30.0,"step":300,"epoch":1,"loss":1.1,"distance":0.9,"ctc":1.2,"lr":0.002,"img_per_s":340.0}
{"wall":31.0,"step":300,"split":"val","word_acc":0.55,"cer":0.12,"ned":0.85}
{"step":300,"event":"stop","reason":"reached stop.max_steps"}
EOF
# no wall, missing keys, a partly written last line
printf '%s\n%s\n%s\n%s' '{"step":100,"loss":4.0,"ctc":4.0}' '{"step":200,"loss":2.0,"lr":0.001}' \
  '{"step":200,"split":"val","word_acc":0.2}' '{"step":300,"loss":1.' >"$TMP/run2/metrics.jsonl"
: >"$TMP/run3/metrics.jsonl"
expect_code 0 "plot_run on three runs (one partial, one empty)" -- "$PY" "$PR" "$TMP/run1" "$TMP/run2" "$TMP/run3" --labels distilled,scratch,empty --out "$TMP/curves.png"
if [ -s "$TMP/curves.png" ] && [ "$(head -c 4 "$TMP/curves.png" | tail -c 3)" = PNG ] && [ "$(wc -c <"$TMP/curves.png")" -gt 10000 ]; then
  pass "plot_run writes a PNG ($(wc -c <"$TMP/curves.png") bytes)"; else fail "plot_run PNG missing or empty"; fi
expect_grep "skipped 1 line" "$TMP/err" "plot_run reports the partial line"
expect_code 2 "plot_run on a missing run directory" -- "$PY" "$PR" "$TMP/run1" "$TMP/nope" --out "$TMP/c2.png"
expect_grep "nope: no such run directory" "$TMP/err" "missing-run message names it"
if [ ! -e "$TMP/c2.png" ]; then pass "no PNG after the error"; else fail "a PNG was written despite the error"; fi
expect_code 2 "plot_run with --labels of the wrong count" -- "$PY" "$PR" "$TMP/run1" --labels a,b --out "$TMP/c3.png"
# --wall-offsets: a second phase drawn after the first (the CSV shows the shift)
expect_code 0 "plot_run --wall-offsets" -- "$PY" "$PR" "$TMP/run1" "$TMP/run1" --labels one,two \
  --wall-offsets 0,100 --out "$TMP/c4.png" --csv "$TMP/c4.csv"
expect_grep '^one,300,31.0,0.55,' "$TMP/c4.csv" "the first run's wall is unchanged"
expect_grep '^two,300,131.0,0.55,' "$TMP/c4.csv" "the second run's wall is shifted by 100 s"
expect_code 2 "plot_run --wall-offsets of the wrong count" -- "$PY" "$PR" "$TMP/run1" --wall-offsets 1,2 --out "$TMP/c5.png"
expect_grep 'wall-offsets has 2 values for 1 runs' "$TMP/err" "names the counts"
expect_code 2 "plot_run --wall-offsets not numbers" -- "$PY" "$PR" "$TMP/run1" --wall-offsets x --out "$TMP/c5.png"
expect_grep 'wall-offsets x: not a list of numbers' "$TMP/err" "names the value"

# ---- errors_by_font.py: words missed by font family of a held-out set ----
EBF=$ROOT/data-tools/errors_by_font.py
# errors tables made by hand over run A's set: every image wrong, none, and
# exactly the images of its first image's family
# (the tool's own naming rule, checked on its own first, groups the images)
"$PY" - "$TMP/a.h5" "$TMP" "$ROOT/data-tools" <<'PYEOF'
import sys, os, h5py
sys.path.insert(0, sys.argv[3])
sys.dont_write_bytecode = True  # no __pycache__ in the tree
from errors_by_font import family
assert family("/f/PTSans-Bold.ttf") == "PTSans", family("/f/PTSans-Bold.ttf")
assert family("/f/cmunti.otf") == "cmunti" and family("/f/Open Sans_x.ttf") == "Open"
with h5py.File(sys.argv[1], "r") as f:
    fonts = f.attrs["fonts"]; fonts = (fonts.decode() if isinstance(fonts, bytes) else fonts).split("\n")
    fi = list(f["font_index"][:])
fam = [family(fonts[i]) for i in fi]
assert len(set(fam)) > 1, "run A's set has one family: the per-family check would be empty"
head = "data\tindex\ttruth\tprediction\tconfidence\n"
def write(name, idx):
    with open(os.path.join(sys.argv[2], name), "w") as o:
        o.write(head + "".join("%s\t%d\tx\ty\t0.5\n" % (sys.argv[1], i) for i in idx))
write("all.tsv", range(len(fi)))
write("none.tsv", [])
write("one.tsv", [i for i in range(len(fi)) if fam[i] == fam[0]])
write("outside.tsv", [len(fi)])
open(os.path.join(sys.argv[2], "first_family"), "w").write(fam[0] + "\n")
PYEOF
[ -s "$TMP/first_family" ] && pass "errors_by_font: its naming rule, and tables made" || fail "errors_by_font: naming rule or tables"
first=$(cat "$TMP/first_family")
expect_code 0 "errors_by_font on three tables" -- "$PY" "$EBF" "$TMP/a.h5" "$TMP/all.tsv" "$TMP/none.tsv" "$TMP/one.tsv"
cp "$TMP/out" "$TMP/ebf"
expect_grep "^all +160 +100.0% +0.0% +[0-9.]+%$" "$TMP/ebf" "errors_by_font: totals (all wrong, none wrong)"
expect_grep "^$first +[0-9]+ +100.0% +0.0% +100.0%$" "$TMP/ebf" "errors_by_font: the one family's images all missed"
if awk 'NR > 1 && $1 != "all" && $1 != "'"$first"'" && $5 != "0.0%" { bad = 1 } END { exit bad }' "$TMP/ebf"; then
  pass "errors_by_font: the other families none missed"; else fail "errors_by_font: other families"; sed 's/^/    /' "$TMP/ebf"; fi
expect_code 2 "errors_by_font: an index outside the set" -- "$PY" "$EBF" "$TMP/a.h5" "$TMP/outside.tsv"
expect_grep "outside.tsv:2: index 160 outside" "$TMP/err" "errors_by_font: the message names the table and row"
printf 'not a table\n' >"$TMP/bad.tsv"
expect_code 2 "errors_by_font: not an errors table" -- "$PY" "$EBF" "$TMP/a.h5" "$TMP/bad.tsv"
expect_grep "bad.tsv: not an .ocrkd eval --errors. table" "$TMP/err" "errors_by_font: bad table message"
expect_code 2 "errors_by_font: a missing set" -- "$PY" "$EBF" "$TMP/missing.h5" "$TMP/none.tsv"
expect_grep "missing.h5: cannot read" "$TMP/err" "errors_by_font: missing set message"

e2e_end
