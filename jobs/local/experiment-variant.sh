#!/bin/sh
# experiment-variant.sh VARIANT - `make experiment` with another teacher /
# student pair (issue 8): conf/experiment-VARIANT-{teacher,distill,scratch}.yaml
# on the experiment's data (data/experiment*, made here if missing), without
# the unlabeled row; runs in runs/experiment-VARIANT-*, table in
# runs/experiment-VARIANT-compare/. Measured in doc/distill.md:
#   r34  ResNet-34 w16 teacher, ResNet-18 w12 student (29.9 %), ~72 minutes
#   w24  ResNet-18 w24 teacher, ResNet-18 w12 student (25 %)
set -eu
v=${1:?usage: sh jobs/local/experiment-variant.sh VARIANT (r34, w24: conf/experiment-VARIANT-*.yaml)}
for part in teacher distill scratch; do
    f=conf/experiment-$v-$part.yaml
    [ -f "$(dirname "$0")/../../$f" ] || { echo "experiment-variant.sh: $f: no such config (variant '$v')" >&2; exit 2; }
done
export NAME=experiment-$v UNLABELED=0
export CONF_TEACHER=conf/experiment-$v-teacher.yaml CONF_DISTILL=conf/experiment-$v-distill.yaml
export CONF_SCRATCH=conf/experiment-$v-scratch.yaml
exec sh "$(dirname "$0")/experiment.sh"
