#!/bin/sh
# experiment.sh - what `make experiment` runs: the full-length comparison on
# this 2-core machine (57-90 minutes here by the machine, with the unlabeled row): the
# demo's ResNet-18 w16 teacher (BiLSTM 2x128) trained for 30000 steps of
# 2 x 8 (~20-38 minutes, by the machine) on 2 ranks on 200k lines;
# the ResNet-18 student with per-stage widths [16, 32, 48, 40] (26.3 % of
# its extractor), its extractor selected from the teacher's, distilled for
# 12000 steps (CTC weight 1.0) on the first 64k lines, its teacher outputs
# cached after the first epoch; the same student from scratch on all 200k
# lines for the same wall time; with UNLABELED=1 (default) the student
# distilled again with 64k unlabeled images of the held-out renderer's
# domain (issue 12; UNLABELED=0 skips that row); all of them and Tesseract
# (when installed) on the in-domain test and on the held-out renderer test
# (jobs/local/compare.sh does the work).
#   data in data/experiment/, data/experiment-heldout/, data/experiment-unlabeled/;
#   runs in runs/experiment-{teacher,distill,scratch,unlabeled}/; table in
#   runs/experiment-compare/
# Re-running reuses the data and resumes the runs (--resume auto).
set -eu
# NAME and the CONF_* variables may be set by the caller to run another
# pair on the same data (jobs/local/experiment-variant.sh).
export NAME=${NAME:-experiment} DATA_NAME=experiment
export SYNTH_ARGS="--train 200000 --val 1000 --test 2000 --width 128 --seed 11 --words /usr/share/dict/american-english"
export HELDOUT_ARGS="--n 2000 --width 128 --seed 17"
export PANGO_ARGS="--n 2000 --width 128 --seed 18"
export UNLABELED_ARGS="--n 64000 --width 128 --seed 99"
export CONF_TEACHER=${CONF_TEACHER:-conf/experiment-teacher.yaml}
export CONF_DISTILL=${CONF_DISTILL:-conf/experiment-distill.yaml}
export CONF_SCRATCH=${CONF_SCRATCH:-conf/experiment-scratch.yaml}
if [ "${UNLABELED:-1}" != 0 ]; then export CONF_UNLABELED=${CONF_UNLABELED:-conf/experiment-unlabeled.yaml}; fi
export TARGET_MINUTES=90
exec sh "$(dirname "$0")/compare.sh"
