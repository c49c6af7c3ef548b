#!/bin/sh
# Runs every test program and prints the total "N passed, N failed".
#   unit: bin/tests/test_*        (run directly)
#   mpi:  bin/tests/mpi/test_*    (mpirun -np 2 --oversubscribe)
#   e2e:  tests/e2e/test_*.sh     (shell tests driving bin/ocrkd)
# ONLY=unit|mpi|e2e limits the run. Each program's own last line is
# "N passed, N failed"; a program that crashes or prints no such line counts
# as one failure.
BIN=${BIN:-bin}
ONLY=${ONLY:-all}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
export OCRKD_BIN="$BIN"
total_p=0; total_f=0; failed_progs=""
log=$(mktemp)
run_one() { # name, command...
  name=$1; shift
  printf '== %s\n' "$name"
  "$@" >"$log" 2>&1
  rc=$?
  cat "$log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
  else
    p=0; f=0
  fi
  if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $name exited with status $rc"; fi
  [ "$f" -ne 0 ] && failed_progs="$failed_progs $name"
  total_p=$((total_p + p)); total_f=$((total_f + f))
}
if [ "$ONLY" = all ] || [ "$ONLY" = unit ]; then
  for t in "$BIN"/tests/test_*; do [ -x "$t" ] && run_one "$(basename "$t")" "$t"; done
fi
if [ "$ONLY" = all ] || [ "$ONLY" = mpi ]; then
  for t in "$BIN"/tests/mpi/test_*; do
    [ -x "$t" ] && run_one "mpi/$(basename "$t")" timeout 600 mpirun -np 2 --oversubscribe "$t"
  done
fi
if [ "$ONLY" = all ] || [ "$ONLY" = e2e ]; then
  for t in tests/e2e/test_*.sh; do [ -f "$t" ] && run_one "e2e/$(basename "$t")" timeout 1200 sh "$t"; done
fi
rm -f "$log"
[ -n "$failed_progs" ] && echo "failing:$failed_progs"
echo "$total_p passed, $total_f failed"
[ "$total_f" -eq 0 ]
