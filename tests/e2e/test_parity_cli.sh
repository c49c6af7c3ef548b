#!/bin/sh
# test_parity_cli.sh - whole-model PyTorch parity through the command line.
# For each random PyTorch CRNN of tests/ref (basic and bottleneck extractors,
# 2-layer BiLSTM) converted by running data-tools/torch2ocrkd.py (make_refs.py):
# `ocrkd predict --dump-logits` must give PyTorch's eval-mode log-probs within
# 1e-4, /texts and stdout must be their greedy CTC decode, with any batch size
# and under mpirun -np 2 (rank 0 alone prints and writes); `ocrkd info` must
# print the parameter counts of the converted checkpoint.
# Needs h5py and numpy only: the PyTorch outputs are committed files.
# Not for: per-layer parity or gradients (bin/tests/test_parity, test_crnn_parity).
. "$(dirname "$0")/lib.sh"
REF=${OCRKD_REF_DIR:-$(cd "$(dirname "$0")/../ref" && pwd)}
TOL=1e-4
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1

# compare OUT.h5 STDOUT EXPECT.h5 DATA.h5 WHAT: prints "PASS|msg" / "FAIL|msg" lines.
compare() {
  $PY - "$@" "$TOL" <<'EOF'
import sys, h5py, numpy as np
out, stdout, expect, data, what, tol = sys.argv[1:7]
def res(ok, msg): print("%s|%s: %s" % ("PASS" if ok else "FAIL", what, msg))
def texts_of(ds): return [s.decode() if isinstance(s, bytes) else s for s in ds[:]]
with h5py.File(expect, "r") as f: want = f["logp"][:]
with h5py.File(data, "r") as f:
    alpha = f.attrs["alphabet"]
    alpha = alpha.decode() if isinstance(alpha, bytes) else alpha
def greedy(logp):
    s, prev = [], 0
    for k in logp.argmax(-1):
        if k != prev and k != 0: s.append(alpha[k - 1])
        prev = k
    return "".join(s)
decoded = [greedy(x) for x in want]
with h5py.File(out, "r") as f:
    got, texts = f["logits"][:], texts_of(f["texts"])
if got.shape != want.shape:
    res(False, "/logits shape %s, PyTorch %s" % (got.shape, want.shape))
else:
    d = np.abs(got.astype(np.float64) - want)
    at = np.unravel_index(d.argmax(), d.shape)
    res(d.max() <= float(tol), "/logits %s max abs diff %.3g at [n,t,k]=%s (tol %s)"
        % (got.shape, d.max(), list(map(int, at)), tol))
res(texts == decoded, "/texts %s, greedy decode of PyTorch %s" % (texts, decoded))
with open(stdout, encoding="utf-8") as f:
    lines = f.read().split("\n")
want_lines = ["%d\t%s" % (i, t) for i, t in enumerate(decoded)] + [""]
res(lines == want_lines, "stdout is INDEX<TAB>TEXT per image: %r" % lines[:8])
EOF
}

# check WHAT OUT.h5 STDOUT CASE: runs compare and counts its lines.
check() {
  compare "$2" "$3" "$REF/cli_$4_expect.h5" "$REF/cli_$4_data.h5" "$1" >"$TMP/cmp" 2>&1
  rc=$?
  n=0
  while IFS='|' read -r verdict msg; do
    case $verdict in
      PASS) pass "$msg"; n=$((n + 1)) ;;
      FAIL) fail "$msg"; n=$((n + 1)) ;;
    esac
  done <"$TMP/cmp"
  if [ $rc -ne 0 ] || [ $n -ne 3 ]; then fail "$1: comparison did not run"; tail -n 3 "$TMP/cmp" | sed 's/^/    /'; fi
}

# ninfo CKPT: "extractor E, encoder N, classifier C, total T" from /params
# (weights and biases; BN running stats are buffers, not parameters).
ninfo() {
  $PY - "$1" <<'EOF'
import sys, h5py
n = {"extractor": 0, "encoder": 0, "classifier": 0}
with h5py.File(sys.argv[1], "r") as f:
    for name, ds in f["params"].items():
        if not name.endswith(("running_mean", "running_var")):
            n[name.split(".")[0]] += ds.size
print("extractor %d, encoder %d, classifier %d, total %d" % (*n.values(), sum(n.values())))
EOF
}

for case in basic bottleneck; do
  ckpt=$REF/cli_$case.h5 data=$REF/cli_${case}_data.h5
  expect_code 0 "$case: ocrkd info on the converted checkpoint" -- "$BIN/ocrkd" info "$ckpt"
  counts=$(ninfo "$ckpt")
  expect_grep "$counts" "$TMP/out" "$case: info prints the parameter counts ($counts)"
  for batch in 64 2; do
    label="$case --batch $batch"
    expect_code 0 "$label: ocrkd predict --dump-logits" -- \
      "$BIN/ocrkd" predict --model "$ckpt" --data "$data" --dump-logits "$TMP/logits.h5" --batch "$batch"
    cp "$TMP/out" "$TMP/stdout"
    check "$label" "$TMP/logits.h5" "$TMP/stdout" "$case"
    rm -f "$TMP/logits.h5"
  done
done

if command -v mpirun >/dev/null 2>&1; then
  label="basic under mpirun -np 2"
  expect_code 0 "$label: ocrkd predict --dump-logits" -- mpirun -np 2 --oversubscribe \
    "$BIN/ocrkd" predict --model "$REF/cli_basic.h5" --data "$REF/cli_basic_data.h5" \
    --dump-logits "$TMP/logits.h5" --batch 2
  cp "$TMP/out" "$TMP/stdout"
  check "$label" "$TMP/logits.h5" "$TMP/stdout" basic
else
  echo "  (mpirun not found: skipping the mpirun -np 2 run)"
fi
e2e_end
