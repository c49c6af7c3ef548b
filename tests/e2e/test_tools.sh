#!/bin/sh
# test_tools.sh - ocrkd-synth and ocrkd-pack end to end: determinism (same
# args -> byte-identical images and labels, whatever the thread count, with
# and without effects; another seed differs), shards, file contents, case
# mixing (capitals rendered, labels lower case), a cased alphabet with
# punctuation, every effect at its extreme, bad option values; pack of
# PNG/JPEG fixtures, every bad input's error and exit code with no output
# left, --skip-bad counts.
. "$(dirname "$0")/lib.sh"
SYNTH=$BIN/ocrkd-synth
PACK=$BIN/ocrkd-pack
FIX=$(cd "$(dirname "$0")/../data/pack" && pwd)

# digest FILE: a hash of /images, /labels and /widths (not of the HDF5 bytes,
# which carry timestamps).
digest() { dataset_digest "$1"; }
same() { if [ "$(digest "$1")" = "$(digest "$2")" ]; then pass "$3"; else fail "$3"; fi; }

# ---- usage ----
expect_code 0 "synth --help" -- "$SYNTH" --help
expect_code 0 "pack --help" -- "$PACK" --help
expect_code 2 "synth without --out" -- "$SYNTH" --train 1 --val 0 --test 0
expect_code 2 "synth with a bad count" -- "$SYNTH" --out "$TMP/x" --train ten --val 0 --test 0
expect_grep "--train" "$TMP/err" "bad count message names the option"
expect_code 2 "synth with an unknown option" -- "$SYNTH" --out "$TMP/x" --train 1 --val 0 --test 0 --colour red
expect_code 2 "synth with a missing font path" -- "$SYNTH" --out "$TMP/x" --train 1 --val 0 --test 0 --fonts /nonexistent.ttf
mkdir -p "$TMP/nofonts"
expect_code 2 "synth with no usable font" -- "$SYNTH" --out "$TMP/x" --train 1 --val 0 --test 0 --fonts "$TMP/nofonts"
expect_grep "no usable font" "$TMP/err" "no-font message"
expect_code 2 "pack without --root" -- "$PACK" --labels x --out y.h5
expect_code 2 "pack with an unknown option" -- "$PACK" --labels x --root . --out y.h5 --frobnicate

# ---- synth: determinism, seeds, shards ----
ARGS="--train 300 --val 60 --test 40 --quiet"
expect_code 0 "synth run A (2 threads)" -- "$SYNTH" --out "$TMP/a" $ARGS --seed 7
expect_code 0 "synth run B (1 thread, same args)" -- "$SYNTH" --out "$TMP/b" $ARGS --seed 7 --threads 1
for s in train val test; do same "$TMP/a/$s.h5" "$TMP/b/$s.h5" "synth $s byte-identical across runs and thread counts"; done
expect_code 0 "synth run C (other seed)" -- "$SYNTH" --out "$TMP/c" $ARGS --seed 8
if [ "$(digest "$TMP/a/train.h5")" != "$(digest "$TMP/c/train.h5")" ]; then pass "another seed differs"; else fail "another seed gives the same data"; fi
expect_code 0 "synth --shards 3" -- "$SYNTH" --out "$TMP/s" --train 300 --val 0 --test 0 --quiet --seed 7 --shards 3
if [ -f "$TMP/s/train-000.h5" ] && [ -f "$TMP/s/train-001.h5" ] && [ -f "$TMP/s/train-002.h5" ] &&
   [ ! -e "$TMP/s/train-003.h5" ] && [ ! -e "$TMP/s/train.h5" ] && [ ! -e "$TMP/s/val.h5" ]; then
  pass "--shards 3 writes train-000..002.h5 and skips empty splits"
else fail "--shards 3 files: $(ls "$TMP/s")"; fi

# Contents: format attributes, counts, labels within alphabet and lengths,
# shards = the unsharded file cut in 3, images not blank.
$PY - "$TMP" >"$TMP/check" 2>&1 <<'EOF'
import sys, h5py, numpy as np
t = sys.argv[1]
def lab(f): return [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
alpha = set("0123456789abcdefghijklmnopqrstuvwxyz")
with h5py.File(t + "/a/train.h5", "r") as f:
    a = dict(f.attrs)
    print("attrs", a["format"], a["version"], a["height"], a["width"], a["alphabet"])
    im, L, w = f["images"][:], lab(f), f["widths"][:]
    print("shape", im.shape, im.dtype)
    print("labels_ok", all(1 <= len(s) <= 25 and set(s) <= alpha for s in L))
    print("widths_ok", bool((w >= 1).all() and (w <= 128).all()))
    # the generator's floor: ink and background at least MIN_CONTRAST (40)
    # levels apart within the used width (the padding past it is background)
    spread = [np.percentile(x[:, :n], 99) - np.percentile(x[:, :n], 1) for x, n in zip(im, w)]
    print("contrast_ok", bool(min(spread) >= 40))
    print("distinct_labels", len(set(L)) > 200)
parts = []
for k in range(3):
    with h5py.File(t + "/s/train-%03d.h5" % k, "r") as g: parts.append((g["images"][:], lab(g)))
print("shard_sizes", [len(p[1]) for p in parts])
print("shards_concat", bool(np.array_equal(np.concatenate([p[0] for p in parts]), im)) and sum((p[1] for p in parts), []) == L)
EOF
expect_grep "^attrs ocrkd-dataset 1 32 128 0123456789abcdefghijklmnopqrstuvwxyz$" "$TMP/check" "synth file attributes"
expect_grep "^shape \(300, 32, 128\) uint8$" "$TMP/check" "synth /images shape"
expect_grep "^labels_ok True$" "$TMP/check" "labels within alphabet and 1..25 long (auto --max-len)"
expect_grep "^widths_ok True$" "$TMP/check" "widths within 1..128"
expect_grep "^contrast_ok True$" "$TMP/check" "every image has contrast"
expect_grep "^distinct_labels True$" "$TMP/check" "labels vary"
expect_grep "^shard_sizes \[100, 100, 100\]$" "$TMP/check" "shard sizes"
expect_grep "^shards_concat True$" "$TMP/check" "shards concatenate to the unsharded file"

# Custom alphabet and word list: upper case kept, labels within the alphabet.
printf 'Cab\nabc\nzzz\nBAC2\n' >"$TMP/words"
expect_code 0 "synth --alphabet --words --min-len --max-len" -- "$SYNTH" --out "$TMP/u" --train 64 --val 0 --test 0 \
  --quiet --alphabet "abcABC012" --words "$TMP/words" --min-len 2 --max-len 5
$PY - "$TMP/u/train.h5" >"$TMP/check" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    L = [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
print("ok", all(set(s) <= set("abcABC012") and 2 <= len(s) <= 5 for s in L), "zzz" in L)
EOF
expect_grep "^ok True False$" "$TMP/check" "custom alphabet: labels within it, filtered words dropped"

# ---- synth: case, punctuation, effects ----
DEJAVU=/usr/share/fonts/truetype/dejavu
# All effects often on: still byte-identical across thread counts.
FX="--train 200 --val 0 --test 0 --quiet --seed 11 --effects all=0.6"
expect_code 0 "synth with effects at 0.6 (2 threads)" -- "$SYNTH" --out "$TMP/fa" $FX
expect_code 0 "synth with effects at 0.6 (1 thread)" -- "$SYNTH" --out "$TMP/fb" $FX --threads 1
same "$TMP/fa/train.h5" "$TMP/fb/train.h5" "effects: byte-identical across thread counts"

# Case mixing with the default alphabet: the same seed gives the same
# (lower-case) labels with --case 0,0,1 (all capitals) and --case off, but
# other images. Wide images and no effects so every text fits its first style.
CASE="--train 64 --val 0 --test 0 --quiet --seed 5 --width 512 --max-len 10 --effects none --fonts $DEJAVU"
expect_code 0 "synth --case 0,0,1" -- "$SYNTH" --out "$TMP/cu" $CASE --case 0,0,1
expect_code 0 "synth --case off" -- "$SYNTH" --out "$TMP/co" $CASE --case off
$PY - "$TMP/cu/train.h5" "$TMP/co/train.h5" "$TMP/a/train.h5" >"$TMP/check" 2>&1 <<'PYEOF'
import sys, h5py, numpy as np
def load(p):
    with h5py.File(p, "r") as f:
        return f["images"][:], [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
(iu, lu), (io, lo), (ia, la) = load(sys.argv[1]), load(sys.argv[2]), load(sys.argv[3])
alpha = set("0123456789abcdefghijklmnopqrstuvwxyz")
print("labels_same", lu == lo)
print("labels_lower", all(set(s) <= alpha for s in lu + la))
letters = [i for i, s in enumerate(lu) if any(c.isalpha() for c in s)]
print("letters_differ", len(letters) > 20 and all(not np.array_equal(iu[i], io[i]) for i in letters))
digits = [i for i, s in enumerate(lu) if s.isdigit()]
print("digits_same", all(np.array_equal(iu[i], io[i]) for i in digits))
PYEOF
expect_grep "^labels_same True$" "$TMP/check" "--case 0,0,1 and --case off: same labels"
expect_grep "^labels_lower True$" "$TMP/check" "default alphabet: labels lower case, within the alphabet"
expect_grep "^letters_differ True$" "$TMP/check" "--case 0,0,1 renders capitals (images differ from --case off)"
expect_grep "^digits_same True$" "$TMP/check" "numbers render the same whatever --case"

# A cased alphabet with punctuation: labels keep case, stay within the
# alphabet and min..max lengths; capitals, punctuation and numbers all occur.
PA="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-/%\$ "
expect_code 0 "synth with a cased alphabet with punctuation" -- "$SYNTH" --out "$TMP/pa" --train 400 --val 0 --test 0 \
  --quiet --alphabet "$PA" --min-len 2 --max-len 9 --punct 0.5
$PY - "$TMP/pa/train.h5" "$PA" >"$TMP/check" 2>&1 <<'PYEOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    L = [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
    alpha = f.attrs["alphabet"]
alpha = alpha.decode() if isinstance(alpha, bytes) else alpha
print("alphabet_attr", alpha == sys.argv[2])
print("within", all(set(s) <= set(sys.argv[2]) and 2 <= len(s) <= 9 for s in L))
print("no_edge_spaces", all(s == s.strip() for s in L))
print("capitals", sum(any(c.isupper() for c in s) for s in L) > 80)
print("lower", sum(s.islower() for s in L) > 80)
print("punctuation", sum(any(c in ".,;:!?'\"()" for c in s) for s in L) > 40)
print("number_shapes", sum(any(c.isdigit() for c in s) and any(c in ".,:/-%$" for c in s) for s in L) > 5)
PYEOF
for k in alphabet_attr within no_edge_spaces capitals lower punctuation number_shapes; do
  expect_grep "^$k True$" "$TMP/check" "cased alphabet with punctuation: $k"
done

# Every effect alone at probability 1 and its extreme, all of them at once,
# and none: no crash, widths in range, no constant image.
EFFECTS="spacing jitter weight gamma condense strokes wobble rotate shear perspective curve tight loose invert lowcontrast gradient texture lines clutter lowres blur motion noise saltpepper jpeg"
for fx in $EFFECTS; do
  "$SYNTH" --out "$TMP/fx/$fx" --train 24 --val 0 --test 0 --quiet --seed 3 --effects "none,$fx=1" --extreme \
    --fonts "$DEJAVU:/usr/share/fonts/truetype/liberation2" 2>"$TMP/err" || { fail "effect $fx at its extreme: exit $?"; sed 's/^/    /' "$TMP/err"; }
done
expect_code 0 "all effects at 1 and their extremes" -- "$SYNTH" --out "$TMP/fx/all" --train 64 --val 0 --test 0 --quiet --effects all=1 --extreme
expect_code 0 "--effects none" -- "$SYNTH" --out "$TMP/fx/none" --train 64 --val 0 --test 0 --quiet --effects none
$PY - "$TMP/fx" $EFFECTS all none >"$TMP/check" 2>&1 <<'PYEOF'
import sys, h5py, numpy as np
base = sys.argv[1]
ref = None
for name in sys.argv[2:]:
    try:
        with h5py.File("%s/%s/train.h5" % (base, name), "r") as f:
            im, w = f["images"][:], f["widths"][:]
    except OSError:
        print("missing", name); continue
    n = len(im)
    ok = n > 0 and bool((w >= 1).all() and (w <= im.shape[2]).all())
    ok = ok and all(im[i, :, :w[i]].std() > 1 for i in range(n))
    print("effect", name, "ok" if ok else "BAD")
    if name in ("invert", "none"):  # background (the median) dark only when inverted
        print("dark_background", name, np.mean([np.median(a) < 128 for a in im]) > 0.9)
PYEOF
for fx in $EFFECTS all none; do expect_grep "^effect $fx ok$" "$TMP/check" "effect $fx: images in range, none constant"; done
expect_grep "^dark_background invert True$" "$TMP/check" "invert=1: light text on dark backgrounds"
# The shape effects reach their extremes (the trace prints each sample's
# style): stroke contrast +0.08 em or its reverse -0.05, wobble 0.025 em.
for fx in strokes wobble; do
  OCRKD_SYNTH_TRACE=1 "$SYNTH" --out "$TMP/fx/t$fx" --train 16 --val 0 --test 0 --quiet --seed 3 --threads 1 \
    --effects "none,$fx=1" --extreme --fonts "$DEJAVU" 2>"$TMP/trace.$fx"
done
expect_grep " strokes=(0.080|-0.050) wob=0.000 " "$TMP/trace.strokes" "strokes=1 --extreme: contrast 0.08 or -0.05 em"
expect_no_grep " strokes=0.000 " "$TMP/trace.strokes" "strokes=1: every sample has stroke contrast"
expect_grep " strokes=0.000 wob=0.025 " "$TMP/trace.wobble" "wobble=1 --extreme: outline wave 0.025 em"
expect_no_grep " wob=0.000 " "$TMP/trace.wobble" "wobble=1: every sample wobbles"
expect_grep "^dark_background none False$" "$TMP/check" "--effects none: dark text on light backgrounds"

# Bad values of the new options: exit 2, the message names the option.
bad_synth() { # OPTION VALUE
  expect_code 2 "synth $1 '$2'" -- "$SYNTH" --out "$TMP/badout" --train 1 --val 0 --test 0 "$1" "$2"
  expect_grep "$1" "$TMP/err" "synth $1 '$2' message names the option"
}
bad_synth --case 0.5,0.5
bad_synth --case lower
bad_synth --case 0,0,0
bad_synth --kinds 1,-1,0
bad_synth --punct 1.5
bad_synth --effects blur=2
bad_synth --effects sparkle=1
bad_synth --effects blur
bad_synth --max-len -1
if [ -e "$TMP/badout" ]; then fail "bad options left output in $TMP/badout"; else pass "bad options leave no output"; fi

# ---- pack ----
printf 'rgb.png\tHello\nrgb.jpg world\n\nga.png\tAb c\nwide.jpg\t123\nsub/pal.png\tx\r\n' >"$TMP/good.txt"
expect_code 0 "pack PNG and JPEG (colour, alpha, palette, odd sizes)" -- "$PACK" --labels "$TMP/good.txt" --root "$FIX" --out "$TMP/p.h5"
$PY - "$TMP/p.h5" >"$TMP/check" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    L = [s.decode() if isinstance(s, bytes) else s for s in f["labels"][:]]
    im = f["images"][:].astype(int)
    print("alphabet", repr(f.attrs["alphabet"]))
    print("labels", L)
    print("widths", list(f["widths"][:]))
    print("grey", im[0].min(), im[0].max(), int(abs(im[1] - 124).max() <= 2), im[2].min(), im[2].max())
    print("pad", int((im[4][:, 45:] == im[4][:, 44:45]).all()))
EOF
expect_grep "^alphabet ' 123AHbcdelorwx'$" "$TMP/check" "auto alphabet = sorted label characters"
expect_grep "^labels \['Hello', 'world', 'Ab c', '123', 'x'\]$" "$TMP/check" "labels (TAB and space separators, CRLF, blank line)"
expect_grep "^widths \[96, 48, 62, 128, 45\]$" "$TMP/check" "used widths: aspect kept, squeezed when too wide"
expect_grep "^grey 124 124 1 127 127$" "$TMP/check" "colour -> 601 grey, alpha on white"
expect_grep "^pad 1$" "$TMP/check" "right padding replicates the last column"

# Each bad input: exit 3, a message naming line, path (and character), no output left.
bad_case() { # NAME CONTENT PATTERN [extra args]
  name=$1; content=$2; pattern=$3; shift 3
  printf "$content" >"$TMP/bad.txt"
  expect_code 3 "pack: $name" -- "$PACK" --labels "$TMP/bad.txt" --root "$FIX" --out "$TMP/bad.h5" "$@"
  expect_grep "$pattern" "$TMP/err" "pack: $name message"
  if [ ! -e "$TMP/bad.h5" ] && [ ! -e "$TMP/bad.h5.tmp" ]; then pass "pack: $name leaves no output"
  else fail "pack: $name left $(ls "$TMP"/bad.h5*)"; fi
}
bad_case "missing image" 'rgb.png\tok\nnope.png\tok\n' 'bad.txt:2: .*/nope.png: missing image'
bad_case "undecodable image" 'rgb.png\tok\n\nbroken.png\tok\n' 'bad.txt:3: .*/broken.png: not a PNG or JPEG'
bad_case "empty label" 'rgb.png\tok\nga.png\t\n' 'bad.txt:2: .*/ga.png: empty label'
bad_case "character outside the alphabet" 'rgb.png\tok\nga.png\toké\n' "bad.txt:2: .*/ga.png: character 'é' \\(U\\+00E9\\)" --alphabet ok
bad_case "malformed line" 'rgb.png\tok\nga.png\n' 'bad.txt:2: .*no TAB or space'
expect_code 2 "pack: invalid --alphabet" -- "$PACK" --labels "$TMP/good.txt" --root "$FIX" --out "$TMP/bad.h5" --alphabet "aa"

printf 'rgb.png\tok\nnope.png\tok\nbroken.png\tok\nga.png\t\nga.png\tkö\nwide.jpg\tko\nsub\n' >"$TMP/mixed.txt"
expect_code 0 "pack --skip-bad" -- "$PACK" --labels "$TMP/mixed.txt" --root "$FIX" --out "$TMP/skip.h5" --alphabet ok --skip-bad
expect_grep "skipped 5 of 7 lines; 1 malformed line.*; 1 empty label; 1 character outside.*; 1 missing image; 1 undecodable image" "$TMP/err" "--skip-bad counts by reason"
expect_grep "wrote 2 images" "$TMP/err" "--skip-bad writes the good lines"
e2e_end
