#!/bin/sh
# test_tools.sh - ocrkd-synth and ocrkd-pack end to end: determinism (same
# args -> byte-identical images and labels, whatever the thread count; another
# seed differs), shards, file contents, pack of PNG/JPEG fixtures, every bad
# input's error and exit code with no output left, --skip-bad counts.
. "$(dirname "$0")/lib.sh"
SYNTH=$BIN/ocrkd-synth
PACK=$BIN/ocrkd-pack
FIX=$(cd "$(dirname "$0")/../data/pack" && pwd)

# digest FILE: a hash of /images, /labels and /widths (not of the HDF5 bytes,
# which carry timestamps).
digest() {
  $PY - "$1" <<'EOF'
import hashlib, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    h = hashlib.sha256(f["images"][:].tobytes())
    for s in f["labels"][:]:
        h.update(s if isinstance(s, bytes) else s.encode()); h.update(b"\0")
    h.update(f["widths"][:].tobytes())
    print(h.hexdigest())
EOF
}
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
    print("contrast_ok", bool((im.reshape(len(im), -1).std(axis=1) > 10).all()))
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
