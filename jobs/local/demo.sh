#!/bin/sh
# demo.sh - what `make demo` runs after installing and building: synthetic
# training data with capitals and varied rendering, a held-out test set from
# another renderer (PIL) with fonts and words ocrkd never trains on, a
# teacher trained with CTC, a student distilled from it on 2 MPI ranks, the
# same student trained from scratch for the same wall time, and a table of
# all three on both test sets (jobs/local/compare.sh does the work).
#   data in data/demo/ and data/demo-heldout/; runs in runs/demo-teacher/,
#   runs/demo-distill/, runs/demo-scratch/; the table in runs/demo-compare/
# Re-running reuses the data and resumes the runs (--resume auto).
set -eu
export NAME=demo
export SYNTH_ARGS="--train 100000 --val 500 --test 1000 --width 128 --seed 1 --words /usr/share/dict/american-english"
export HELDOUT_ARGS="--n 2000 --width 128 --seed 7"
export PANGO_ARGS="--n 2000 --width 128 --seed 8"
export CONF_TEACHER=conf/demo-teacher.yaml CONF_DISTILL=conf/demo-distill.yaml
export CONF_SCRATCH=conf/demo-scratch.yaml TARGET_MINUTES=15
export TESSERACT_N=${TESSERACT_N:-200}
exec sh "$(dirname "$0")/compare.sh"
