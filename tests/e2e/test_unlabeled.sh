# test_unlabeled.sh - unlabeled data (issue 12): ocrkd-pack --images from a
# PNG directory and an @LIST, `ocrkd info` saying "unlabeled", train / eval /
# distill's data.val refusing it (exit 3, naming the file), predict reading
# it, and distill on [labeled.h5, unlabeled.h5] on 2 ranks (rank 1's batches
# have no label at all) with the teacher cache on, logging both counts.
# Run by tests/run.sh.
. tests/e2e/lib.sh
MPI="mpirun -np 2 --oversubscribe"
export OCRKD_THREADS=1

"$BIN/ocrkd-synth" --out "$TMP/data" --train 64 --val 16 --test 0 --width 64 --max-len 5 \
  --seed 3 --quiet >"$TMP/synth.log" 2>&1 && pass "synth tiny dataset" || { fail "synth"; cat "$TMP/synth.log"; }

# 40 grey PNGs of varying width (pure Python: zlib + struct)
$PY - "$TMP/png" <<'PYEOF'
import os, struct, sys, zlib
out = sys.argv[1]
os.makedirs(os.path.join(out, "sub"), exist_ok=True)
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
for i in range(40):
    w, h = 40 + 3 * i, 32
    rows = b"".join(b"\0" + bytes((255 if (x // (3 + i % 5) + y // 4) % 2 else 30) for x in range(w))
                    for y in range(h))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    name = os.path.join(out, "sub" if i % 2 else "", "img%03d.png" % i)
    open(name, "wb").write(png)
PYEOF
expect_code 0 "pack --images DIR (no labels)" -- "$BIN/ocrkd-pack" --images "$TMP/png" --width 64 --out "$TMP/unl.h5"
expect_grep 'wrote 40 unlabeled images' "$TMP/err" "40 images packed"
expect_code 0 "info on the unlabeled file" -- "$BIN/ocrkd" info "$TMP/unl.h5"
expect_grep 'unlabeled' "$TMP/out" "info says unlabeled"
expect_grep 'samples +40' "$TMP/out" "info counts 40 samples"
ls "$TMP"/png/img00*.png >"$TMP/list.txt"
expect_code 0 "pack --images @LIST" -- "$BIN/ocrkd-pack" --images "@$TMP/list.txt" --width 64 --out "$TMP/unl2.h5"
expect_grep 'wrote 5 unlabeled images' "$TMP/err" "the list's 5 images packed"
expect_code 2 "pack --images with --labels is a usage error" -- \
  "$BIN/ocrkd-pack" --images "$TMP/png" --labels x --out "$TMP/bad.h5"

cat >"$TMP/teacher.yaml" <<EOF
run: {dir: $TMP/teacher, seed: 1}
data: {train: $TMP/data/train.h5, val: $TMP/data/val.h5, batch_size: 16}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 8}
  feature_dim: 16
  encoder: {layers: 1, hidden: 16}
optim: {name: adam, lr: 3.0e-3}
stop: {max_steps: 8, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 0}
log: {every_steps: 4}
EOF
expect_code 0 "train the teacher" -- "$BIN/ocrkd" train "$TMP/teacher.yaml"

sed "s#train: $TMP/data/train.h5#train: $TMP/unl.h5#; s#dir: $TMP/teacher#dir: $TMP/t2#" \
  "$TMP/teacher.yaml" >"$TMP/train_unl.yaml"
expect_code 3 "train refuses an unlabeled file" -- "$BIN/ocrkd" train "$TMP/train_unl.yaml"
expect_grep "unl.h5: an unlabeled file \(no /labels\): .ocrkd train. .*needs labels" "$TMP/err" \
  "train's error names the file and why"
expect_code 3 "eval refuses an unlabeled file" -- \
  "$BIN/ocrkd" eval --model "$TMP/teacher/best.h5" --data "$TMP/unl.h5"
expect_grep "unl.h5: an unlabeled file .*ocrkd eval" "$TMP/err" "eval's error names the file and why"
expect_code 0 "predict reads an unlabeled file" -- \
  "$BIN/ocrkd" predict --model "$TMP/teacher/best.h5" --data "$TMP/unl.h5"
[ "$(wc -l <"$TMP/out")" -eq 40 ] && pass "predict: 40 lines" || fail "predict: $(wc -l <"$TMP/out") lines"

student() { # name train-list val
  cat <<EOF
run: {dir: $TMP/$1, seed: 2}
data: {train: $2, val: $3, batch_size: 8}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 4}
  feature_dim: 16
  encoder: {layers: 1, hidden: 16}
teacher: {checkpoint: $TMP/teacher/best.h5}
distill: {distance: {l2: 1.0}, ctc_weight: 0.5, teacher_cache: on, allow_any_size: true}
optim: {name: adam, lr: 1.0e-3}
stop: {max_steps: 12, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 0}
log: {every_steps: 4}
EOF
}
student badval "[$TMP/data/train.h5]" "$TMP/unl.h5" >"$TMP/badval.yaml"
expect_code 3 "distill refuses an unlabeled data.val" -- "$BIN/ocrkd" distill "$TMP/badval.yaml"
expect_grep "unl.h5: an unlabeled file .*data.val" "$TMP/err" "the error names data.val"

student mixed "[$TMP/data/train.h5, $TMP/unl.h5]" "$TMP/data/val.h5" >"$TMP/mixed.yaml"
expect_code 0 "distill on [labeled.h5, unlabeled.h5], 2 ranks, teacher cache on" -- \
  $MPI "$BIN/ocrkd" distill "$TMP/mixed.yaml"
expect_grep 'teacher encoder outputs cached' "$TMP/out" "the cache is on"
expect_grep '^data +40 unlabeled samples' "$TMP/out" "start-up names the unlabeled samples"
# rank 0 owns train.h5 (8 labeled a step), rank 1 unl.h5 (8 unlabeled): 4 steps a log line
expect_grep 'ctc [0-9.]+ \(32 lab \+ 32 unl\)' "$TMP/out" "log line: labeled and unlabeled counts"
expect_grep '"labeled":32,"unlabeled":32' "$TMP/mixed/metrics.jsonl" "metrics.jsonl: both counts"
expect_grep '"split":"val"' "$TMP/mixed/metrics.jsonl" "validated on the labeled val set"

student unlonly "$TMP/unl.h5" "$TMP/data/val.h5" >"$TMP/unlonly.yaml"
expect_code 0 "distill on the unlabeled file alone, 2 ranks" -- $MPI "$BIN/ocrkd" distill "$TMP/unlonly.yaml"
expect_grep '"ctc":0,.*"labeled":0,"unlabeled":64' "$TMP/unlonly/metrics.jsonl" \
  "no labeled sample: CTC 0, counts 0 + 64 (both ranks)"
e2e_end
