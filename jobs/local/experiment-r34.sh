#!/bin/sh
# experiment-r34.sh - `make experiment` with a deeper teacher (issue 8): the
# ResNet-34 w16 teacher (conf/experiment-r34-teacher.yaml) and a ResNet-18
# w12 student (29.9 % of its extractor), on the experiment's data
# (data/experiment*, made here if missing), without the unlabeled row; runs
# in runs/experiment-r34-*, table in runs/experiment-r34-compare/. About
# 72 minutes here (teacher 44, distillation and scratch 14 each); measured
# in doc/distill.md.
set -eu
export NAME=experiment-r34 UNLABELED=0
export CONF_TEACHER=conf/experiment-r34-teacher.yaml CONF_DISTILL=conf/experiment-r34-distill.yaml
export CONF_SCRATCH=conf/experiment-r34-scratch.yaml
exec sh "$(dirname "$0")/experiment.sh"
