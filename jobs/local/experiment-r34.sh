#!/bin/sh
# experiment-r34.sh - `make experiment` with a deeper teacher (issue 8): the
# ResNet-34 w16 teacher (conf/experiment-r34-teacher.yaml) and a ResNet-18
# w12 student (29.9 % of its extractor), on the experiment's data
# (data/experiment*, made by jobs/local/experiment.sh or here), runs in
# runs/experiment-r34-*, table in runs/experiment-r34-compare/. About
# 70 minutes here (teacher ~35, student and scratch ~15 each).
set -eu
cd "$(dirname "$0")/../.."
mkdir -p data/experiment data/experiment-heldout
[ -e data/experiment-r34 ] || ln -s experiment data/experiment-r34
[ -e data/experiment-r34-heldout ] || ln -s experiment-heldout data/experiment-r34-heldout
export NAME=experiment-r34
export SYNTH_ARGS="--train 200000 --val 1000 --test 2000 --width 128 --seed 11 --words /usr/share/dict/american-english"
export HELDOUT_ARGS="--n 2000 --width 128 --seed 17"
export CONF_TEACHER=conf/experiment-r34-teacher.yaml CONF_DISTILL=conf/experiment-r34-distill.yaml
export CONF_SCRATCH=conf/experiment-r34-scratch.yaml
export TARGET_MINUTES=90
exec sh "$(dirname "$0")/compare.sh"
