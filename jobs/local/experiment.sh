#!/bin/sh
# experiment.sh - what `make experiment` runs: the full-length comparison on
# this 2-core machine (about an hour): the demo's ResNet-18 w16 teacher trained
# for 9000 steps (~35 minutes) on 2 ranks on 200k lines, the ResNet-18 w8
# student (25% of its extractor) distilled from it for 4000 steps, the same
# student from scratch for the same
# wall time, all three and Tesseract (when installed) on the in-domain test
# and on the held-out renderer test (jobs/local/compare.sh does the work).
#   data in data/experiment/ and data/experiment-heldout/; runs in
#   runs/experiment-{teacher,distill,scratch}/; table in runs/experiment-compare/
# Re-running reuses the data and resumes the runs (--resume auto).
set -eu
export NAME=experiment
export SYNTH_ARGS="--train 200000 --val 1000 --test 2000 --width 128 --seed 11 --words /usr/share/dict/american-english"
export HELDOUT_ARGS="--n 2000 --width 128 --seed 17"
export CONF_TEACHER=conf/experiment-teacher.yaml CONF_DISTILL=conf/experiment-distill.yaml
export CONF_SCRATCH=conf/experiment-scratch.yaml TARGET_MINUTES=75
exec sh "$(dirname "$0")/compare.sh"
