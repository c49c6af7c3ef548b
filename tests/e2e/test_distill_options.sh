# test_distill_options.sh - distillation beyond the method's default form
# (distill.feature_distance, distill.logit_kl), the teacher cache with those
# terms (cached == recomputed, bit for bit, when the batches repeat), the
# teacher evaluated at the start of a distill run and the gap logged, the
# wall clock in metrics.jsonl, training-time augmentation with its config
# ranges, and the errors of bad values. Run by tests/run.sh.
. tests/e2e/lib.sh
MPI="mpirun -np 2 --oversubscribe"
export OCRKD_THREADS=1

"$BIN/ocrkd-synth" --out "$TMP/data" --train 128 --val 32 --test 0 --width 64 --max-len 5 \
  --seed 3 --quiet >"$TMP/synth.log" 2>&1 && pass "synth tiny dataset" || { fail "synth"; cat "$TMP/synth.log"; }

cat >"$TMP/teacher.yaml" <<EOF
run: {dir: $TMP/teacher, seed: 1}
data: {train: $TMP/data/train.h5, val: $TMP/data/val.h5, batch_size: 16}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 8}
  feature_dim: 16
  encoder: {layers: 1, hidden: 16}
optim: {name: adam, lr: 3.0e-3}
stop: {max_steps: 16, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 0}
log: {every_steps: 4}
EOF
# student: shuffle off, so every epoch has the same batches and the cache
# must give exactly what a teacher forward gives
student() { # name cache [extra YAML lines]
  cat <<EOF
run: {dir: $TMP/$1, seed: 2}
data: {train: $TMP/data/train.h5, val: $TMP/data/val.h5, batch_size: 8, shuffle: false}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 4}
  feature_dim: 16
  encoder: {layers: 1, hidden: 16}
teacher: {checkpoint: $TMP/teacher/best.h5}
distill:
  train: [extractor, classifier]
  distance: {l2: 1.0}
  feature_distance: {l2: 1.0, cosine: 0.5}
  logit_kl: 0.5
  temperature: 2.0
  teacher_cache: $2
  allow_any_size: true
optim: {name: adam, lr: 1.0e-3}
stop: {max_steps: 24, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 12}
log: {every_steps: 4}
$3
EOF
}
# same_params RUN_A RUN_B WHAT: pass when the two runs' step-24 parameters are
# bit-identical; differ_params: pass when they are not
same_params() {
  if h5diff "$TMP/$1/ckpt-00000024.h5" "$TMP/$2/ckpt-00000024.h5" /params /params >"$TMP/diff" 2>&1; then
    pass "$3"
  else
    fail "$3: they differ"; head -n 5 "$TMP/diff"
  fi
}
differ_params() {
  if h5diff "$TMP/$1/ckpt-00000024.h5" "$TMP/$2/ckpt-00000024.h5" /params /params >/dev/null 2>&1; then
    fail "$3: bit-identical"
  else
    pass "$3"
  fi
}
expect_code 0 "train the teacher" -- "$BIN/ocrkd" train "$TMP/teacher.yaml"
student cached on >"$TMP/cached.yaml"
student direct off >"$TMP/direct.yaml"
expect_code 0 "distill with feature_distance + logit_kl, teacher cached (2 ranks)" -- \
  $MPI "$BIN/ocrkd" distill "$TMP/cached.yaml"
expect_grep 'teacher encoder outputs cached' "$TMP/out" "the cache is on"
expect_grep '^summary +best val word_acc: student [0-9.]+, teacher [0-9.]+' "$TMP/out" \
  "the summary gives student and teacher"
expect_code 0 "the same, teacher recomputed every step" -- $MPI "$BIN/ocrkd" distill "$TMP/direct.yaml"
same_params cached direct "cached teacher outputs (encoder, features, posteriors) give bit-identical parameters"
M=$TMP/cached/metrics.jsonl
expect_grep '^\{"wall":[0-9.]+,"step":0,"split":"val","model":"teacher","word_acc":' "$M" \
  "the teacher's validation is logged at step 0"
expect_grep '"split":"val","word_acc":[0-9.e-]+,.*"gap_to_teacher":' "$M" "student val lines give the gap"
expect_grep '^\{"wall":[0-9.]+,"step":[0-9]+,"epoch"' "$M" "log lines carry the wall clock"
bad=$(grep -cv '^{"wall":' "$M")
[ "$bad" -eq 0 ] && pass "every metrics line starts with wall" || fail "$bad metrics lines without wall"

# data.train_limit: the first 32 samples of the file, cached, give exactly
# what a file holding only those 32 samples gives
/usr/bin/python3 - "$TMP/data/train.h5" "$TMP/first32.h5" <<'PY' && pass "a 32-sample copy of train.h5 (h5py)" || fail "h5py copy"
import sys, h5py
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "w") as b:
    for k, v in a.attrs.items():
        b.attrs[k] = v
    for name in a:
        b.create_dataset(name, data=a[name][:32], dtype=a[name].dtype)
PY
student limit on "" | sed 's/shuffle: false}/shuffle: false, train_limit: 32}/' >"$TMP/limit.yaml"
student first32 on "" | sed "s#train: $TMP/data/train.h5#train: $TMP/first32.h5#" >"$TMP/first32.yaml"
expect_code 0 "distill with data.train_limit 32, teacher cached (2 ranks)" -- $MPI "$BIN/ocrkd" distill "$TMP/limit.yaml"
expect_grep 'data.train_limit: only the first 32 samples' "$TMP/out" "the limit is said"
expect_grep '^data +16 samples per rank, 2 ranks, batch 8 per rank \(global 16\), 2 steps per epoch' "$TMP/out" \
  "16 samples per rank, 2 steps per epoch"
expect_code 0 "the same on a file of those 32 samples" -- $MPI "$BIN/ocrkd" distill "$TMP/first32.yaml"
same_params limit first32 "train_limit 32 gives bit-identical parameters to a 32-sample file"
differ_params limit cached "train_limit changes what the student sees"

# augmentation: on, with its ranges; the cache is then off
student aug on "augment: {prob: 1, stretch: 0.5, perspective: 0.3, rotate: 10, crop: 0.2, blur: 2,
  lowres: 0.3, noise: 0.2, contrast: 0.8, brightness: 0.3, invert: 0.5}" |
  sed 's/shuffle: false}/shuffle: false, augment: true}/' >"$TMP/aug.yaml"
expect_code 0 "distill with every augmentation at strong settings" -- $MPI "$BIN/ocrkd" distill "$TMP/aug.yaml"
expect_grep 'ignored because data.augment is on' "$TMP/err" "teacher_cache: on is refused with augmentation"
differ_params aug direct "augmentation changes what the student learns"

# distill.student_init: teacher - the extractor selected from the teacher's
student select on "" | sed 's/  teacher_cache: on/  teacher_cache: on\n  student_init: teacher/' >"$TMP/select.yaml"
expect_code 0 "distill with student_init: teacher (2 ranks)" -- $MPI "$BIN/ocrkd" distill "$TMP/select.yaml"
expect_grep "extractor selected from the teacher's" "$TMP/out" "the selection is said"
differ_params select cached "a selected extractor is not the random one"
expect_code 0 "the selected run resumed (--resume auto, finished)" -- $MPI "$BIN/ocrkd" distill "$TMP/select.yaml" --resume auto
if grep -q "extractor selected from the teacher's" "$TMP/out"; then
  fail "a resumed run says its extractor was selected (the checkpoint's is used)"
else
  pass "a resumed run does not say the extractor was selected"
fi
sed -e 's/width: 4}/width: 4}\n  init: x.h5/' -e 's#/select,#/select-init,#' "$TMP/select.yaml" >"$TMP/select-init.yaml"
expect_code 2 "student_init: teacher with model.init" -- $MPI "$BIN/ocrkd" distill "$TMP/select-init.yaml"
expect_grep 'model.init \(x.h5\) and distill.student_init: teacher both' "$TMP/err" "names both keys"
sed -e 's/blocks: \[1, 1, 1, 1\], block: basic, width: 4/blocks: [1, 2, 1, 1], block: basic, width: 4/' \
  -e 's#/select,#/select-deep,#' \
  "$TMP/select.yaml" >"$TMP/select-deep.yaml"
expect_code 2 "student_init: teacher with a deeper student" -- $MPI "$BIN/ocrkd" distill "$TMP/select-deep.yaml"
expect_grep "student_init: teacher \($TMP/teacher/best.h5\): the teacher has no tensor extractor.layer2.1" \
  "$TMP/err" "names the teacher's file and the missing block"

# model.init in distill (SPEC): the init loads first and the teacher's copies
# replace only the frozen parts, so a second phase keeps what the first one
# trained. At lr 1e-30 no weight moves, so the step-2 tensors are the start's.
same_tensor() { # A.h5 B.h5 TENSOR WHAT
  if h5diff "$1" "$2" "/params/$3" "/params/$3" >/dev/null 2>&1; then pass "$4"; else fail "$4: they differ"; fi
}
INIT=$TMP/cached/ckpt-00000024.h5
init_run() { # name train-list
  student "$1" off "" | sed -e "s#width: 4}#width: 4}\n  init: $INIT#" -e "s/train: \[extractor, classifier\]/train: $2/" \
    -e 's/lr: 1.0e-3/lr: 1.0e-30/' -e 's/max_steps: 24/max_steps: 2/' >"$TMP/$1.yaml"
  expect_code 0 "distill from model.init, train $2" -- $MPI "$BIN/ocrkd" distill "$TMP/$1.yaml"
}
if h5diff "$INIT" "$TMP/teacher/best.h5" /params/classifier.weight /params/classifier.weight >/dev/null 2>&1; then
  fail "the distilled classifier should differ from the teacher's"
else
  pass "the distilled classifier differs from the teacher's"
fi
init_run init-cls "[extractor, classifier]"
same_tensor "$TMP/init-cls/ckpt-00000002.h5" "$INIT" classifier.weight "a trainable classifier starts as model.init's"
same_tensor "$TMP/init-cls/ckpt-00000002.h5" "$TMP/teacher/best.h5" encoder.weight_hh_l0 "the frozen encoder is the teacher's"
# an init whose encoder is not the teacher's: the student trained alone a little
sed -e "s#dir: $TMP/teacher#dir: $TMP/alone#" -e 's/width: 8}/width: 4}/' -e 's/max_steps: 16/max_steps: 4/' \
  "$TMP/teacher.yaml" >"$TMP/alone.yaml"
expect_code 0 "the student trained alone for 4 steps" -- "$BIN/ocrkd" train "$TMP/alone.yaml"
INIT=$TMP/alone/best.h5
init_run init-all "[extractor, encoder, classifier]"
same_tensor "$TMP/init-all/ckpt-00000002.h5" "$INIT" encoder.weight_hh_l0 "a trainable encoder starts as model.init's"
same_tensor "$TMP/init-all/ckpt-00000002.h5" "$INIT" classifier.weight "so does a trainable classifier"
if h5diff "$INIT" "$TMP/teacher/best.h5" /params/encoder.weight_hh_l0 /params/encoder.weight_hh_l0 >/dev/null 2>&1; then
  fail "the alone-trained encoder should differ from the teacher's"
else
  pass "the alone-trained encoder differs from the teacher's"
fi
init_run init-frozen "[extractor]"
same_tensor "$TMP/init-frozen/ckpt-00000002.h5" "$TMP/teacher/best.h5" classifier.weight \
  "a frozen classifier is the teacher's, whatever model.init holds"
same_tensor "$TMP/init-frozen/ckpt-00000002.h5" "$INIT" extractor.conv1.weight "the extractor starts as model.init's"

# bad values name the file, line and key
printf 'augment: {prob: 1.5}\n' >"$TMP/bad1.yaml"
expect_code 2 "augment.prob 1.5" -- "$BIN/ocrkd" train "$TMP/bad1.yaml"
expect_grep 'bad1.yaml:1:17: augment.prob must be in \[0, 1\]' "$TMP/err" "names file:line:col and the range"
printf 'distill:\n  feature_distance: {l3: 1}\n' >"$TMP/bad2.yaml"
expect_code 2 "unknown feature distance" -- "$BIN/ocrkd" train "$TMP/bad2.yaml"
expect_grep 'bad2.yaml:2:22: unknown distance .l3. in distill.feature_distance' "$TMP/err" \
  "names the distance and the key"
printf 'distill: {logit_kl: -1}\n' >"$TMP/bad3.yaml"
expect_code 2 "negative logit_kl" -- "$BIN/ocrkd" train "$TMP/bad3.yaml"
expect_grep 'distill.logit_kl must be' "$TMP/err" "names the key"
e2e_end
