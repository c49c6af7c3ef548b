# test_train.sh - the main job end to end on tiny models: train a teacher,
# distill a student on 2 ranks, frozen tensors, eval/predict/info, exact
# resume, SIGUSR1 preemption, a killed rank, convergence, and the exit codes
# of bad input. Run by tests/run.sh.
. tests/e2e/lib.sh
MPI="mpirun -np 2 --oversubscribe"
export OCRKD_THREADS=1

# -- data -----------------------------------------------------------------
"$BIN/ocrkd-synth" --out "$TMP/data" --train 256 --val 48 --test 48 --width 64 --max-len 5 \
  --seed 7 --quiet >"$TMP/synth.log" 2>&1 && pass "synth tiny dataset" || { fail "synth"; cat "$TMP/synth.log"; }

cat >"$TMP/teacher.yaml" <<EOF
run: {dir: $TMP/teacher, seed: 1}
data: {train: $TMP/data/train.h5, val: $TMP/data/val.h5, batch_size: 16}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 8}
  feature_dim: 16
  encoder: {layers: 2, hidden: 16}
optim: {name: adam, lr: 3.0e-3, schedule: {type: constant, warmup_steps: 0}}
stop: {max_steps: 24, converge: {window: 0}}
checkpoint: {every_steps: 8, keep: 2}
eval: {every_steps: 12}
log: {every_steps: 4}
EOF
cat >"$TMP/student.yaml" <<EOF
run: {dir: $TMP/student, seed: 2}
data: {train: $TMP/data/train.h5, batch_size: 8}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 4}
  feature_dim: 16
  encoder: {layers: 2, hidden: 16}
teacher: {checkpoint: $TMP/teacher/best.h5}
distill: {distance: {l2: 1.0, cosine: 0.5}, teacher_cache: off}
optim: {name: adam, lr: 1.0e-3, schedule: {type: cosine, warmup_steps: 2, total_steps: 16}}
stop: {max_steps: 16, converge: {window: 0}}
checkpoint: {every_steps: 8, keep: 5}
eval: {every_steps: 0}
log: {every_steps: 4}
EOF

# -- teacher --------------------------------------------------------------
expect_code 0 "train teacher (1 rank)" -- "$BIN/ocrkd" train "$TMP/teacher.yaml"
for f in ckpt-00000016.h5 ckpt-00000024.h5 best.h5 metrics.jsonl; do
  [ -f "$TMP/teacher/$f" ] && pass "teacher run wrote $f" || fail "teacher run did not write $f"
done
[ ! -f "$TMP/teacher/ckpt-00000008.h5" ] && pass "checkpoint.keep: 2 pruned step 8" || fail "step 8 not pruned"
expect_grep '"split":"val"' "$TMP/teacher/metrics.jsonl" "metrics.jsonl has a val evaluation"
expect_grep '"img_per_s"' "$TMP/teacher/metrics.jsonl" "metrics.jsonl has log lines"
expect_code 0 "info on a checkpoint" -- "$BIN/ocrkd" info "$TMP/teacher/best.h5"
expect_grep 'parameters +extractor' "$TMP/out" "info prints parameter counts per part"
expect_code 0 "info on a dataset" -- "$BIN/ocrkd" info "$TMP/data/val.h5"
expect_code 0 "eval --json" -- "$BIN/ocrkd" eval --model "$TMP/teacher/best.h5" --data "$TMP/data/test.h5" --json
expect_grep '^\{"step":[0-9]+,"split":"test","word_acc":' "$TMP/out" "eval --json prints one object"
expect_code 0 "predict --dump-logits" -- "$BIN/ocrkd" predict --model "$TMP/teacher/best.h5" \
  --data "$TMP/data/test.h5" --dump-logits "$TMP/logits.h5"
[ "$(wc -l <"$TMP/out")" -eq 48 ] && pass "predict prints one line per image" || fail "predict printed $(wc -l <"$TMP/out") lines"
h5dump -H -d /logits "$TMP/logits.h5" 2>/dev/null | grep -q 'DATASPACE  SIMPLE { ( 48, 16, 37 )' \
  && pass "logits are [N, T, K] = [48, 16, 37]" || fail "logits shape"
expect_code 0 "eval under mpirun -np 2" -- $MPI "$BIN/ocrkd" eval --model "$TMP/teacher/best.h5" --data "$TMP/data/test.h5" --json
n2=$(grep -o '"n":[0-9]*' "$TMP/out"); [ "$n2" = '"n":48' ] && pass "2-rank eval counts every image once" || fail "2-rank eval: $n2"

# -- distill on 2 ranks ---------------------------------------------------
expect_code 0 "distill (2 ranks)" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml"
expect_grep 'distance' "$TMP/student/metrics.jsonl" "distill logs the distance term"
$PY - "$TMP/teacher/best.h5" "$TMP/student/ckpt-00000016.h5" >"$TMP/frozen.log" 2>&1 <<'EOF'
import sys, h5py, numpy as np
t, s = h5py.File(sys.argv[1], "r")["params"], h5py.File(sys.argv[2], "r")["params"]
frozen = [k for k in s if not k.startswith("extractor.")]
same = all(np.array_equal(t[k][()], s[k][()]) for k in frozen)
print("frozen tensors:", len(frozen), "identical:", same)
sys.exit(0 if same and len(frozen) > 0 else 1)
EOF
[ $? -eq 0 ] && pass "encoder+classifier bit-identical to the teacher" || { fail "frozen tensors changed"; cat "$TMP/frozen.log"; }

before=$(ls "$TMP/student")
expect_code 0 "bench of the distillation (2 ranks)" -- $MPI "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 2
expect_grep '^bench +distill: 2 steps, 2 ranks x batch 8: [0-9.]+ images/s' "$TMP/out" "bench prints images/s"
expect_grep 'teacher forward alone: [0-9.]+ images/s' "$TMP/out" "bench prints the teacher's throughput"
expect_grep 'allreduce +[0-9.]+ ms/step' "$TMP/out" "bench prints the time split"
[ "$(ls "$TMP/student")" = "$before" ] && pass "bench writes nothing to run.dir" || fail "bench changed $TMP/student"
expect_grep 'student step +[0-9.]+ GFLOP/s +[0-9.]+% of peak' "$TMP/out" "bench prints GFLOP/s and % of peak"

# -- ocrkd's GEMM: threads change nothing but speed; OCRKD_GEMM picks the path --
expect_code 0 "distill 4 steps, 1 rank x 1 thread" -- env OCRKD_THREADS=1 "$BIN/ocrkd" distill \
  "$TMP/student.yaml" --set run.dir="$TMP/thr1" --set stop.max_steps=4
expect_code 0 "distill 4 steps, 1 rank x 2 threads" -- env OCRKD_THREADS=2 "$BIN/ocrkd" distill \
  "$TMP/student.yaml" --set run.dir="$TMP/thr2" --set stop.max_steps=4
if h5diff "$TMP/thr1/ckpt-00000004.h5" "$TMP/thr2/ckpt-00000004.h5" /params /params >"$TMP/diff" 2>&1; then
  pass "2 threads bit-identical to 1 thread"
else fail "2 threads differ from 1"; head -n 20 "$TMP/diff"; fi
# -- the gradient allreduce overlapped with backward: buckets change nothing --
expect_code 0 "distill 4 steps on 2 ranks, one allreduce after backward" -- env OCRKD_BUCKET_KB=0 \
  $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/bk0" --set stop.max_steps=4
expect_code 0 "distill 4 steps on 2 ranks, 1 KiB buckets during backward" -- env OCRKD_BUCKET_KB=1 \
  $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/bk1" --set stop.max_steps=4
if h5diff "$TMP/bk0/ckpt-00000004.h5" "$TMP/bk1/ckpt-00000004.h5" /params /params >"$TMP/diff" 2>&1; then
  pass "bucketed allreduce bit-identical to one allreduce"
else fail "bucketed allreduce differs"; head -n 20 "$TMP/diff"; fi
expect_code 2 "OCRKD_BUCKET_KB=big is refused" -- env OCRKD_BUCKET_KB=big "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_BUCKET_KB=big: not a size' "$TMP/err" "the error names OCRKD_BUCKET_KB"
expect_code 0 "bench with OCRKD_GEMM=openblas" -- env OCRKD_GEMM=openblas "$BIN/ocrkd" bench \
  "$TMP/student.yaml" --steps 1
expect_grep 'GEMM rate per rank \(1 thread\(s\), cblas' "$TMP/out" "OCRKD_GEMM=openblas runs cblas_sgemm"
expect_code 2 "OCRKD_GEMM=fast is refused" -- env OCRKD_GEMM=fast "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_GEMM=fast: unknown; one of auto, avx512, avx2, openblas' "$TMP/err" "the error names OCRKD_GEMM and its values"
expect_code 0 "distill 4 steps with OCRKD_WINOGRAD=on (student and teacher 3x3 convs of >= 16 channels)" -- \
  env OCRKD_WINOGRAD=on $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/wino" \
  --set stop.max_steps=4
expect_grep '^step +4 .*loss [0-9]' "$TMP/out" "the Winograd run logs a finite loss at step 4"
expect_code 0 "distill 4 steps with OCRKD_WINOGRAD=off (im2col everywhere)" -- \
  env OCRKD_WINOGRAD=off $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/nowino" \
  --set stop.max_steps=4
expect_grep '^step +4 .*loss [0-9]' "$TMP/out" "the im2col run logs a finite loss at step 4"
expect_code 2 "OCRKD_WINOGRAD=maybe is refused" -- env OCRKD_WINOGRAD=maybe "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_WINOGRAD=maybe: unknown; auto, on or off' "$TMP/err" "the error names OCRKD_WINOGRAD and its values"
expect_code 0 "distill 4 steps with OCRKD_WINOGRAD_TILE=4 (the teacher's inference forward on F(4x4) everywhere)" -- \
  env OCRKD_WINOGRAD_TILE=4 $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/wino4" \
  --set stop.max_steps=4
expect_grep '^step +4 .*loss [0-9]' "$TMP/out" "the F(4x4) run logs a finite loss at step 4"
expect_code 2 "OCRKD_WINOGRAD_TILE=3 is refused" -- env OCRKD_WINOGRAD_TILE=3 "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_WINOGRAD_TILE=3: unknown; auto, 2 or 4' "$TMP/err" "the error names OCRKD_WINOGRAD_TILE and its values"
expect_code 2 "OCRKD_WINOGRAD_LANES=16 is refused" -- env OCRKD_WINOGRAD_LANES=16 "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_WINOGRAD_LANES=16: unknown; 4 or 8' "$TMP/err" "the error names OCRKD_WINOGRAD_LANES and its values"
expect_code 2 "OCRKD_DENORMALS=fast is refused" -- env OCRKD_DENORMALS=fast "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep 'OCRKD_DENORMALS=fast: unknown; flush \(the default\) or keep' "$TMP/err" "the error names OCRKD_DENORMALS and its values"
expect_code 0 "bench with OCRKD_DENORMALS=keep" -- env OCRKD_DENORMALS=keep "$BIN/ocrkd" bench "$TMP/student.yaml" --steps 1
expect_grep '^numerics denormals kept' "$TMP/out" "the banner says the denormals are kept"

# -- exact resume: stop at 8, resume to 16 == straight to 16 ----------------
expect_code 0 "distill to step 8" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/resumed" --set stop.max_steps=8
expect_code 0 "resume to step 16" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/resumed" --resume auto
if h5diff "$TMP/student/ckpt-00000016.h5" "$TMP/resumed/ckpt-00000016.h5" /params /params >"$TMP/diff" 2>&1; then
  pass "resumed run bit-identical to the uninterrupted one"
else fail "resumed run differs"; head -n 20 "$TMP/diff"; fi

# -- preemption: SIGUSR1 -> checkpoint + exit 75, then resume -------------------
$MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/preempt" \
  --set stop.max_steps=100000 --set checkpoint.every_steps=100000 >"$TMP/pre.log" 2>&1 &
pid=$!
i=0; while [ $i -lt 120 ] && ! grep -q '^step' "$TMP/pre.log"; do sleep 0.5; i=$((i + 1)); done
kill -USR1 $pid
wait $pid; rc=$?
[ $rc -eq 75 ] && pass "SIGUSR1 under mpirun exits 75" || { fail "SIGUSR1 gave exit $rc"; tail -n 20 "$TMP/pre.log"; }
ls "$TMP/preempt"/ckpt-*.h5 >/dev/null 2>&1 && pass "preempted run left a checkpoint" || fail "no checkpoint after SIGUSR1"
expect_code 0 "preempted run resumes" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/preempt" --set stop.max_steps=40 --resume auto
expect_grep 'resume +' "$TMP/out" "resume is logged"

expect_code 0 "a 2-rank checkpoint resumes on 1 rank" -- "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/preempt" --set stop.max_steps=48 --resume auto
expect_grep 're-sharded' "$TMP/out" "resuming on another rank count re-shards the data (logged)"

# -- non-finite loss: every rank skips, then exit 5 --------------------------
expect_code 0 "one non-finite gradient on rank 1 is skipped by all" -- $MPI -x OCRKD_FAULT_NAN=1:5:1 \
  "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/nan1"
expect_grep 'step 5: non-finite loss or gradient on 1 rank' "$TMP/err" "the skipped update is reported"
expect_code 5 "10 non-finite steps in a row end the run with exit 5" -- $MPI -x OCRKD_FAULT_NAN=1:3:100 \
  "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/nan"
[ ! -f "$TMP/nan/ckpt-00000012.h5" ] && pass "no checkpoint written from the failed steps" || fail "exit 5 wrote a checkpoint"

# -- a rank that dies ends the job -------------------------------------------
$MPI "$BIN/ocrkd" distill "$TMP/student.yaml" --set run.dir="$TMP/killed" \
  --set stop.max_steps=100000 >"$TMP/kill.log" 2>&1 &
pid=$!
i=0; while [ $i -lt 120 ] && ! grep -q '^step' "$TMP/kill.log"; do sleep 0.5; i=$((i + 1)); done
victim=$(pgrep -f "ocrkd distill $TMP/student.yaml --set run.dir=$TMP/killed" | grep -v "^$pid$" | while read p; do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = ocrkd ] && echo $p; done | tail -n 1)
[ -n "$victim" ] && kill -9 "$victim"
i=0; while [ $i -lt 60 ] && kill -0 $pid 2>/dev/null; do sleep 0.5; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then fail "job hangs after a rank was killed"; kill -9 $pid; else
  wait $pid; rc=$?; [ $rc -ne 0 ] && pass "killed rank ends the job (exit $rc)" || fail "killed rank: exit 0"; fi

# -- convergence --------------------------------------------------------------
expect_code 0 "plateaued loss converges" -- "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/conv" --set optim.lr=1.0e-12 --set stop.max_steps=1000 \
  --set stop.converge="{window: 4, rel_tol: 0.5, patience: 2}"
expect_grep 'stop +converged at step 12' "$TMP/out" "converged after 3 windows of 4, not before"

# -- a cosine over time (optim.schedule.over: time) ---------------------------
# 2 ranks, no step limit: the run ends when its 1.5 s are used, the lr near
# its floor by then (it is rank 0's clock: both ranks apply the same lr, or
# their replicas would part and the agreement check at a resume fail)
expect_code 0 "distill with a cosine over 1.5 s" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/overtime" --set stop.max_steps=0 --set stop.max_minutes=0.025 \
  --set optim.schedule="{type: cosine, warmup_steps: 2, over: time}" --set log.every_steps=2
expect_grep 'stop +reached stop.max_minutes at step' "$TMP/out" "stopped by its time"
/usr/bin/python3 - "$TMP/overtime/metrics.jsonl" <<'PY' && pass "lr falls with the time used, near 0 at the end" || fail "lr over time"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"lr"' in l]
lrs = [r["lr"] for r in rows if r["step"] > 2]
print(len(lrs), lrs[0], lrs[-1])
assert len(lrs) >= 4 and all(b <= a for a, b in zip(lrs, lrs[1:])), lrs
assert lrs[-1] < 0.3e-3 and lrs[0] > 0.7e-3, lrs
PY
expect_code 0 "a finished time-limited run resumes without a step" -- $MPI "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/overtime" --set stop.max_steps=0 --set stop.max_minutes=0.025 \
  --set optim.schedule="{type: cosine, warmup_steps: 2, over: time}" --resume auto
expect_grep 'stop +reached stop.max_minutes at step' "$TMP/out" "the resumed run says its time is used"
expect_code 2 "over: time without stop.max_minutes is refused" -- "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/overtime2" --set optim.schedule.over=time
expect_grep 'optim.schedule.over: time needs stop.max_minutes' "$TMP/err" "the error says what is missing"

# -- bad input ----------------------------------------------------------------
printf 'optim: {lrr: 1}\n' >"$TMP/bad.yaml"
expect_code 2 "unknown config key" -- "$BIN/ocrkd" train "$TMP/bad.yaml"
expect_grep "bad.yaml:1:[0-9]+: .*lrr" "$TMP/err" "error names file:line:col and the key"
expect_code 2 "missing config" -- "$BIN/ocrkd" train "$TMP/nope.yaml"
expect_code 3 "missing training data" -- "$BIN/ocrkd" train "$TMP/teacher.yaml" --set data.train="$TMP/nope.h5"
expect_code 4 "corrupt teacher checkpoint" -- sh -c "head -c 2000 '$TMP/teacher/best.h5' >'$TMP/trunc.h5' && '$BIN/ocrkd' distill '$TMP/student.yaml' --set run.dir='$TMP/bad1' --set teacher.checkpoint='$TMP/trunc.h5'"
expect_code 2 "student larger than the teacher" -- "$BIN/ocrkd" distill "$TMP/student.yaml" \
  --set run.dir="$TMP/bad2" --set model.extractor="{blocks: [2, 2, 2, 2], block: basic, width: 16}"
expect_grep "allow_any_size" "$TMP/err" "size error names the override"
expect_code 2 "unknown command" -- "$BIN/ocrkd" frobnicate
expect_code 0 "--version" -- "$BIN/ocrkd" --version
# OpenBLAS kernels: a set OPENBLAS_CORETYPE is kept as it is; OCRKD_BLAS_CORE=keep
# keeps OpenBLAS's own detection; unset, ocrkd may replace a fallback (blas_core.c)
expect_code 0 "--version, OPENBLAS_CORETYPE=Haswell" -- env OPENBLAS_CORETYPE=Haswell "$BIN/ocrkd" --version
expect_grep "^OpenBLAS Haswell kernels \\(OPENBLAS_CORETYPE=Haswell\\)" "$TMP/out" "a set OPENBLAS_CORETYPE is kept"
expect_code 0 "--version, OCRKD_BLAS_CORE=keep" -- env -u OPENBLAS_CORETYPE OCRKD_BLAS_CORE=keep "$BIN/ocrkd" --version
expect_grep "\\(its CPU detection\\)" "$TMP/out" "OCRKD_BLAS_CORE=keep keeps the detection"
expect_code 0 "--version, unset" -- env -u OPENBLAS_CORETYPE "$BIN/ocrkd" --version
expect_grep "its CPU detection|set by ocrkd" "$TMP/out" "unset: the detection or ocrkd's replacement, said"
e2e_end
