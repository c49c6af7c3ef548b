#!/bin/sh
# run.sh - ocrkd against PyTorch on the same models, batch and image width:
# makes synthetic data and a one-step teacher in a temporary directory, runs
# `ocrkd bench` (1 rank, OCRKD_THREADS threads) in distill and train mode and
# bench/torch_distill.py (as many torch threads), and prints a table of
# images/s with the ratio ocrkd/PyTorch.
# Not for: multi-rank scaling (run `mpirun -np N bin/ocrkd bench CONFIG`).
#
#   sh bench/run.sh [CONFIG] [--steps N] [--threads T] [--width W] [--teacher-config T.yaml]
#     CONFIG            student config (default bench/small.yaml; bench/full.yaml
#                       is the full-size one)
#     --steps N         timed steps per measurement (default 10, after 2 warm-up)
#     --threads T       BLAS / torch threads (default 1)
#     --width W         image width (default 128)
#     --teacher-config  config of the teacher to create (default CONFIG with
#                       -teacher before .yaml; if there is none, the config's
#                       teacher.checkpoint is used as it is)
# Environment: OCRKD_BIN (directory of ocrkd and ocrkd-synth, default bin).
# Timings are wall-clock: run it on an otherwise idle machine.

config=bench/small.yaml
steps=10
threads=1
width=128
teacher_config=
usage() {
    sed -n '9,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case $1 in
    --steps) [ $# -ge 2 ] || usage; steps=$2; shift 2 ;;
    --threads) [ $# -ge 2 ] || usage; threads=$2; shift 2 ;;
    --width) [ $# -ge 2 ] || usage; width=$2; shift 2 ;;
    --teacher-config) [ $# -ge 2 ] || usage; teacher_config=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "bench/run.sh: unknown option '$1'" >&2; usage ;;
    *) config=$1; shift ;;
    esac
done
bin=${OCRKD_BIN:-bin}
py=/usr/bin/python3
here=$(dirname "$0")
if [ -z "$teacher_config" ] && [ -f "${config%.yaml}-teacher.yaml" ]; then
    teacher_config=${config%.yaml}-teacher.yaml
fi

die() {
    echo "bench/run.sh: $*" >&2
    exit 2
}
[ -f "$config" ] || die "config $config not found"
[ -x "$bin/ocrkd" ] || die "$bin/ocrkd not found (run make, or set OCRKD_BIN)"
[ -x "$bin/ocrkd-synth" ] || die "$bin/ocrkd-synth not found (run make)"
"$py" -c 'import torch, yaml, h5py' 2>/dev/null ||
    die "$py cannot import torch, yaml and h5py (apt-get install python3-torch python3-yaml python3-h5py)"

export OCRKD_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# step NAME COMMAND...: run it quietly, keep its output, stop on failure.
step() {
    name=$1
    shift
    if ! "$@" >"$tmp/$name.out" 2>&1; then
        echo "bench/run.sh: $name failed: $*" >&2
        tail -n 20 "$tmp/$name.out" >&2
        exit 1
    fi
}

echo "bench $config: 1 rank, $threads thread(s), width $width, $steps steps; $(nproc) cores," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
step synth "$bin/ocrkd-synth" --out "$tmp/data" --train 512 --val 0 --test 0 --width "$width" --quiet
data=$tmp/data/train.h5
set -- --set "data.train=$data"
torch_teacher=
if [ -n "$teacher_config" ]; then
    step teacher "$bin/ocrkd" train "$teacher_config" --set "data.train=$data" \
        --set "run.dir=$tmp/teacher" --set stop.max_steps=1 --set eval.every_steps=0
    set -- "$@" --set "teacher.checkpoint=$tmp/teacher/best.h5"
    torch_teacher="--teacher $tmp/teacher/best.h5"
fi

# run_ocrkd_tagged TAG ARGS...: `ocrkd bench` in distill and in train mode
# -> $tmp/TAG-distill.out, $tmp/TAG-train.out
run_ocrkd_tagged() {
    tag=$1
    shift
    step "$tag-distill" "$bin/ocrkd" bench "$config" --steps "$steps" "$@"
    step "$tag-train" "$bin/ocrkd" bench "$config" --steps "$steps" "$@" --set teacher.checkpoint=
}
run_ocrkd_tagged ocrkd "$@"
# shellcheck disable=SC2086  # torch_teacher is two words or none
step torch "$py" "$here/torch_distill.py" "$config" $torch_teacher --data "$data" \
    --threads "$threads" --steps "$steps" --json "$@"

# ocrkd_rate FILE PATTERN: the images/s figure on the line matching PATTERN
ocrkd_rate() {
    sed -n "s/^bench    $2.* \([0-9.]*\) images\/s.*/\1/p" "$1" | head -n 1
}
torch_rate() {
    "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$tmp/torch.out" "$1"
}
row() { # LABEL OCRKD TORCH
    awk -v l="$1" -v o="$2" -v t="$3" 'BEGIN {
        r = (o > 0 && t > 0) ? sprintf("%.2f", o / t) : "-"
        printf "  %-34s %12s %14s %14s\n", l, o == "" ? "-" : o, t == "" ? "-" : sprintf("%.1f", t), r }'
}
table() { # TAG TITLE
    d=$tmp/$1-distill.out
    t=$tmp/$1-train.out
    echo
    echo "$2"
    printf "  %-34s %12s %14s %14s\n" "images/s" "ocrkd" "PyTorch" "ocrkd/PyTorch"
    row "teacher forward (inference)" "$(ocrkd_rate "$d" 'teacher forward alone')" "$(torch_rate teacher)"
    row "student train step (CTC only)" "$(ocrkd_rate "$t" train:)" "$(torch_rate train)"
    row "distill step (teacher + student)" "$(ocrkd_rate "$d" distill:)" "$(torch_rate distill)"
    row "distill step without the teacher" "$(ocrkd_rate "$d" 'student training step alone')" \
        "$(torch_rate distill_student)"
    sed -n 's/^bench  *\(GEMM rate.*\)/  ocrkd distill step, \1/p; s/^bench  *\(.*GFLOP\/s.*\)/    \1/p' "$d"
}
version=$("$bin/ocrkd" --version 2>/dev/null | head -n 1)
kernels() { "$bin/ocrkd" --version 2>/dev/null | sed -n 2p; }
table ocrkd "$version vs PyTorch $(torch_rate torch), batch $(torch_rate batch), OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}
  $(kernels)"

# The other OpenBLAS setting, so both are always reported: with the variable
# set, the same runs with it unset (OpenBLAS's CPU detection, which ocrkd
# corrects when it falls back to old kernels: src/util/blas_core.c); with it
# unset, the same runs with OPENBLAS_CORETYPE=Haswell (AVX2 kernels, as some
# clusters set it). The PyTorch column does not change: its convolutions do
# not go through OpenBLAS.
if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
    (
        unset OPENBLAS_CORETYPE
        run_ocrkd_tagged other "$@"
    ) || exit 1
    table other "the same, ocrkd with OPENBLAS_CORETYPE unset (PyTorch column as above)
  $(unset OPENBLAS_CORETYPE; kernels)"
else
    (
        export OPENBLAS_CORETYPE=Haswell
        run_ocrkd_tagged other "$@"
    ) || exit 1
    table other "the same, ocrkd with OPENBLAS_CORETYPE=Haswell (PyTorch column as above)
  $(export OPENBLAS_CORETYPE=Haswell; kernels)"
fi
