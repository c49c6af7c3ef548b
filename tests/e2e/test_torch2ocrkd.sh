# test_torch2ocrkd.sh - data-tools/torch2ocrkd.py on a state_dict under other
# names (a torchvision-style `backbone`, `rnn`, `head`): --map/--drop rules,
# --dry-run's listing (ok, unknown, missing, shape mismatch with both shapes)
# and the written checkpoint loading in ocrkd. Uses a .npz state_dict, so no
# torch is needed; with torch installed the torch-free name table is checked
# against crnn_torch.CRNN's state_dict too.
. tests/e2e/lib.sh
T2O="$PY data-tools/torch2ocrkd.py"
$PY - "$TMP" >"$TMP/make.log" 2>&1 <<'PY'
import sys
import numpy as np
sys.path.insert(0, "data-tools")
import crnn_names
arch = dict(blocks=[1, 1, 1, 1], block="basic", width=4, feature_dim=8, enc_layers=1,
            enc_hidden=8, num_classes=11)
rng = np.random.default_rng(0)
sd = {}
for k, shape in crnn_names.expected_shapes(arch).items():
    k = k.replace("extractor.neck.", "neck.").replace("extractor.", "backbone.")
    k = k.replace("encoder.", "rnn.").replace("classifier.", "head.")
    v = rng.standard_normal(shape).astype(np.float32) * 0.1
    if k.endswith("running_var"):
        v = np.abs(v) + 1
    sd[k] = v
sd["backbone.fc.weight"] = np.zeros((1000, 32), np.float32)  # torchvision's own classifier
sd["backbone.bn1.num_batches_tracked"] = np.zeros((), np.float32)
np.savez(sys.argv[1] + "/user.npz", **sd)
bad = dict(sd)
bad["rnn.weight_ih_l0_reverse"] = np.zeros((32, 7), np.float32)
del bad["head.bias"]
bad["aux.weight"] = np.zeros((3,), np.float32)
np.savez(sys.argv[1] + "/bad.npz", **bad)
PY
[ $? -eq 0 ] && pass "made user-named state_dicts (.npz)" || { fail "make npz"; cat "$TMP/make.log"; }
MAPS="--map backbone.=extractor. --map neck.=extractor.neck. --map rnn.=encoder. --map head.=classifier. --drop backbone.fc."

expect_code 1 "--dry-run without rules reports the problem" -- $T2O "$TMP/user.npz" --dry-run
expect_grep "^problem: cannot infer the network: .*'extractor.conv1.weight'.*--map" "$TMP/out" "names the first tensor it cannot find"
expect_grep '^backbone\.conv1\.weight +-> backbone\.conv1\.weight' "$TMP/out" "lists every tensor with its target"

expect_code 0 "--dry-run with --map/--drop rules fits" -- $T2O "$TMP/user.npz" --dry-run $MAPS
expect_grep '^rnn\.weight_ih_l0 +-> encoder\.weight_ih_l0 +32x8 +ok$' "$TMP/out" "rnn. -> encoder., shape and ok"
expect_grep '^neck\.weight +-> extractor\.neck\.weight' "$TMP/out" "the more specific rule for neck."
expect_grep '^backbone\.fc\.weight +-> - +1000x32 +dropped$' "$TMP/out" "--drop leaves fc out"
expect_grep ' 0 problems$' "$TMP/out" "no problems"
grep -q num_batches_tracked "$TMP/out" && fail "num_batches_tracked listed" || pass "num_batches_tracked skipped"
[ ! -e "$TMP/x.h5" ] && pass "--dry-run writes nothing" || fail "dry run wrote"

expect_code 1 "--dry-run on a state_dict that does not fit" -- $T2O "$TMP/bad.npz" --dry-run $MAPS
expect_grep '^rnn\.weight_ih_l0_reverse +-> encoder\.weight_ih_l0_reverse +32x7 +SHAPE MISMATCH: \(32, 7\), ocrkd needs \(32, 8\)$' "$TMP/out" "a shape mismatch shows both shapes"
expect_grep '^\(missing\) +-> classifier\.bias +11 +MISSING from the input$' "$TMP/out" "a missing tensor is named with its shape"
expect_grep "^aux\.weight +-> aux\.weight +3 +NOT IN ocrkd's network$" "$TMP/out" "an unknown tensor is named"
expect_grep ' 3 problems$' "$TMP/out" "three problems counted"
expect_code 1 "converting it fails" -- $T2O "$TMP/bad.npz" "$TMP/bad.h5" --alphabet 0123456789 $MAPS
expect_grep 'bad.npz: 3 tensors do not fit' "$TMP/err" "the error names the input and the count"
[ ! -e "$TMP/bad.h5" ] && [ ! -e "$TMP/bad.h5.tmp" ] && pass "nothing half-written" || fail "left a file"
expect_code 2 "a --map rule without =" -- $T2O "$TMP/user.npz" --dry-run --map backbone.

expect_code 0 "convert with the rules" -- $T2O "$TMP/user.npz" "$TMP/user.h5" --alphabet 0123456789 $MAPS
expect_code 0 "ocrkd reads the converted checkpoint" -- "$BIN/ocrkd" info "$TMP/user.h5"
$PY - "$TMP/user.npz" "$TMP/user.h5" >"$TMP/cmp.log" 2>&1 <<'PY'
import sys, h5py, numpy as np
z, f = np.load(sys.argv[1]), h5py.File(sys.argv[2], "r")["params"]
ok = np.array_equal(z["rnn.weight_hh_l0"], f["encoder.weight_hh_l0"][()]) and \
     np.array_equal(z["backbone.layer2.0.downsample.0.weight"], f["extractor.layer2.0.downsample.0.weight"][()]) and \
     "fc.weight" not in "".join(f.keys())
sys.exit(0 if ok else 1)
PY
[ $? -eq 0 ] && pass "tensors land under their ocrkd names, values unchanged" || { fail "converted values"; cat "$TMP/cmp.log"; }

# the torch-free name table against the C model's own tensor table
"$BIN/ocrkd-synth" --out "$TMP/data" --train 16 --val 0 --test 0 --width 32 --max-len 3 \
  --seed 3 --quiet >"$TMP/synth.log" 2>&1 || { fail "synth"; cat "$TMP/synth.log"; }
for spec in "basic 1,2,1,1 2 8 4" "bottleneck 2,1,1,1 1 6 4" "basic 1,2,1,1 2 8 4,6,5,3"; do
  set -- $spec
  case $5 in *,*) wkey="widths: [$5]";; *) wkey="width: $5";; esac
  tag=$1-$(echo "$5" | tr , _)
  cat >"$TMP/$tag.yaml" <<YAML
run: {dir: $TMP/run-$tag, seed: 1}
data: {train: $TMP/data/train.h5, batch_size: 4}
model: {extractor: {blocks: [$2], block: $1, $wkey}, feature_dim: 8, encoder: {layers: $3, hidden: $4}}
stop: {max_steps: 1, converge: {window: 0}}
checkpoint: {every_steps: 0, keep: 1}
YAML
  if OCRKD_THREADS=1 "$BIN/ocrkd" train "$TMP/$tag.yaml" >"$TMP/train.log" 2>&1; then
    $PY - "$TMP/run-$tag/ckpt-00000001.h5" "$1" "$2" "$3" "$4" "$5" >"$TMP/names.log" 2>&1 <<'PY'
import sys, h5py
sys.path.insert(0, "data-tools")
import crnn_names
path, block, blocks, layers, hidden, width = sys.argv[1:]
width = [int(w) for w in width.split(",")] if "," in width else int(width)
f = h5py.File(path, "r")["params"]
got = {k: tuple(f[k].shape) for k in f}
arch = dict(blocks=[int(b) for b in blocks.split(",")], block=block, width=width, feature_dim=8,
            enc_layers=int(layers), enc_hidden=int(hidden), num_classes=got["classifier.bias"][0])
want = crnn_names.expected_shapes(arch)
diff = sorted(set(got.items()) ^ set(want.items()))
back = crnn_names.arch_from_state_dict({k: type("T", (), {"shape": v}) for k, v in got.items()})
print(diff[:6], back["width"]); sys.exit(1 if diff or back["width"] != width else 0)
PY
    [ $? -eq 0 ] && pass "crnn_names table equals ocrkd's tensors ($1 blocks, width $5)" || { fail "name table vs ocrkd ($1, width $5)"; cat "$TMP/names.log"; }
  else
    fail "train a $1 model for the name check"; tail -5 "$TMP/train.log"
  fi
done

if $PY -c "import torch" 2>/dev/null; then
  $PY - >"$TMP/torch.log" 2>&1 <<'PY'
import sys
sys.path.insert(0, "data-tools")
import crnn_names, crnn_torch
for arch in [dict(blocks=[1, 2, 1, 1], block="basic", width=4, feature_dim=8, enc_layers=2, enc_hidden=8, num_classes=11),
             dict(blocks=[2, 1, 1, 1], block="bottleneck", width=4, feature_dim=8, enc_layers=1, enc_hidden=6, num_classes=5),
             dict(blocks=[1, 2, 1, 1], block="basic", width=[4, 6, 5, 3], feature_dim=8, enc_layers=2, enc_hidden=8, num_classes=11)]:
    sd = {k: tuple(v.shape) for k, v in crnn_torch.CRNN(**arch).state_dict().items() if not k.endswith("num_batches_tracked")}
    assert sd == crnn_names.expected_shapes(arch), arch
PY
  [ $? -eq 0 ] && pass "the torch-free table equals crnn_torch.CRNN's state_dict" || { fail "name table vs torch"; cat "$TMP/torch.log"; }
else
  echo "  skip: torch not installed (name table vs crnn_torch)"
fi
e2e_end
