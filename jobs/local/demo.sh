#!/bin/sh
# demo.sh - what `make demo` runs after installing and building: a small
# synthetic dataset, a teacher trained with CTC, a student distilled from it
# on 2 MPI ranks, and both evaluated on the test split.
#   data in data/demo/, runs in runs/demo-teacher/ and runs/demo-distill/
# Re-running reuses the data and resumes the runs (--resume auto).
set -eu
cd "$(dirname "$0")/../.."
NP=${NP:-2}
DATA=data/demo
export OCRKD_THREADS=${OCRKD_THREADS:-1}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun -np $NP --oversubscribe"
start=$(date +%s)
say() { printf '\n== %s (%ds)\n' "$*" $(( $(date +%s) - start )); }

if [ ! -f "$DATA/test.h5" ]; then
  say "making the synthetic dataset in $DATA"
  bin/ocrkd-synth --out "$DATA" --train 30000 --val 500 --test 1000 --width 96 --max-len 8 --seed 1
else
  say "reusing the dataset in $DATA"
fi

say "training the teacher: $MPIRUN bin/ocrkd train conf/demo-teacher.yaml"
$MPIRUN bin/ocrkd train conf/demo-teacher.yaml --resume auto

say "distilling the student: $MPIRUN bin/ocrkd distill conf/demo-distill.yaml"
$MPIRUN bin/ocrkd distill conf/demo-distill.yaml --resume auto

say "evaluating both on $DATA/test.h5 (1 process, 1 thread each, for comparable images/s)"
row() { # name checkpoint
  params=$(bin/ocrkd info "$2" | sed -n 's/^parameters .*total \([0-9]*\).*/\1/p')
  xparams=$(bin/ocrkd info "$2" | sed -n 's/^parameters *extractor \([0-9]*\),.*/\1/p')
  json=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$2" --data "$DATA/test.h5" --json)
  acc=$(echo "$json" | sed 's/.*"word_acc":\([^,]*\).*/\1/')
  cer=$(echo "$json" | sed 's/.*"cer":\([^,]*\).*/\1/')
  ips=$(echo "$json" | sed 's/.*"img_per_s":\([^,}]*\).*/\1/')
  awk -v n="$1" -v p="$params" -v x="$xparams" -v a="$acc" -v c="$cer" -v i="$ips" \
    'BEGIN { printf "%-8s %10s %10s %9.2f%% %8.4f %9s\n", n, p, x, 100 * a, c, i }'
  echo "$acc" >"$TMPD/$1.acc"
}
TMPD=$(mktemp -d)
trap 'rm -rf "$TMPD"' EXIT
printf '\n%-8s %10s %10s %10s %8s %9s\n' model params extractor word_acc CER images/s
row teacher runs/demo-teacher/best.h5
row student runs/demo-distill/best.h5
t=$(cat "$TMPD/teacher.acc"); s=$(cat "$TMPD/student.acc")
awk -v t="$t" -v s="$s" -v secs=$(( $(date +%s) - start )) 'BEGIN {
  printf "\nteacher word accuracy %.2f%% (target > 85%%); student - teacher = %+.2f points (target > -3)\n", 100 * t, 100 * (s - t)
  printf "demo took %d s (target < 900 s)\n", secs }'
