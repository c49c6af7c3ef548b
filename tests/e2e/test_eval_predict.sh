# test_eval_predict.sh - `ocrkd eval` on several sets (rows, total, --errors,
# 2 ranks) and `ocrkd predict` on image files, directories and @LIST files
# (order, --scores, 2 ranks), with a tiny model trained for a few steps.
. tests/e2e/lib.sh
MPI="mpirun -np 2 --oversubscribe"
export OCRKD_THREADS=1

"$BIN/ocrkd-synth" --out "$TMP/data" --train 64 --val 20 --test 30 --width 64 --max-len 4 \
  --seed 3 --quiet >"$TMP/synth.log" 2>&1 && pass "synth tiny dataset" || { fail "synth"; cat "$TMP/synth.log"; }
cat >"$TMP/t.yaml" <<YAML
run: {dir: $TMP/run, seed: 1}
data: {train: $TMP/data/train.h5, val: $TMP/data/val.h5, batch_size: 16}
model:
  extractor: {blocks: [1, 1, 1, 1], block: basic, width: 4}
  feature_dim: 8
  encoder: {layers: 1, hidden: 8}
stop: {max_steps: 4, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
eval: {every_steps: 0, case_insensitive: true}
log: {every_steps: 2}
YAML
expect_code 0 "train a tiny model with eval.case_insensitive" -- "$BIN/ocrkd" train "$TMP/t.yaml"
CK=$TMP/run/best.h5
expect_code 0 "info shows the key in the stored config" -- "$BIN/ocrkd" info "$CK"
h5dump -a /config "$CK" 2>/dev/null | grep -q 'case_insensitive: true' \
  && pass "checkpoint config carries eval.case_insensitive: true" || fail "config lacks case_insensitive"

# -- eval: one set keeps its old form; several get a row each and a total --
A=$TMP/data/val.h5; B=$TMP/data/test.h5
expect_code 0 "eval one set --json" -- "$BIN/ocrkd" eval --model "$CK" --data "$A" --json
[ "$(wc -l <"$TMP/out")" -eq 1 ] && pass "one set: one line" || fail "one set printed $(wc -l <"$TMP/out") lines"
expect_grep '^\{"step":[0-9]+,"split":"val","word_acc":[^,]+,"cer":[^,]+,"ned":[^,]+,"n":20,"img_per_s":[0-9.]+\}$' "$TMP/out" "one set: the old JSON line exactly"
expect_code 0 "eval two sets --json --errors" -- "$BIN/ocrkd" eval --model "$CK" --data "$A" --data "$B" --json --errors "$TMP/err.tsv"
cp "$TMP/out" "$TMP/two.json"
[ "$(wc -l <"$TMP/two.json")" -eq 3 ] && pass "two sets: three lines" || fail "two sets printed $(wc -l <"$TMP/two.json") lines"
expect_grep '^\{"step":[0-9]+,"split":"val",.*"n":20,.*"data":"[^"]*/val\.h5"\}$' "$TMP/two.json" "row for val with its data file"
expect_grep '^\{"step":[0-9]+,"split":"test",.*"n":30,.*"data":"[^"]*/test\.h5"\}$' "$TMP/two.json" "row for test"
expect_grep '^\{"step":[0-9]+,"split":"total",.*"n":50,.*"sets":2\}$' "$TMP/two.json" "total row pools the counts"
$PY - "$TMP/two.json" "$TMP/err.tsv" >"$TMP/check.log" 2>&1 <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
a, b, t = rows
acc = (a["word_acc"] * a["n"] + b["word_acc"] * b["n"]) / t["n"]
assert abs(acc - t["word_acc"]) < 1e-5, (acc, t)
lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
assert lines[0] == "data\tindex\ttruth\tprediction\tconfidence", lines[0]
body = [l.split("\t") for l in lines[1:]]
wrong = round(a["n"] * (1 - a["word_acc"])) + round(b["n"] * (1 - b["word_acc"]))
assert len(body) == wrong, (len(body), wrong)
for f in body:
    assert len(f) == 5 and f[2] != f[3] and 0 <= float(f[4]) <= 1, f
assert all(int(f[1]) < 20 for f in body if f[0].endswith("val.h5"))
print("ok", len(body), "errors")
PY
[ $? -eq 0 ] && pass "total word_acc is the pooled one; --errors has a row per wrong image" || { fail "eval rows/errors"; cat "$TMP/check.log"; }
expect_code 0 "eval two sets on 2 ranks" -- $MPI "$BIN/ocrkd" eval --model "$CK" --data "$A" --data "$B" --json --errors "$TMP/err2.tsv"
expect_grep '"split":"total",.*"n":50,' "$TMP/out" "2 ranks: every image counted once"
[ "$(sort "$TMP/err.tsv" | md5sum)" = "$(sort "$TMP/err2.tsv" | md5sum)" ] && pass "2 ranks: the same error rows" || fail "2-rank errors differ"
expect_code 0 "eval two sets, text table" -- "$BIN/ocrkd" eval --model "$CK" --data "$A" --data "$B"
expect_grep '^  total +50 ' "$TMP/out" "text table has a total row"
expect_code 2 "--errors into a missing directory" -- "$BIN/ocrkd" eval --model "$CK" --data "$A" --errors "$TMP/no/such/e.tsv"
expect_grep 'no/such/e.tsv' "$TMP/err" "the error names the file"
expect_code 3 "a missing second set" -- "$BIN/ocrkd" eval --model "$CK" --data "$A" --data "$TMP/nope.h5"
e2e_end
