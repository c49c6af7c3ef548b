# test_compare.sh - jobs/local/compare.sh (the pipeline of `make demo` and
# `make experiment`) on tiny models: data, held-out set, teacher, distilled
# student, a second phase from it (CONF_FINETUNE), the scratch run given
# both phases' wall time (a cosine schedule over it), the table, its JSON and the curves; and a rerun
# that reuses everything. Run by tests/run.sh.
. tests/e2e/lib.sh
ROOT=$(pwd)
export OCRKD_THREADS=1 TESSERACT_N=0 NAME=tiny TARGET_MINUTES=1 SPEED_ROUNDS=3
export DATA=$TMP/data HELD=$TMP/held HELD2=$TMP/pango OUT=$TMP/compare
export SYNTH_ARGS="--train 256 --val 32 --test 32 --width 64 --max-len 5 --seed 5 --quiet"
export HELDOUT_ARGS="--n 32 --width 64 --max-len 5 --seed 6 --quiet"
export PANGO_ARGS="--n 24 --width 64 --max-len 5 --seed 9 --quiet"
arch='model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: WIDTH}
  feature_dim: 16
  encoder: {layers: 1, hidden: 16}'
conf() { # name width mode-specific-yaml
  cat <<YAML
run:
  dir: $TMP/$1
  seed: 1
data: {train: $DATA/train.h5, val: $DATA/val.h5, test: $DATA/test.h5, batch_size: 8}
$(echo "$arch" | sed "s/WIDTH/$2/")
optim: {name: adam, lr: 3.0e-3, schedule: {type: cosine, warmup_steps: 2}}
stop: {max_steps: 16, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 8}
log: {every_steps: 4}
$3
YAML
}
conf teacher 8 "" >"$TMP/teacher.yaml"
conf distill 4 "teacher: {checkpoint: $TMP/teacher/best.h5}
distill: {train: [extractor, classifier], allow_any_size: true}" >"$TMP/distill.yaml"
# phase 2 runs 240 steps, so its wall (metrics round to 0.1 s) is well
# above the 0.2-s tolerance of the sum checked below: a distilled row that
# left it out would fail
conf phase2 4 "" | sed "s#feature_dim: 16#feature_dim: 16\\n  init: $TMP/distill/best.h5#; s#max_steps: 16#max_steps: 240#; s#every_steps: 8#every_steps: 120#" >"$TMP/phase2.yaml"
conf scratch 4 "" >"$TMP/scratch.yaml"
export CONF_TEACHER=$TMP/teacher.yaml CONF_DISTILL=$TMP/distill.yaml CONF_SCRATCH=$TMP/scratch.yaml
export CONF_FINETUNE=$TMP/phase2.yaml
expect_code 0 "compare.sh with a second phase" -- sh "$ROOT/jobs/local/compare.sh"
T=$OUT/table.txt
[ -s "$DATA/test.h5" ] && [ -s "$HELD/test.h5" ] && [ -s "$HELD2/test.h5" ] &&
  pass "data and the two held-out sets in DATA, HELD and HELD2" || fail "no data in $DATA, $HELD or $HELD2"
n2=$("$BIN/ocrkd" info "$HELD2/test.h5" | sed -n 's/^ *samples *\([0-9]*\).*/\1/p')
[ "$n2" = 24 ] && pass "the pango set has PANGO_ARGS's 24 samples" || fail "pango set: '$n2' samples"
expect_grep '^model +params +extractor +in-domain +held-out +CER\(h\) +pango +CER\(p\)' "$T" "the table has the pango columns"
for r in teacher phase-1 distilled scratch; do
  expect_grep "^$r +[0-9]+ +[0-9]+ +[0-9.]+% +[0-9.]+% +[0-9.]+ +[0-9.]+% +[0-9.]+ " "$T" "table row $r"
done
expect_grep "^student extractor / teacher extractor = [0-9.]+%; student eval [0-9.]+x the teacher's images/s \\(median of 3 alternated pairs, [0-9.]+-[0-9.]+\\)" "$T" \
  "the speed ratio is the median of SPEED_ROUNDS alternated pairs"
# the summary recomputed from the pairs' own timings
want=$(/usr/bin/python3 -c "
import statistics, sys
r = sorted(float(s) / float(t) for t, s in (l.split() for l in open(sys.argv[1])))
print('%.2f %.2f %.2f %d' % (statistics.median(r), r[0], r[-1], len(r)))" "$OUT/eval-speed-pairs.txt")
got=$(cat "$OUT/eval-speed.txt")
[ "$got" = "$want" ] && [ "${got##* }" = 3 ] && pass "eval-speed.txt ($got) is the median, range and count of the 3 pairs' ratios" ||
  fail "eval-speed.txt '$got', from the pairs '$want'"
expect_grep '^distilled - scratch \(same wall time\): [-+][0-9.]+ points in-domain, [-+][0-9.]+ held-out, [-+][0-9.]+ pango' "$T" "the comparison line"
# the distilled row's wall is both phases'; scratch's budget comes from it
w1=$(tail -n 1 "$TMP/distill/metrics.jsonl" | sed -n 's/^{"wall":\([0-9.]*\),.*/\1/p')
w2=$(tail -n 1 "$TMP/phase2/metrics.jsonl" | sed -n 's/^{"wall":\([0-9.]*\),.*/\1/p')
wd=$(/usr/bin/python3 -c "import json,sys; print([x['train_s'] for x in json.load(open(sys.argv[1])) if x['model']=='distilled'][0])" "$OUT/table.json")
# (phase 1's 16 steps may log a wall of 0.0: metrics round to 0.1 s)
[ -n "$w1" ] && [ -n "$w2" ] && [ -n "$wd" ] &&
awk -v a="$w1" -v b="$w2" -v d="$wd" 'BEGIN { exit !(a >= 0 && b > 0.2 && d >= a + b - 0.2 && d <= a + b + 0.2) }' &&
  pass "distilled row's wall ($wd s) = phase 1 ($w1) + phase 2 ($w2)" || fail "distilled wall $wd, phases $w1 + $w2"
read -r minutes <"$TMP/scratch/budget-minutes.txt"
awk -v m="$minutes" -v a="$w1" -v b="$w2" 'BEGIN { d = m * 60 - a - b; exit !(d > -0.2 && d < 0.2) }' &&
  pass "scratch budget is both phases' wall ($minutes min)" ||
  fail "scratch budget $minutes min, phases $w1 + $w2 s"
# the scratch run: no step limit, stopped by its time, its cosine over that
# time (the lr falls after the warmup; its config's max_steps, 16, ignored;
# test_train.sh checks the schedule's shape on a longer run)
expect_grep '"reason":"reached stop.max_minutes"' "$TMP/scratch/metrics.jsonl" "scratch stopped by its time budget"
sw=$(grep '"event":"stop"' "$TMP/scratch/metrics.jsonl" | tail -n 1 | sed -n 's/^{"wall":\([0-9.]*\),.*/\1/p')
awk -v s="$sw" -v m="$minutes" 'BEGIN { exit !(s >= m * 60 - 0.2 && s <= m * 60 + 5) }' &&
  pass "scratch wall $sw s = its budget" || fail "scratch wall $sw s, budget $minutes min"
ssteps=$(grep '"event":"stop"' "$TMP/scratch/metrics.jsonl" | tail -n 1 | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
[ "$ssteps" -gt 16 ] && pass "scratch ran $ssteps steps in that time" || fail "scratch ran $ssteps steps"
lr_first=$(grep '"lr":' "$TMP/scratch/metrics.jsonl" | head -n 1 | sed -n 's/.*"lr":\([0-9.e+-]*\).*/\1/p')
lr_last=$(grep '"lr":' "$TMP/scratch/metrics.jsonl" | tail -n 1 | sed -n 's/.*"lr":\([0-9.e+-]*\).*/\1/p')
awk -v a="$lr_first" -v b="$lr_last" 'BEGIN { exit !(b < a) }' &&
  pass "scratch lr decays over its time ($lr_first -> $lr_last)" || fail "scratch lr $lr_first -> $lr_last"
expect_grep '"model":"distilled"' "$OUT/table.json" "table.json has the distilled row"
/usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); assert [x['model'] for x in r]==['teacher','phase-1','distilled','scratch'], r" \
  "$OUT/table.json" && pass "table.json parses, four rows in order" || fail "table.json"
[ -s "$OUT/curves.png" ] && pass "curves.png written" || fail "no curves.png"
# a rerun reuses the data and the finished runs, and their wall times: a
# resumed finished run appends lines a little later
expect_code 0 "compare.sh again" -- env SPEED_ROUNDS=0 sh "$ROOT/jobs/local/compare.sh"
expect_grep "student eval [0-9.]+x the teacher's images/s \\(the images/s column\\)" "$T" "SPEED_ROUNDS=0: the ratio of the images/s column"
expect_grep 'reusing the training data' "$TMP/out" "the data is reused"
n=$(grep -c '"event":"stop"' "$TMP/distill/metrics.jsonl")
wd2=$(/usr/bin/python3 -c "import json,sys; print([x['train_s'] for x in json.load(open(sys.argv[1])) if x['model']=='distilled'][0])" "$OUT/table.json")
[ "$n" -ge 2 ] && [ "$wd2" = "$wd" ] && pass "the rerun keeps the distilled wall ($wd s; $n stop lines)" ||
  fail "distilled wall $wd then $wd2 ($n stop lines)"
steps_now=$(grep -c '"split":"val"' "$TMP/scratch/metrics.jsonl")
[ "$steps_now" -ge 1 ] && pass "scratch run kept" || fail "scratch run lost"
sstop2=$(grep '"event":"stop"' "$TMP/scratch/metrics.jsonl" | tail -n 1 | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
[ "$sstop2" = "$ssteps" ] && pass "the finished scratch run, resumed, takes no step ($ssteps)" ||
  fail "scratch stopped at $ssteps, then at $sstop2 on the rerun"
expect_code 2 "SPEED_ROUNDS that is not a number is refused" -- env SPEED_ROUNDS=five sh "$ROOT/jobs/local/compare.sh"
expect_grep "SPEED_ROUNDS must be a whole number of pairs \\(0 = none\\), not 'five'" "$TMP/err" "the refusal names the variable and the value"
expect_code 0 "compare.sh a third time" -- sh "$ROOT/jobs/local/compare.sh"
expect_grep 'reusing the second held-out test set' "$TMP/out" "the held-out sets are reused when made with the same arguments"
# a held-out set this script made with other arguments is made again; one
# without made-with.txt (made by hand) is reused untouched
cp "$HELD/test.h5" "$TMP/held-before.h5"
rm "$HELD/made-with.txt"
expect_code 0 "compare.sh with other held-out arguments" -- \
  env HELDOUT_ARGS="--n 20 --width 64 --max-len 5 --seed 6 --quiet" \
  PANGO_ARGS="--n 20 --width 64 --max-len 5 --seed 9 --quiet" sh "$ROOT/jobs/local/compare.sh"
expect_grep "was made with 'heldout_pango.py --n 24 .*', not 'heldout_pango.py --n 20 .*': making it again" "$TMP/out" \
  "a pango set made with other arguments is made again, and the message says why"
n2=$("$BIN/ocrkd" info "$HELD2/test.h5" | sed -n 's/^ *samples *\([0-9]*\).*/\1/p')
[ "$n2" = 20 ] && grep -q -- '--n 20' "$HELD2/made-with.txt" && pass "the pango set now has 20 samples and says so" ||
  fail "pango set after the change: '$n2' samples, made-with '$(cat "$HELD2/made-with.txt")'"
expect_grep 'no made-with.txt: its arguments are not known' "$TMP/out" "a held-out set without made-with.txt is reused, with a note"
cmp -s "$HELD/test.h5" "$TMP/held-before.h5" && [ ! -f "$HELD/made-with.txt" ] &&
  pass "that set is left byte for byte as it was" || fail "a held-out set without made-with.txt was touched"

e2e_end
