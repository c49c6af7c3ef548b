#!/bin/sh
# experiment-variant.sh VARIANT - `make experiment` with another teacher /
# student pair (issue 8): conf/experiment-VARIANT-{teacher,distill,scratch}.yaml
# on the experiment's data (data/experiment*, made here if missing), without
# the unlabeled row; runs in runs/experiment-VARIANT-*, table in
# runs/experiment-VARIANT-compare/. Measured in doc/distill.md:
#   r34     ResNet-34 w16 teacher, ResNet-18 w12 student (29.9 %), ~72 minutes
#   w24     ResNet-18 w24 teacher, ResNet-18 w12 student (25 %)
#   stages  the experiment's teacher, a student with widths [16, 32, 48, 40]
#   ft      the experiment's distillation, then CTC fine-tuning of everything
#   kd2     the experiment's distillation, then a second one, encoder unfrozen
# A variant without its own teacher or distill config uses the experiment's
# (conf/experiment-teacher.yaml, conf/experiment-distill.yaml, and their
# finished runs in runs/experiment-*). With
# conf/experiment-VARIANT-finetune.yaml, that second phase follows the
# distillation (`ocrkd distill` when it names a teacher, else `ocrkd train`)
# and the scratch run gets both phases' wall time.
set -eu
v=${1:?usage: sh jobs/local/experiment-variant.sh VARIANT (r34, w24, stages, ft, kd2: conf/experiment-VARIANT-*.yaml)}
root=$(dirname "$0")/../..
teacher=conf/experiment-$v-teacher.yaml
[ -f "$root/$teacher" ] || teacher=conf/experiment-teacher.yaml
distill=conf/experiment-$v-distill.yaml
[ -f "$root/$distill" ] || distill=conf/experiment-distill.yaml
scratch=conf/experiment-$v-scratch.yaml
[ -f "$root/$scratch" ] || { echo "experiment-variant.sh: $scratch: no such config (variant '$v')" >&2; exit 2; }
export NAME=experiment-$v UNLABELED=0
export CONF_TEACHER=$teacher CONF_DISTILL=$distill CONF_SCRATCH=$scratch
ft=conf/experiment-$v-finetune.yaml
if [ -f "$root/$ft" ]; then
    export CONF_FINETUNE=$ft
    # a second phase with a teacher is a distillation, else CTC training
    if grep -q '^teacher:' "$root/$ft"; then export FINETUNE_CMD=distill; fi
fi
exec sh "$(dirname "$0")/experiment.sh"
