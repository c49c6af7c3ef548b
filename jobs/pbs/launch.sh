# launch.sh - the body of teacher.pbs and distill.pbs (sourced by them, so it
# runs in the job shell): start `ocrkd train|distill CONFIG --resume auto`
# with mpirun over the nodes PBS gave us, ask it to checkpoint shortly before
# the walltime runs out, and continue the run in a new job when ocrkd stops
# with exit 75 (checkpoint written, not finished).
# Not for: choosing resources (the #PBS lines of the caller do that) or
# running outside PBS (jobs/local/run.sh does that).
#
# PBS sends no early warning: at the walltime it sends SIGTERM and, a few
# seconds (kill_delay) later, SIGKILL, too soon for a large checkpoint. So a
# timer here sends SIGUSR1 to mpirun OCRKD_STOP_MARGIN seconds (default 300)
# before the walltime; mpirun forwards SIGUSR1 to every rank.
#
# Set by the caller: OCRKD_COMMAND (train|distill), OCRKD_DEFAULT_CONFIG,
# OCRKD_PBS_SCRIPT (its own path, for re-submission).
# Environment (pass with qsub -v):
#   OCRKD_CONFIG        config file (default: the caller's)
#   OCRKD_ARGS          extra arguments, split on blanks: "--set optim.lr=3e-4"
#   OCRKD_BIN           the program (default bin/ocrkd in the submit directory)
#   OCRKD_RANKS         MPI ranks (default: lines of $PBS_NODEFILE, which PBS Pro
#                       writes once per mpiprocs; set it under Torque)
#   OCRKD_THREADS       OpenBLAS threads per rank (default $OMP_NUM_THREADS, which
#                       PBS Pro sets from ompthreads, else 1)
#   OCRKD_STOP_MARGIN   seconds before the walltime to checkpoint (default 300)
#   OCRKD_REQUEUE       auto (default): qrerun, else qsub a follow-up job;
#                       qrerun | qsub | no
# shellcheck shell=bash

cd "${PBS_O_WORKDIR:-.}" || exit 2
# Signals to this shell (the timer's USR1, TERM from qdel or the walltime)
# become SIGUSR1 to mpirun; OCRKD_EXIT_FILE in the submit directory, which
# every node sees (jobs/signals.sh).
exit_dir=$PWD
# shellcheck source=jobs/signals.sh
. jobs/signals.sh

ocrkd_config=${OCRKD_CONFIG:-$OCRKD_DEFAULT_CONFIG}
# OCRKD_ARGS is split on blanks on purpose: it carries several --set options.
# shellcheck disable=SC2206
ocrkd_args=(${OCRKD_ARGS:-})
ocrkd_bin=${OCRKD_BIN:-bin/ocrkd}
nodefile=${PBS_NODEFILE:-}
user_threads=${OCRKD_THREADS:-}
threads=${OCRKD_THREADS:-${OMP_NUM_THREADS:-1}}
export OCRKD_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

pbs_fail() {
    echo "pbs job: $*" >&2
    exit 2
}
[ -x "$ocrkd_bin" ] || pbs_fail "$ocrkd_bin not found or not executable in $PWD (submit from the ocrkd directory, or set OCRKD_BIN)"
[ -f "$ocrkd_config" ] || pbs_fail "config $ocrkd_config not found in $PWD"
if [ -z "$nodefile" ] || [ ! -r "$nodefile" ]; then
    pbs_fail "PBS_NODEFILE '$nodefile' is not readable (not inside a PBS job?)"
fi
ranks=${OCRKD_RANKS:-$(wc -l <"$nodefile")}
nodes=$(sort -u "$nodefile" | wc -l)
if [ "$ranks" -lt 1 ] || [ $((ranks % nodes)) -ne 0 ]; then
    pbs_fail "$ranks rank(s) do not divide evenly over $nodes node(s)"
fi

# Walltime in seconds: Torque exports PBS_WALLTIME; PBS Pro has it in qstat -f.
walltime_seconds() {
    if [ -n "${PBS_WALLTIME:-}" ]; then
        echo "$PBS_WALLTIME"
        return
    fi
    qstat -f "$PBS_JOBID" 2>/dev/null | awk -F' = ' '/Resource_List.walltime/ {
        n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s; exit }'
}

echo "pbs job ${PBS_JOBID:-?} on $nodes node(s): $OCRKD_COMMAND $ocrkd_config ${ocrkd_args[*]}," \
    "$ranks rank(s) x $threads thread(s), $(date -u '+%F %T') UTC"

start_step "pbs job" mpirun -np "$ranks" --hostfile "$nodefile" \
    --map-by "ppr:$((ranks / nodes)):node:PE=$threads" --bind-to core \
    -x OCRKD_THREADS -x OPENBLAS_NUM_THREADS -x OCRKD_EXIT_FILE \
    "$ocrkd_bin" "$OCRKD_COMMAND" "$ocrkd_config" "${ocrkd_args[@]}" --resume auto

timer_pid=
wall=$(walltime_seconds)
if [ -n "$wall" ] && [ "$wall" -gt 0 ]; then
    delay=$((wall - ${OCRKD_STOP_MARGIN:-300}))
    [ "$delay" -lt 60 ] && delay=60
    (
        trap 'kill $! 2>/dev/null; exit 0' TERM # take the sleep along when cancelled
        sleep "$delay" &
        wait $!
        kill -USR1 $$
    ) &
    timer_pid=$!
    echo "pbs job: walltime ${wall}s, will ask ocrkd to checkpoint and stop after ${delay}s"
else
    echo "pbs job: walltime unknown, no early checkpoint (set PBS_WALLTIME to enable it)" >&2
fi

wait_step
[ -n "$timer_pid" ] && kill "$timer_pid" 2>/dev/null

# Continue in a new job: qrerun puts this job back in the queue (PBS Pro and
# Torque allow it to operators/managers only); qsub submits a follow-up with
# the same script and settings, which resumes from the checkpoint.
requeue() {
    local how=${OCRKD_REQUEUE:-auto}
    if [ "$how" = auto ] || [ "$how" = qrerun ]; then
        qrerun "$PBS_JOBID" && return 0
        echo "pbs job: qrerun $PBS_JOBID failed" >&2
    fi
    if [ "$how" = auto ] || [ "$how" = qsub ]; then
        case ${OCRKD_ARGS:-}$ocrkd_config in *,*)
            echo "pbs job: OCRKD_ARGS or OCRKD_CONFIG has a comma, which qsub -v cannot carry" >&2
            return 1 ;;
        esac
        local vars="OCRKD_CONFIG=$ocrkd_config,OCRKD_ARGS=${OCRKD_ARGS:-}"
        vars="$vars,OCRKD_BIN=$ocrkd_bin,OCRKD_REQUEUE=$how,OCRKD_STOP_MARGIN=${OCRKD_STOP_MARGIN:-300}"
        [ -n "${OCRKD_RANKS:-}" ] && vars="$vars,OCRKD_RANKS=$OCRKD_RANKS"
        [ -n "$user_threads" ] && vars="$vars,OCRKD_THREADS=$user_threads"
        qsub -v "$vars" "$PBS_O_WORKDIR/$OCRKD_PBS_SCRIPT" && return 0
        echo "pbs job: qsub of a follow-up job failed" >&2
    fi
    return 1
}

if [ "$rc" -eq 75 ] && [ "$cancelled" = 0 ] && [ "${OCRKD_REQUEUE:-auto}" != no ]; then
    echo "pbs job: ocrkd stopped after a checkpoint (exit 75): continuing in a new job" >&2
    if requeue; then
        exit 0
    fi
    echo "pbs job: could not requeue; qsub $OCRKD_PBS_SCRIPT again to continue (--resume auto)" >&2
fi
echo "pbs job: ocrkd exited with $rc at $(date -u '+%F %T') UTC"
exit "$rc"
