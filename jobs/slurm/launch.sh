# launch.sh - the body of teacher.sbatch and distill.sbatch (sourced by them,
# so it runs in the batch shell): start `ocrkd train|distill CONFIG --resume
# auto` as one job step, forward the time-limit warning to it, and requeue the
# job when ocrkd stops with exit 75 (checkpoint written, not finished).
# Not for: choosing resources (the #SBATCH lines of the caller do that) or
# running outside Slurm (jobs/local/run.sh does that).
#
# Set by the caller: OCRKD_COMMAND (train|distill), OCRKD_DEFAULT_CONFIG.
# Arguments: [CONFIG] [--set KEY=VALUE]...  (or env OCRKD_CONFIG, OCRKD_ARGS)
# Environment knobs:
#   OCRKD_BIN       the program (default bin/ocrkd in the submit directory)
#   OCRKD_LAUNCHER  srun (default) or mpirun
#   OCRKD_REQUEUE   1 (default): `scontrol requeue` on exit 75; 0: just exit 75
# shellcheck shell=bash

cd "${SLURM_SUBMIT_DIR:-.}" || exit 2
# Signals to this shell (B:USR1 before the time limit, TERM from scancel)
# become SIGUSR1 to the step; OCRKD_EXIT_FILE in the submit directory, which
# every node sees (jobs/signals.sh).
exit_dir=$PWD
# shellcheck source=jobs/signals.sh
. jobs/signals.sh

ocrkd_config=${OCRKD_CONFIG:-$OCRKD_DEFAULT_CONFIG}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    ocrkd_config=$1
    shift
fi
# OCRKD_ARGS is split on blanks on purpose: it carries several --set options.
# shellcheck disable=SC2206
ocrkd_args=("$@" ${OCRKD_ARGS:-})
ocrkd_bin=${OCRKD_BIN:-bin/ocrkd}
threads=${SLURM_CPUS_PER_TASK:-1}
export OCRKD_THREADS=$threads OPENBLAS_NUM_THREADS=$threads

if [ ! -x "$ocrkd_bin" ]; then
    echo "slurm job: $ocrkd_bin not found or not executable in $PWD (submit from the ocrkd directory, or set OCRKD_BIN)" >&2
    exit 2
fi
if [ ! -f "$ocrkd_config" ]; then
    echo "slurm job: config $ocrkd_config not found in $PWD" >&2
    exit 2
fi

echo "slurm job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}) on ${SLURM_JOB_NUM_NODES:-?} node(s):" \
    "$OCRKD_COMMAND $ocrkd_config ${ocrkd_args[*]}, ${SLURM_NTASKS:-?} rank(s) x $threads thread(s), $(date -u '+%F %T') UTC"

case ${OCRKD_LAUNCHER:-srun} in
srun)
    # srun no longer inherits --cpus-per-task from sbatch (Slurm >= 22.05): pass it.
    start_step "slurm job" srun --cpu-bind=cores --cpus-per-task="$threads" --kill-on-bad-exit=1 \
        "$ocrkd_bin" "$OCRKD_COMMAND" "$ocrkd_config" "${ocrkd_args[@]}" --resume auto
    ;;
mpirun)
    start_step "slurm job" mpirun --bind-to core --map-by "slot:PE=$threads" -x OCRKD_THREADS \
        -x OPENBLAS_NUM_THREADS -x OCRKD_EXIT_FILE \
        "$ocrkd_bin" "$OCRKD_COMMAND" "$ocrkd_config" "${ocrkd_args[@]}" --resume auto
    ;;
*)
    echo "slurm job: OCRKD_LAUNCHER must be srun or mpirun, not '$OCRKD_LAUNCHER'" >&2
    exit 2
    ;;
esac

# --signal=B:USR1@120 warns only this shell: it is passed on to the step,
# whose ranks then write a checkpoint and exit 75. A TERM here means scancel
# or the hard time limit: passed on too, but no requeue afterwards.
wait_step

# A task of an array job (a sweep: sbatch --array) requeues only itself,
# as ARRAYJOB_TASK; the array's job id would requeue every task.
requeue_id=$SLURM_JOB_ID
if [ -n "${SLURM_ARRAY_JOB_ID:-}" ] && [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    requeue_id=${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}
fi
if [ "$rc" -eq 75 ] && [ "$cancelled" = 0 ] && [ "${OCRKD_REQUEUE:-1}" = 1 ]; then
    echo "slurm job: ocrkd stopped after a checkpoint (exit 75): requeueing job $requeue_id" >&2
    if scontrol requeue "$requeue_id"; then
        exit 0
    fi
    echo "slurm job: scontrol requeue $requeue_id failed; resubmit this script to continue (--resume auto)" >&2
fi
echo "slurm job: ocrkd exited with $rc at $(date -u '+%F %T') UTC"
exit "$rc"
