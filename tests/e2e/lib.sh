# lib.sh - sourced by tests/e2e/test_*.sh: pass/fail counting and helpers.
# OCRKD_BIN is set by tests/run.sh (defaults to ./bin).
BIN=${OCRKD_BIN:-$PWD/bin}
PY=/usr/bin/python3
E2E_PASSED=0; E2E_FAILED=0
TMP=$(mktemp -d)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$TMP"' EXIT
pass() { E2E_PASSED=$((E2E_PASSED + 1)); echo "  ok $*"; }
fail() { E2E_FAILED=$((E2E_FAILED + 1)); echo "FAIL $*"; }
# expect_code CODE DESCRIPTION -- command...   (stderr kept in $TMP/err)
expect_code() {
  want=$1; what=$2; shift 3
  "$@" >"$TMP/out" 2>"$TMP/err"; got=$?
  if [ "$got" -eq "$want" ]; then pass "$what (exit $got)"; else
    fail "$what: exit $got, want $want"; sed 's/^/    /' "$TMP/err" | head -n 20; fi
}
# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
  if grep -qE -- "$1" "$2"; then pass "$3"; else fail "$3: no /$1/ in $2"; sed 's/^/    /' "$2" | head -n 20; fi
}
# expect_no_grep PATTERN FILE DESCRIPTION (FILE must exist and not match)
expect_no_grep() {
  if [ ! -s "$2" ]; then fail "$3: $2 empty or missing"
  elif grep -qE -- "$1" "$2"; then fail "$3: /$1/ in $2"; grep -E -- "$1" "$2" | sed 's/^/    /' | head -n 5
  else pass "$3"; fi
}
# dataset_digest FILE: a hash of a dataset's /images, /labels and /widths
# (not of the HDF5 bytes, which carry timestamps).
dataset_digest() {
  "$PY" - "$1" <<'EOF'
import hashlib, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    h = hashlib.sha256(f["images"][:].tobytes())
    for s in f["labels"][:]:
        h.update(s if isinstance(s, bytes) else s.encode()); h.update(b"\0")
    h.update(f["widths"][:].tobytes())
    print(h.hexdigest())
EOF
}
e2e_end() { echo "$E2E_PASSED passed, $E2E_FAILED failed"; [ "$E2E_FAILED" -eq 0 ]; }
