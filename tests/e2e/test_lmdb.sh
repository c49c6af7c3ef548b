#!/bin/sh
# test_lmdb.sh - ocrkd-pack --lmdb and data-tools/h5_to_lmdb.py: a small LMDB
# in the deep-text-recognition-benchmark layout (written with python3-lmdb,
# PNG and JPEG fixtures) packs to the same images and labels as the same
# files through --labels; --labels given twice; bad inputs (no num-samples, a
# count larger than the LMDB, a corrupt or missing image, a label outside
# --alphabet, not an LMDB) exit 3 naming the LMDB and key with no output
# left; --skip-bad; the round trip h5 -> LMDB -> h5 is exact.
. "$(dirname "$0")/lib.sh"
PACK=$BIN/ocrkd-pack
FIX=$(cd "$(dirname "$0")/../data/pack" && pwd)
TOLMDB=$(cd "$(dirname "$0")/../../data-tools" && pwd)/h5_to_lmdb.py
if ! $PY -c 'import lmdb' 2>/dev/null; then
  echo "python3-lmdb missing (make deps)"; fail "python3-lmdb not installed"; e2e_end; exit; fi

# mk_lmdb DIR [--no-count|--count N] IMAGE:LABEL ...  (IMAGE a fixture name,
# "corrupt" for bytes that are no image, "none" for no image key)
mk_lmdb() {
  $PY - "$FIX" "$@" <<'EOF'
import sys, lmdb
fix, out, args = sys.argv[1], sys.argv[2], sys.argv[3:]
count = None
if args and args[0] == "--no-count": count = -1; args = args[1:]
elif args and args[0] == "--count": count = int(args[1]); args = args[2:]
env = lmdb.open(out, map_size=1 << 22)
with env.begin(write=True) as txn:
    for i, spec in enumerate(args, 1):
        img, label = spec.split(":", 1)
        if img == "corrupt": txn.put(b"image-%09d" % i, b"\x89PNG\r\n\x1a\nnot really")
        elif img != "none": txn.put(b"image-%09d" % i, open(fix + "/" + img, "rb").read())
        txn.put(b"label-%09d" % i, label.encode())
    if count != -1: txn.put(b"num-samples", str(len(args) if count is None else count).encode())
env.close()
EOF
}
digest() { dataset_digest "$1"; }
same() { if [ "$(digest "$1")" = "$(digest "$2")" ]; then pass "$3"; else fail "$3"; fi; }
h5labels() { $PY -c 'import sys,h5py; f=h5py.File(sys.argv[1],"r"); print("|".join(s.decode() if isinstance(s,bytes) else s for s in f["labels"][:]), f["images"].shape)' "$1"; }
no_output() { if [ ! -e "$1" ] && [ ! -e "$1.tmp" ]; then pass "$2: no output left"; else fail "$2: output left"; fi; }

# ---- a good LMDB: same result as the same files through --labels ----
mk_lmdb "$TMP/good" ga.png:ab rgb.jpg:cd "rgb.png:é f" wide.jpg:abc
printf 'ga.png\tab\nrgb.jpg\tcd\n' >"$TMP/l1.txt"; printf 'rgb.png\té f\nwide.jpg\tabc\n' >"$TMP/l2.txt"
expect_code 0 "pack --lmdb" -- "$PACK" --lmdb "$TMP/good" --out "$TMP/g.h5"
expect_grep "wrote 4 images" "$TMP/err" "pack --lmdb reports 4 images"
expect_code 0 "pack with --labels given twice" -- "$PACK" --labels "$TMP/l1.txt" --labels "$TMP/l2.txt" \
  --root "$FIX" --out "$TMP/f.h5"
got=$(h5labels "$TMP/g.h5")
if [ "$got" = "ab|cd|é f|abc (4, 32, 128)" ]; then pass "labels and shape from the LMDB"; else
  fail "LMDB labels/shape: $got"; fi
same "$TMP/g.h5" "$TMP/f.h5" "LMDB images decode and fit exactly as the files do (grey, H 32, aspect kept)"
expect_code 0 "pack --lmdb of the data.mdb file itself" -- "$PACK" --lmdb "$TMP/good/data.mdb" --out "$TMP/g2.h5"
same "$TMP/g.h5" "$TMP/g2.h5" "the data.mdb path packs the same"
expect_code 0 "pack --lmdb --alphabet covering the labels" -- "$PACK" --lmdb "$TMP/good" \
  --alphabet "abcdeéf " --out "$TMP/a.h5" --height 16 --width 64
got=$(h5labels "$TMP/a.h5")
if [ "$got" = "ab|cd|é f|abc (4, 16, 64)" ]; then pass "--height/--width with --lmdb"; else fail "sizes: $got"; fi

# ---- bad inputs: exit 3 naming the LMDB and the key, nothing left ----
expect_code 3 "label outside --alphabet" -- "$PACK" --lmdb "$TMP/good" --alphabet abcdef --out "$TMP/x.h5"
expect_grep "good: label-000000003: character 'é'" "$TMP/err" "alphabet error names the LMDB and label key"
no_output "$TMP/x.h5" "alphabet error"
mk_lmdb "$TMP/nocount" --no-count ga.png:ab
expect_code 3 "LMDB without num-samples" -- "$PACK" --lmdb "$TMP/nocount" --out "$TMP/x.h5"
expect_grep "nocount: no num-samples key" "$TMP/err" "missing num-samples is named"
no_output "$TMP/x.h5" "missing num-samples"
mk_lmdb "$TMP/big" --count 1000 ga.png:ab
expect_code 3 "num-samples larger than the LMDB" -- "$PACK" --lmdb "$TMP/big" --out "$TMP/x.h5"
expect_grep "num-samples is 1000" "$TMP/err" "an impossible count is named"
mk_lmdb "$TMP/bad" ga.png:ab corrupt:cd none:ef rgb.png:abc
expect_code 3 "corrupt image" -- "$PACK" --lmdb "$TMP/bad" --out "$TMP/x.h5"
expect_grep "bad: image-000000002" "$TMP/err" "corrupt image error names the LMDB and image key"
no_output "$TMP/x.h5" "corrupt image"
expect_code 0 "--skip-bad skips the corrupt and the missing image" -- "$PACK" --lmdb "$TMP/bad" \
  --skip-bad --out "$TMP/s.h5"
expect_grep "skipped 2 of 4 .*1 missing image.*1 undecodable image" "$TMP/err" "--skip-bad counts by reason"
got=$(h5labels "$TMP/s.h5")
if [ "$got" = "ab|abc (2, 32, 128)" ]; then pass "--skip-bad keeps the good samples"; else fail "skip: $got"; fi
mkdir -p "$TMP/empty"
expect_code 3 "a directory that is no LMDB" -- "$PACK" --lmdb "$TMP/empty" --out "$TMP/x.h5"
expect_grep "empty" "$TMP/err" "no-LMDB error names the directory"
expect_code 3 "a missing LMDB" -- "$PACK" --lmdb "$TMP/nowhere" --out "$TMP/x.h5"
expect_code 2 "--lmdb with --labels" -- "$PACK" --lmdb "$TMP/good" --labels "$TMP/l1.txt" --out "$TMP/x.h5"

# ---- the way back: h5 -> LMDB -> h5 is exact ----
expect_code 0 "h5_to_lmdb.py" -- $PY "$TOLMDB" "$TMP/g.h5" "$TMP/back"
expect_code 0 "pack the written LMDB" -- "$PACK" --lmdb "$TMP/back" --out "$TMP/rt.h5"
same "$TMP/g.h5" "$TMP/rt.h5" "round trip h5 -> LMDB -> h5: images, labels and widths unchanged"
got=$($PY -c 'import lmdb,sys; t=lmdb.open(sys.argv[1],readonly=True,lock=False).begin(); print(t.get(b"num-samples").decode(), t.get(b"label-000000004").decode(), t.get(b"image-000000001")[:4])' "$TMP/back")
if [ "$got" = "4 abc b'\\x89PNG'" ]; then pass "written LMDB has num-samples, labels, PNG images"; else
  fail "written LMDB: $got"; fi
expect_code 2 "h5_to_lmdb.py into an existing directory" -- $PY "$TOLMDB" "$TMP/g.h5" "$TMP/back"
expect_code 3 "h5_to_lmdb.py of a non-dataset" -- $PY "$TOLMDB" "$TMP/l1.txt" "$TMP/back2"
no_output "$TMP/back2" "h5_to_lmdb.py bad input"
e2e_end
