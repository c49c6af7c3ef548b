#!/bin/sh
# experiment-variant.sh VARIANT - `make experiment` with another teacher /
# student pair (issue 8): conf/experiment-VARIANT-{teacher,distill,scratch}.yaml
# on the experiment's data (data/experiment*, made here if missing), without
# the unlabeled row; runs in runs/experiment-VARIANT-*, table in
# runs/experiment-VARIANT-compare/. Measured in doc/distill.md:
#   r34  ResNet-34 w16 teacher, ResNet-18 w12 student (29.9 %), ~72 minutes
#   w24  ResNet-18 w24 teacher, ResNet-18 w12 student (25 %)
#   stages  the experiment's teacher, a student with widths [16, 32, 48, 40]
# A variant without its own teacher config uses conf/experiment-teacher.yaml
# (and its finished run in runs/experiment-teacher).
set -eu
v=${1:?usage: sh jobs/local/experiment-variant.sh VARIANT (r34, w24, stages: conf/experiment-VARIANT-*.yaml)}
teacher=conf/experiment-$v-teacher.yaml
[ -f "$(dirname "$0")/../../$teacher" ] || teacher=conf/experiment-teacher.yaml
for part in distill scratch; do
    f=conf/experiment-$v-$part.yaml
    [ -f "$(dirname "$0")/../../$f" ] || { echo "experiment-variant.sh: $f: no such config (variant '$v')" >&2; exit 2; }
done
export NAME=experiment-$v UNLABELED=0
export CONF_TEACHER=$teacher CONF_DISTILL=conf/experiment-$v-distill.yaml
export CONF_SCRATCH=conf/experiment-$v-scratch.yaml
exec sh "$(dirname "$0")/experiment.sh"
