#!/bin/sh
# test_faults.sh - the faults a kill-and-fuzz campaign found (issue 9), end
# to end on a tiny model: datasets whose height is not the model's refused
# by every command; a run.dir that a resume or a fresh run would damage
# refused, --resume fresh, and pruning that spares other runs' files and
# the file just written; checkpoint attributes altered or absurd refused by
# every reader; a signal during start-up; every stop signal through
# jobs/local/run.sh ending in exit 75; a 100000-level nested config.
# Run by tests/run.sh.
. tests/e2e/lib.sh
MPI="mpirun -np 2 --oversubscribe"
export OCRKD_THREADS=1

"$BIN/ocrkd-synth" --out "$TMP/data" --train 128 --val 32 --test 32 --width 64 --max-len 5 \
  --seed 3 --quiet >"$TMP/synth.log" 2>&1 && pass "synth tiny dataset" || { fail "synth"; cat "$TMP/synth.log"; }
cat >"$TMP/t.yaml" <<EOF
run: {dir: $TMP/t, seed: 1}
data: {train: $TMP/data/train.h5, batch_size: 8}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 4}
  feature_dim: 8
  encoder: {layers: 1, hidden: 8}
optim: {name: adam, lr: 1.0e-3, schedule: {type: constant, warmup_steps: 0}}
stop: {max_steps: 8, converge: {window: 0}}
checkpoint: {every_steps: 4, keep: 3}
eval: {every_steps: 0}
log: {every_steps: 2}
EOF
expect_code 0 "train a tiny model to step 8" -- "$BIN/ocrkd" train "$TMP/t.yaml"
CK=$TMP/t/best.h5

# -- 1. a dataset whose height is not the model's 32 is refused (exit 3) -----------
$PY - "$TMP" <<'EOF'
import sys, h5py, numpy as np
for h in (16, 8, 1, 48):
    with h5py.File("%s/h%d.h5" % (sys.argv[1], h), "w") as f:
        f.attrs.update(format="ocrkd-dataset", version=1, alphabet="0123456789", height=h, width=64)
        f.create_dataset("images", data=np.full((16, h, 64), 200, np.uint8))
        f.create_dataset("labels", data=["1"] * 16, dtype=h5py.string_dtype())
EOF
for h in 16 1 48; do
  expect_code 3 "train on images $h high" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
    --set run.dir="$TMP/h$h" --set data.train="$TMP/h$h.h5"
  expect_grep "h$h.h5: images are $h pixels high but the model's input is 32" "$TMP/err" \
    "the error names the file, its height and the model's"
  [ ! -e "$TMP/h$h" ] && pass "refused before run.dir is made" || fail "run.dir $TMP/h$h made"
  expect_code 3 "eval on images $h high" -- "$BIN/ocrkd" eval --model "$CK" --data "$TMP/h$h.h5"
  expect_code 3 "predict --data on images $h high" -- "$BIN/ocrkd" predict --model "$CK" --data "$TMP/h$h.h5"
done
expect_code 3 "eval on 2 ranks, images 8 high" -- $MPI "$BIN/ocrkd" eval --model "$CK" --data "$TMP/h8.h5"
expect_code 3 "train with data.val 8 high" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
  --set run.dir="$TMP/h8" --set data.val="$TMP/h8.h5"
expect_code 3 "distill with data.val 8 high" -- "$BIN/ocrkd" distill "$TMP/t.yaml" --set run.dir="$TMP/h8" \
  --set teacher.checkpoint="$CK" --set data.val="$TMP/h8.h5" --set distill.allow_any_size=true
expect_code 3 "bench on images 16 high" -- "$BIN/ocrkd" bench "$TMP/t.yaml" --set data.train="$TMP/h16.h5"
expect_code 0 "info describes a file 48 high" -- "$BIN/ocrkd" info "$TMP/h48.h5"
expect_grep "height 48 is not the model's input height 32" "$TMP/out" "info says such a file is refused"

# -- 2. run.dir: refuse what would mix runs or lose them ------------------------------
expect_code 2 "a fresh run in a run.dir holding checkpoints is refused" -- "$BIN/ocrkd" train "$TMP/t.yaml"
expect_grep "already holds 2 checkpoint.*ckpt-00000008.h5, ckpt-00000004.h5.*--resume auto.*--resume fresh" \
  "$TMP/err" "the refusal names the files and both ways out"
cp -r "$TMP/t" "$TMP/bad"
for f in "$TMP/bad"/ckpt-*.h5; do head -c 3000 "$f" >"$f.cut" && mv "$f.cut" "$f"; done
head -c 5000 /dev/urandom >"$TMP/bad/ckpt-00000099.h5"
before=$(cd "$TMP/bad" && ls -l --time-style=+%s.%N && cksum ckpt-*)
expect_code 4 "--resume auto when no checkpoint verifies" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
  --set run.dir="$TMP/bad" --resume auto
expect_grep "none of the 3 checkpoint\(s\) in $TMP/bad verifies \(ckpt-00000099.h5, ckpt-00000008.h5, ckpt-00000004.h5" \
  "$TMP/err" "exit 4 names the files"
expect_grep "start over with --resume fresh" "$TMP/err" "and the flag that starts over"
[ "$(cd "$TMP/bad" && ls -l --time-style=+%s.%N && cksum ckpt-*)" = "$before" ] \
  && pass "nothing in run.dir changed" || fail "run.dir changed by a refused resume"
expect_code 0 "--resume fresh starts over" -- "$BIN/ocrkd" train "$TMP/t.yaml" --set run.dir="$TMP/bad" --resume fresh
expect_grep "5 file\(s\) of the earlier run moved to $TMP/bad/previous-1" "$TMP/out" "--resume fresh says where the files went"
[ -f "$TMP/bad/previous-1/ckpt-00000099.h5" ] && [ -f "$TMP/bad/previous-1/metrics.jsonl" ] \
  && pass "the earlier run's files are in previous-1/" || fail "previous-1 incomplete: $(ls "$TMP/bad/previous-1")"
expect_code 0 "the new run's last checkpoint verifies" -- "$BIN/ocrkd" info "$TMP/bad/ckpt-00000008.h5"
# another run's higher-numbered checkpoint in run.dir survives rotation, the file just written too
mkdir -p "$TMP/mixed"
cp "$TMP/t/ckpt-00000008.h5" "$TMP/mixed/ckpt-00000100.h5"
expect_code 0 "resume another run into that run.dir, keep: 1" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
  --set run.dir="$TMP/mixed" --resume "$TMP/bad/ckpt-00000008.h5" --set stop.max_steps=16 --set checkpoint.keep=1
[ -f "$TMP/mixed/ckpt-00000016.h5" ] && pass "keep: 1 keeps the checkpoint just written" \
  || fail "ckpt-00000016.h5 pruned: $(ls "$TMP/mixed")"
[ -f "$TMP/mixed/ckpt-00000100.h5" ] && [ ! -f "$TMP/mixed/ckpt-00000012.h5" ] \
  && pass "another run's checkpoint is never pruned, this run's older one is" || fail "pruning: $(ls "$TMP/mixed")"

# -- 3. checkpoint attributes: checksummed and validated (exit 4) ----------------------
$PY - "$CK" "$TMP" <<'EOF' >"$TMP/py.log" 2>&1
import sys, shutil, h5py
ck, tmp = sys.argv[1:3]
alpha = h5py.File(ck, "r").attrs["alphabet"].encode()
data = bytearray(open(ck, "rb").read())
at = data.find(alpha)
data[at + 3] ^= 0x02                                  # '3' -> '1': still valid, now repeated
open(tmp + "/alpha.h5", "wb").write(data)
for name, value in (("kind", "xyz"), ("step", -5), ("world_size", 0)):
    shutil.copy(ck, "%s/%s.h5" % (tmp, name))
    with h5py.File("%s/%s.h5" % (tmp, name), "r+") as f:
        f.attrs[name] = value
shutil.copy(ck, tmp + "/legacy.h5")
with h5py.File(tmp + "/legacy.h5", "r+") as f:           # as written before attr_checksums
    del f.attrs["attr_checksums"], f.attrs["run_id"]
def fnv1a64(text):                                    # as doc/checkpoint.md gives it
    h = 14695981039346656037
    for b in text.encode("utf-8"):
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h
shutil.copy(ck, tmp + "/edited.h5")
with h5py.File(tmp + "/edited.h5", "r+") as f:           # an edit on purpose, checksums redone
    f.attrs["kind"] = "student"
    names = ["kind", "config", "alphabet", "step", "epoch", "world_size", "run_id"]
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    f.attrs["attr_checksums"] = "fnv1a64 " + " ".join(
        "%s=%s" % (n, fnv1a64(text(f.attrs[n]))) for n in names)
shutil.copy(ck, tmp + "/state.h5")
with h5py.File(tmp + "/state.h5", "r") as f:
    off = f["state/values"].id.get_chunk_info(0).byte_offset
data = bytearray(open(tmp + "/state.h5", "rb").read())
data[off + 1] ^= 0x40
open(tmp + "/state.h5", "wb").write(data)
EOF
[ $? -eq 0 ] && pass "altered checkpoints made with h5py" || { fail "h5py"; cat "$TMP/py.log"; }
for name in alpha kind step world_size; do
  attr=$name; [ $name = alpha ] && attr=alphabet
  expect_code 4 "eval of a checkpoint with $attr altered" -- "$BIN/ocrkd" eval --model "$TMP/$name.h5" --data "$TMP/data/test.h5"
  expect_grep "$name.h5: attribute '$attr'" "$TMP/err" "the error names the file and the attribute"
done
expect_code 4 "info of a flipped alphabet" -- "$BIN/ocrkd" info "$TMP/alpha.h5"
expect_code 4 "predict with a flipped alphabet" -- "$BIN/ocrkd" predict --model "$TMP/alpha.h5" --data "$TMP/data/test.h5"
expect_code 4 "resume from a flipped alphabet" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
  --set run.dir="$TMP/r3" --resume "$TMP/alpha.h5"
expect_code 4 "model.init from a flipped alphabet" -- "$BIN/ocrkd" train "$TMP/t.yaml" \
  --set run.dir="$TMP/i3" --set model.init="$TMP/alpha.h5"
expect_code 4 "a teacher with a flipped alphabet" -- "$BIN/ocrkd" distill "$TMP/t.yaml" \
  --set run.dir="$TMP/d3" --set teacher.checkpoint="$TMP/alpha.h5"
expect_code 4 "info of a checkpoint whose /state fails its checksum" -- "$BIN/ocrkd" info "$TMP/state.h5"
expect_grep "state/values is corrupt" "$TMP/out" "info says what failed"
expect_code 0 "an attribute edited with its checksums redone (doc/checkpoint.md) loads" -- \
  "$BIN/ocrkd" info "$TMP/edited.h5"
expect_grep '^kind +student' "$TMP/out" "with the edited value"
expect_code 0 "a checkpoint written before attr_checksums still loads" -- "$BIN/ocrkd" eval --model "$TMP/legacy.h5" --data "$TMP/data/test.h5"
expect_grep "legacy.h5 has no 'attr_checksums' attribute" "$TMP/err" "with a warning"

# -- 4. a signal during start-up: exit 75, nothing written ----------------------------------
# wait_for FILE PATTERN: up to 60 s
wait_for() { i=0; while [ $i -lt 120 ] && ! grep -q "$2" "$1" 2>/dev/null; do sleep 0.5; i=$((i + 1)); done; }
$MPI -x OCRKD_FAULT_STARTUP_SLEEP=30 "$BIN/ocrkd" train "$TMP/t.yaml" --set run.dir="$TMP/early" \
  --resume auto >"$TMP/early.log" 2>&1 &
pid=$!
wait_for "$TMP/early.log" '^config'
sleep 1
t0=$(date +%s)
kill -USR1 $pid
wait $pid; rc=$?
[ $rc -eq 75 ] && pass "SIGUSR1 to mpirun during start-up: exit 75" || { fail "start-up signal: exit $rc"; tail -n 5 "$TMP/early.log"; }
[ $(($(date +%s) - t0)) -lt 20 ] && pass "it stops at once, not after the start-up" || fail "stopped after $(($(date +%s) - t0)) s"
expect_grep 'stopped by a signal during start-up .*nothing to save yet' "$TMP/early.log" "it says nothing was saved"
ls "$TMP/early"/ckpt-*.h5 >/dev/null 2>&1 && fail "a checkpoint was written" || pass "no checkpoint written"
expect_code 0 "--resume auto then starts fresh" -- $MPI "$BIN/ocrkd" train "$TMP/t.yaml" --set run.dir="$TMP/early" --resume auto
cp "$TMP/early/ckpt-00000008.h5" "$TMP/early8.h5"
rm -f "$TMP/early.log" # wait_for must not see the last run's log
$MPI -x OCRKD_FAULT_STARTUP_SLEEP=30 "$BIN/ocrkd" train "$TMP/t.yaml" --set run.dir="$TMP/early" \
  --set stop.max_steps=16 --resume auto >"$TMP/early.log" 2>&1 &
pid=$!
wait_for "$TMP/early.log" '^config'
sleep 1
kill -TERM "$(pgrep -P $pid | head -n 1)"
wait $pid; rc=$?
[ $rc -eq 75 ] && pass "SIGTERM to one rank during a resumed start-up: exit 75" || { fail "exit $rc"; tail -n 5 "$TMP/early.log"; }
expect_grep "no new checkpoint, $TMP/early/ckpt-00000008.h5 still holds this run's state" "$TMP/early.log" "it names the checkpoint that holds the state"
cmp -s "$TMP/early8.h5" "$TMP/early/ckpt-00000008.h5" && pass "that checkpoint is untouched" || fail "ckpt-00000008.h5 changed"
expect_code 0 "the run then resumes" -- $MPI "$BIN/ocrkd" train "$TMP/t.yaml" --set run.dir="$TMP/early" \
  --set stop.max_steps=16 --resume auto
expect_grep 'resume +.*ckpt-00000008.h5: step 8' "$TMP/out" "from step 8"

# -- 5. every stop signal through jobs/local/run.sh gives exit 75 ---------------------------
# signal_job HOW: start run.sh as its own process group (as a terminal's
# foreground job), signal it once the first step is logged, rc in $rc. Few
# log lines: once mpirun aborts it stops reading the ranks' output, and a
# rank that fills the pipe blocks before it can write the checkpoint.
# OCRKD_TERM_GRACE: how long mpirun waits before it passes on, then enforces,
# the end of the job when it was signalled itself; it also delays every
# exit 75, so short except where it matters.
export OCRKD_MPIRUN_ARGS=--oversubscribe
signal_job() {
  rm -rf "$TMP/job" "$TMP/job.log" # wait_for must not see the last run's log
  OCRKD_TERM_GRACE=1
  [ "$1" = TERM-to-mpirun ] && OCRKD_TERM_GRACE=5
  export OCRKD_TERM_GRACE
  # a background job of this shell ignores SIGINT: undo that, as a terminal would not
  OCRKD_BIN="$BIN/ocrkd" $PY -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL); os.setpgid(0, 0); os.execvp("bash", ["bash"] + sys.argv[1:])' \
    jobs/local/run.sh train "$TMP/t.yaml" -n 2 --no-requeue -- --set run.dir="$TMP/job" \
    --set stop.max_steps=100000 --set checkpoint.every_steps=100000 --set log.every_steps=100 >"$TMP/job.log" 2>&1 &
  pid=$!
  wait_for "$TMP/job.log" '^step'
  case $1 in
  TERM-to-script) kill -TERM $pid ;;
  INT-to-group) kill -INT -$pid ;; # Ctrl-C in a terminal (dash: no "--")
  TERM-to-mpirun) kill -TERM "$(pgrep -P $pid mpirun)" ;;
  esac
  (sleep 60 && kill -KILL -$pid 2>/dev/null) &
  guard=$!
  wait $pid; rc=$?
  kill $guard 2>/dev/null
  [ $rc -eq 75 ] && pass "run.sh: $1 -> exit 75" || { fail "run.sh: $1 -> exit $rc"; tail -n 8 "$TMP/job.log"; }
  ls "$TMP/job"/ckpt-*.h5 >/dev/null 2>&1 && pass "run.sh: $1 -> a checkpoint" || fail "run.sh: $1 -> no checkpoint"
}
signal_job TERM-to-script
signal_job INT-to-group
signal_job TERM-to-mpirun
expect_grep 'the launcher exited with 1 after a signal, but ocrkd had finished with 75' "$TMP/job.log" \
  "run.sh reports ocrkd's own exit code when mpirun was signalled itself"

# -- 6. a 100000-level nested config: exit 2 at once, naming file and line -------------------
$PY -c "import sys; open(sys.argv[1], 'w').write('run: ' + '[' * 100000 + ']' * 100000 + '\n')" "$TMP/deep.yaml"
t0=$(date +%s)
expect_code 2 "a 100000-level nested config" -- "$BIN/ocrkd" train "$TMP/deep.yaml"
[ $(($(date +%s) - t0)) -le 2 ] && pass "refused in well under a second of parsing" || fail "took $(($(date +%s) - t0)) s"
expect_grep "deep.yaml:1:69: nested deeper than 64 levels" "$TMP/err" "the error names file:line:col"
e2e_end
