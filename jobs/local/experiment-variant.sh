#!/bin/sh
# experiment-variant.sh VARIANT - `make experiment` with another teacher /
# student pair (issue 8): conf/experiment-VARIANT-{teacher,distill,scratch}.yaml
# on the experiment's data (data/experiment*, made here if missing), without
# the unlabeled row; runs in runs/experiment-VARIANT-*, table in
# runs/experiment-VARIANT-compare/. Measured in doc/distill.md:
#   r34     ResNet-34 w16 teacher, ResNet-18 w12 student (29.9 %), ~72 minutes
#   w24     ResNet-18 w24 teacher, ResNet-18 w12 student (25 %)
#   stages  the experiment's teacher, a student with widths [16, 32, 48, 40]
#   short   the stages student on half its schedule (12000 steps)
#   short-ft  short, then a second phase (conf/experiment-short-ft-finetune.yaml)
# A variant without its own teacher config uses conf/experiment-teacher.yaml
# (and its finished run in runs/experiment-teacher); one named BASE-SUFFIX
# without its own distill config uses BASE's (and its finished run). With
# conf/experiment-VARIANT-finetune.yaml, that second phase follows the
# distillation (`ocrkd distill` when it names a teacher, else `ocrkd train`)
# and the scratch run gets both phases' wall time.
set -eu
v=${1:?usage: sh jobs/local/experiment-variant.sh VARIANT (r34, w24, stages, short, short-ft: conf/experiment-VARIANT-*.yaml)}
root=$(dirname "$0")/../..
teacher=conf/experiment-$v-teacher.yaml
[ -f "$root/$teacher" ] || teacher=conf/experiment-teacher.yaml
distill=conf/experiment-$v-distill.yaml
[ -f "$root/$distill" ] || distill=conf/experiment-${v%%-*}-distill.yaml
for f in "$distill" "conf/experiment-$v-scratch.yaml"; do
    [ -f "$root/$f" ] || { echo "experiment-variant.sh: $f: no such config (variant '$v')" >&2; exit 2; }
done
export NAME=experiment-$v UNLABELED=0
export CONF_TEACHER=$teacher CONF_DISTILL=$distill
export CONF_SCRATCH=conf/experiment-$v-scratch.yaml
ft=conf/experiment-$v-finetune.yaml
if [ -f "$root/$ft" ]; then
    export CONF_FINETUNE=$ft
    # a second phase with a teacher is a distillation, else CTC training
    if grep -q '^teacher:' "$root/$ft"; then export FINETUNE_CMD=distill; fi
fi
exec sh "$(dirname "$0")/experiment.sh"
