#!/bin/sh
# compare.sh - the pipeline behind `make demo` and `make experiment`: make the
# training data (ocrkd-synth) and a held-out test set from another renderer
# with other fonts and words (data-tools/heldout_render.py) and a second one
# from a third renderer and font set (data-tools/heldout_pango.py), train a teacher,
# distill a student from it, train the same student from scratch for the
# same wall time, and evaluate all three (and Tesseract when installed) on
# the three test sets; writes table.txt, table.json and curves.png into
# runs/$NAME-compare/. Re-running reuses the data and resumes the runs.
# Not for clusters (jobs/slurm, jobs/pbs) or single runs (jobs/local/run.sh).
#
# Set by the caller (jobs/local/demo.sh, jobs/local/experiment.sh):
#   NAME            prefix of the table's directory (runs/$NAME-compare)
#   DATA_NAME       data prefix (data/$DATA_NAME, -heldout, -unlabeled); default $NAME
#   SYNTH_ARGS      ocrkd-synth arguments after --out (sizes, width, seed)
#   HELDOUT_ARGS    heldout_render.py arguments after --out (count, width, seed)
#   PANGO_ARGS      heldout_pango.py arguments after --out; default HELDOUT_ARGS
#   CONF_TEACHER, CONF_DISTILL, CONF_SCRATCH   the three configs
#   TARGET_MINUTES  the whole pipeline's budget, printed beside the time taken
#   CONF_FINETUNE   optional: a second phase after the distillation (its
#                   model.init is the distilled run's best.h5), run with
#                   `ocrkd $FINETUNE_CMD` (default train); the distilled row is
#                   then the second phase's, with both phases' wall time, and
#                   the first phase gets a row of its own (phase-1)
#   CONF_UNLABELED, UNLABELED_ARGS   optional (issue 12): a fourth row, the
#                   student distilled with unlabeled images of the held-out
#                   renderer's domain (heldout_render.py UNLABELED_ARGS, packed
#                   without labels into data/$DATA_NAME-unlabeled/unlabeled.h5)
# Environment: DATA, HELD, HELD2, OUT (the training data's, the two held-out
#   sets' directories and the table's; default data/$DATA_NAME,
#   data/$DATA_NAME-heldout, data/$DATA_NAME-pango, runs/$NAME-compare: tests/e2e/test_compare.sh
#   sets them), NP (ranks, default 2), OCRKD_THREADS (default 1),
#   TESSERACT_N (images of each held-out set Tesseract reads, default 400; 0 = skip),
#   SPEED_ROUNDS (alternated teacher / student eval pairs behind the speed
#   ratio, default 5; 0 = the ratio of the images/s column).
set -eu
cd "$(dirname "$0")/../.."
NP=${NP:-2}
DATA_NAME=${DATA_NAME:-$NAME}
DATA=${DATA:-data/$DATA_NAME}
HELD=${HELD:-data/$DATA_NAME-heldout}
HELD2=${HELD2:-data/$DATA_NAME-pango}
PANGO_ARGS=${PANGO_ARGS:-$HELDOUT_ARGS}
OUT=${OUT:-runs/$NAME-compare}
PY=/usr/bin/python3
SPEED_ROUNDS=${SPEED_ROUNDS:-5}
case $SPEED_ROUNDS in
'' | *[!0-9]*) echo "compare.sh: SPEED_ROUNDS must be a whole number of pairs (0 = none), not '$SPEED_ROUNDS'" >&2; exit 2 ;;
esac
export OCRKD_THREADS=${OCRKD_THREADS:-1}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
MPIRUN="mpirun -np $NP --oversubscribe"
start=$(date +%s)
say() { printf '\n== %s (%ds)\n' "$*" $(($(date +%s) - start)); }
mkdir -p "$OUT"

# ---- data ----
if [ ! -f "$DATA/test.h5" ]; then
    say "training data: bin/ocrkd-synth --out $DATA $SYNTH_ARGS"
    # shellcheck disable=SC2086 # SYNTH_ARGS is a list of arguments
    bin/ocrkd-synth --out "$DATA" $SYNTH_ARGS
else
    say "reusing the training data in $DATA"
fi
# A held-out set is a test set: no run depends on it, so one this script made
# with other arguments (an older demo's --n 1000, say) is made again rather
# than reused; $dir/made-with.txt records the tool and its arguments. A set
# without that file (made by hand, or before it was written) is never
# touched: it is reused, with a note.
held_set() { # what dir tool args
    made="$3 $4"
    if [ -f "$2/test.h5" ]; then
        if [ ! -f "$2/made-with.txt" ]; then
            say "reusing the $1 in $2 (no made-with.txt: its arguments are not known; remove $2 to make it with '$made')"
            return
        fi
        was=$(cat "$2/made-with.txt")
        if [ "$was" = "$made" ]; then
            say "reusing the $1 in $2"
            return
        fi
        say "$1: $2 was made with '$was', not '$made': making it again"
        rm -rf "$2/png" "$2/test.h5" "$2/made-with.txt"
    else
        say "$1: $2"
    fi
    mkdir -p "$2"
    # shellcheck disable=SC2086 # $4 is a list of arguments
    $PY "data-tools/$3" --out "$2/test.h5" --png-dir "$2/png" $4
    printf '%s\n' "$made" >"$2/made-with.txt"
}
held_set "held-out test set (PIL renderer, held-out fonts and words)" "$HELD" heldout_render.py "$HELDOUT_ARGS"
held_set "second held-out test set (Pango/Cairo renderer, a third font set, held-out words)" "$HELD2" heldout_pango.py "$PANGO_ARGS"
UNL=data/$DATA_NAME-unlabeled
if [ -n "${CONF_UNLABELED:-}" ] && [ ! -f "$UNL/unlabeled.h5" ]; then
    say "unlabeled images of the held-out domain (other seed, labels thrown away): $UNL"
    mkdir -p "$UNL"
    # shellcheck disable=SC2086
    $PY data-tools/heldout_render.py --out "$UNL/rendered.h5" --png-dir "$UNL/png" $UNLABELED_ARGS
    bin/ocrkd-pack --images "$UNL/png" --out "$UNL/unlabeled.h5"
    rm -rf "$UNL/png" "$UNL/rendered.h5"
fi

# ---- the three runs ----
say "teacher: $MPIRUN bin/ocrkd train $CONF_TEACHER"
$MPIRUN bin/ocrkd train "$CONF_TEACHER" --resume auto
say "distilled student: $MPIRUN bin/ocrkd distill $CONF_DISTILL"
$MPIRUN bin/ocrkd distill "$CONF_DISTILL" --resume auto

# wall seconds of a finished run: the "wall" of its first stop line at its
# last step (resuming a finished run, as a rerun of this script does,
# appends lines a few seconds later), else of its last line
run_wall() {
    awk '{ w = ""; s = -1
           if (match($0, /^\{"wall":[0-9.]+/)) w = substr($0, 9, RLENGTH - 8)
           if (match($0, /"step":[0-9]+/)) s = substr($0, RSTART + 7, RLENGTH - 7) + 0
           if (w == "") next
           last = w
           if (s > top) { top = s; stop = "" }
           if (s == top && stop == "" && index($0, "\"event\":\"stop\"")) stop = w }
         END { print (stop != "" ? stop : last) }' top=-1 "$1/metrics.jsonl"
}
run_dir() { sed -n 's/^ *dir: *\([^ #]*\).*/\1/p' "$1" | head -n 1; }
DISTILL_DIR=$(run_dir "$CONF_DISTILL")
SCRATCH_DIR=$(run_dir "$CONF_SCRATCH")
TEACHER_DIR=$(run_dir "$CONF_TEACHER")
wall=$(run_wall "$DISTILL_DIR")
FINAL_DIR=$DISTILL_DIR
if [ -n "${CONF_FINETUNE:-}" ]; then
    say "second phase from the distilled student: $MPIRUN bin/ocrkd ${FINETUNE_CMD:-train} $CONF_FINETUNE"
    $MPIRUN bin/ocrkd "${FINETUNE_CMD:-train}" "$CONF_FINETUNE" --resume auto
    FINAL_DIR=$(run_dir "$CONF_FINETUNE")
    wall=$(awk -v a="$wall" -v b="$(run_wall "$FINAL_DIR")" 'BEGIN { printf "%.1f", a + b }')
fi
# The scratch run gets the distilled run's wall time (stop.max_minutes, no
# step limit) and a cosine schedule over that time (optim.schedule.over:
# time): its learning rate reaches the floor when the time is used, whatever
# its step rate on this machine. (Before, a throw-away run measured the step
# rate and the schedule was set in steps; on a machine whose speed varies the
# run then ended early or was cut mid-schedule and had to be redone - 5 of
# the 6 demo and experiment runs of stops 26-27, 230-700 s each.) The
# minutes are kept in budget-minutes.txt, so a resumed run keeps the same
# budget.
mkdir -p "$SCRATCH_DIR"
[ -f "$SCRATCH_DIR/budget-minutes.txt" ] ||
    awk -v w="$wall" 'BEGIN { printf "%.4f\n", w / 60 }' >"$SCRATCH_DIR/budget-minutes.txt"
read -r minutes <"$SCRATCH_DIR/budget-minutes.txt"
say "same student from scratch for the distilled run's ${wall} s, cosine schedule over that time: $CONF_SCRATCH"
$MPIRUN bin/ocrkd train "$CONF_SCRATCH" --resume auto --set stop.max_steps=0 \
    --set stop.max_minutes="$minutes" --set optim.schedule.over=time
if [ -n "${CONF_UNLABELED:-}" ]; then
    say "distilled with unlabeled held-out-domain images: $MPIRUN bin/ocrkd distill $CONF_UNLABELED"
    $MPIRUN bin/ocrkd distill "$CONF_UNLABELED" --resume auto
fi

# ---- evaluation ----
say "evaluating on $DATA/test.h5 (in-domain), $HELD/test.h5 (PIL held-out) and $HELD2/test.h5 (Pango held-out)"
field() { echo "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"; }
rows=$OUT/rows.tsv
: >"$rows"
# A row of the table; its images/s is the best of the three one-thread evals
# (the same images per second of work; one eval's timing moves by 15 % here)
row() { # name checkpoint run-dir [wall seconds]
    info=$(bin/ocrkd info "$2")
    params=$(echo "$info" | sed -n 's/^parameters .*total \([0-9]*\).*/\1/p')
    xparams=$(echo "$info" | sed -n 's/^parameters *extractor \([0-9]*\),.*/\1/p')
    a=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$2" --data "$DATA/test.h5" --json)
    b=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$2" --data "$HELD/test.h5" --json)
    c=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$2" --data "$HELD2/test.h5" --json)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$params" "$xparams" "$(field "$a" word_acc)" \
        "$(field "$b" word_acc)" "$(field "$b" cer)" \
        "$(printf '%s\n' "$(field "$a" img_per_s)" "$(field "$b" img_per_s)" "$(field "$c" img_per_s)" | sort -g | tail -n 1)" \
        "${4:-$(run_wall "$3")}" "$(field "$c" word_acc)" "$(field "$c" cer)" >>"$rows"
}
row teacher "$TEACHER_DIR/best.h5" "$TEACHER_DIR"
if [ "$FINAL_DIR" != "$DISTILL_DIR" ]; then
    row phase-1 "$DISTILL_DIR/best.h5" "$DISTILL_DIR"
    row distilled "$FINAL_DIR/best.h5" "$FINAL_DIR" "$wall"
else
    row distilled "$DISTILL_DIR/best.h5" "$DISTILL_DIR"
fi
row scratch "$SCRATCH_DIR/best.h5" "$SCRATCH_DIR"
if [ -n "${CONF_UNLABELED:-}" ]; then
    UNL_DIR=$(run_dir "$CONF_UNLABELED")
    row unlabeled "$UNL_DIR/best.h5" "$UNL_DIR"
fi
# The eval-speed ratio: one eval's timing moves by 15 % here and more from
# one minute to the next, so the teacher and the distilled student are timed
# in alternated pairs (one thread, the PIL held-out set) and the median of the
# pairs' ratios is the one reported (SPEED_ROUNDS pairs, default 5).
# eval-speed-pairs.txt: "teacher student" images/s per pair; eval-speed.txt
# and the ratio line: "median lowest highest pairs" of student / teacher; 0
# pairs (SPEED_ROUNDS=0) means the ratio of the table's images/s column
speed="0 0 0 0"
if [ "$SPEED_ROUNDS" -gt 0 ]; then
    say "eval speed: teacher and distilled student alternated, $SPEED_ROUNDS pairs, one thread, $HELD/test.h5"
    speed=$(i=0; while [ "$i" -lt "$SPEED_ROUNDS" ]; do
        t=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$TEACHER_DIR/best.h5" --data "$HELD/test.h5" --json)
        d=$(OCRKD_THREADS=1 bin/ocrkd eval --model "$FINAL_DIR/best.h5" --data "$HELD/test.h5" --json)
        echo "$(field "$t" img_per_s) $(field "$d" img_per_s)"
        i=$((i + 1))
    done | tee "$OUT/eval-speed-pairs.txt" | awk '{ printf "%.17g\n", $2 / $1 }' | sort -g | awk '{ r[NR] = $1 } END {
        m = (NR % 2) ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
        printf "%.2f %.2f %.2f %d", m, r[1], r[NR], NR }')
fi
echo "$speed" >"$OUT/eval-speed.txt"
TESSERACT_N=${TESSERACT_N:-400}
tess=""
tess2=""
if [ "$TESSERACT_N" -gt 0 ] && command -v tesseract >/dev/null 2>&1; then
    say "Tesseract on the first $TESSERACT_N images of each held-out set (reference row)"
    tess=$($PY data-tools/tesseract_eval.py --data "$HELD/test.h5" --limit "$TESSERACT_N" || true)
    tess2=$($PY data-tools/tesseract_eval.py --data "$HELD2/test.h5" --limit "$TESSERACT_N" || true)
fi
{
    printf '%-10s %9s %9s %10s %10s %8s %9s %8s %9s %8s\n' model params extractor in-domain held-out \
        'CER(h)' pango 'CER(p)' images/s 'train s'
    awk -F'\t' '{ printf "%-10s %9s %9s %9.2f%% %9.2f%% %8.4f %8.2f%% %8.4f %9.1f %8.0f\n", $1, $2, $3, 100 * $4, 100 * $5, $6, 100 * $9, $10, $7, $8 }' "$rows"
    if [ -n "$tess" ]; then
        awk -v a="$(field "$tess" word_acc)" -v c="$(field "$tess" cer)" -v i="$(field "$tess" img_per_s)" \
            -v a2="$(field "$tess2" word_acc)" -v c2="$(field "$tess2" cer)" \
            -v n="$TESSERACT_N" 'BEGIN { printf "%-10s %9s %9s %10s %9.2f%% %8.4f %8.2f%% %8.4f %9.1f   (first %d images of each held-out set)\n", "tesseract", "-", "-", "-", 100 * a, c, 100 * a2, c2, i, n }'
    fi
    set -- $speed
    awk -F'\t' -v secs=$(($(date +%s) - start)) -v target="$TARGET_MINUTES" \
        -v sm="$1" -v slo="$2" -v shi="$3" -v sn="$4" '
        { acc[$1] = $4; held[$1] = $5; x[$1] = $3; ips[$1] = $7; pango[$1] = $9 }
        END {
            printf "\nstudent extractor / teacher extractor = %.1f%%; ", 100 * x["distilled"] / x["teacher"]
            if (sn > 0) printf "student eval %.2fx the teacher'"'"'s images/s (median of %d alternated pairs, %.2f-%.2f)\n", sm, sn, slo, shi
            else printf "student eval %.2fx the teacher'"'"'s images/s (the images/s column)\n", ips["distilled"] / ips["teacher"]
            printf "distilled - teacher: %+.2f points in-domain, %+.2f held-out, %+.2f pango\n", 100 * (acc["distilled"] - acc["teacher"]), 100 * (held["distilled"] - held["teacher"]), 100 * (pango["distilled"] - pango["teacher"])
            printf "distilled - scratch (same wall time): %+.2f points in-domain, %+.2f held-out, %+.2f pango\n", 100 * (acc["distilled"] - acc["scratch"]), 100 * (held["distilled"] - held["scratch"]), 100 * (pango["distilled"] - pango["scratch"])
            if ("unlabeled" in acc)
                printf "unlabeled - distilled (+ unlabeled held-out-domain images): %+.2f points in-domain, %+.2f held-out, %+.2f pango\n", 100 * (acc["unlabeled"] - acc["distilled"]), 100 * (held["unlabeled"] - held["distilled"]), 100 * (pango["unlabeled"] - pango["distilled"])
            printf "took %d s (budget %d min)\n", secs, target }' "$rows"
} >"$OUT/table.txt"
awk -F'\t' 'BEGIN { printf "[" } { printf "%s{\"model\":\"%s\",\"params\":%s,\"extractor\":%s,\"in_domain\":%s,\"held_out\":%s,\"held_out_cer\":%s,\"pango\":%s,\"pango_cer\":%s,\"img_per_s\":%s,\"train_s\":%s}", (NR > 1 ? "," : ""), $1, $2, $3, $4, $5, $6, $9, $10, $7, $8 } END { print "]" }' "$rows" >"$OUT/table.json"
if $PY -c 'import matplotlib' 2>/dev/null; then
    if [ -n "${CONF_UNLABELED:-}" ]; then
        set -- "$DISTILL_DIR" "$SCRATCH_DIR" "$UNL_DIR" --labels distilled,scratch,unlabeled
    elif [ "$FINAL_DIR" != "$DISTILL_DIR" ]; then # the second phase drawn after the first
        set -- "$DISTILL_DIR" "$FINAL_DIR" "$SCRATCH_DIR" --labels distilled,second-phase,scratch \
            --wall-offsets "0,$(run_wall "$DISTILL_DIR"),0"
    else
        set -- "$DISTILL_DIR" "$SCRATCH_DIR" --labels distilled,scratch
    fi
    $PY data-tools/plot_run.py "$@" --out "$OUT/curves.png" >/dev/null 2>&1 ||
        echo "(plot failed; see data-tools/plot_run.py)"
fi
printf '\n'
cat "$OUT/table.txt"
echo "(table in $OUT/table.txt; curves in $OUT/curves.png)"
