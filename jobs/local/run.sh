#!/bin/bash
# run.sh - run `ocrkd train|distill` on this machine under mpirun, as a
# cluster job would: ranks bound to cores, OCRKD_THREADS BLAS threads each,
# --resume auto, and a re-launch when ocrkd stops with exit 75 (a checkpoint
# was written but the run is not finished), which simulates a requeue.
# Not for: clusters (jobs/slurm/, jobs/pbs/) or the demo (jobs/local/demo.sh).
#
#   jobs/local/run.sh train|distill CONFIG [-n RANKS] [--no-requeue] [-- ARGS...]
#     -n RANKS        MPI ranks (default 2)
#     --no-requeue    exit 75 instead of re-launching
#     -- ARGS...      passed to ocrkd, e.g. -- --set stop.max_steps=200
# Environment: OCRKD_BIN (default bin/ocrkd next to this script),
#   OCRKD_THREADS (default cores / RANKS), OCRKD_MAX_RESTARTS (default 20),
#   OCRKD_MPIRUN_ARGS (extra mpirun options, split on blanks).
# Ctrl-C, SIGTERM, SIGHUP or SIGUSR1 to this script (or its process group)
# make ocrkd checkpoint and stop (exit 75) without a re-launch; resume later
# with the same command. SIGUSR1 to mpirun is forwarded to the ranks: they
# checkpoint and exit 75, and this script re-launches. SIGTERM to mpirun
# itself: mpirun aborts the job, the ranks get OCRKD_TERM_GRACE seconds
# (default 10) to write the checkpoint, and the exit is ocrkd's 75 (see
# jobs/signals.sh).
# Exit status: ocrkd's (0 finished, 2 config, 3 data, 4 checkpoint,
# 5 numerical, 75 stopped after a checkpoint).

usage() {
    sed -n '8,11p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || usage
command=$1
config=$2
shift 2
case $command in train | distill) ;; *) usage ;; esac
ranks=2
requeue=${OCRKD_REQUEUE:-1}
while [ $# -gt 0 ]; do
    case $1 in
    -n) [ $# -ge 2 ] || usage; ranks=$2; shift 2 ;;
    --no-requeue) requeue=0; shift ;;
    --) shift; break ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage ;;
    esac
done
extra=("$@")
bin=${OCRKD_BIN:-$root/bin/ocrkd}

fail() {
    echo "run.sh: $*" >&2
    exit 2
}
case $ranks in '' | *[!0-9]* | 0) fail "-n wants a positive number of ranks, not '$ranks'" ;; esac
[ -x "$bin" ] || fail "$bin not found or not executable (run make, or set OCRKD_BIN)"
[ -f "$config" ] || fail "config $config not found"

cores=$(nproc)
threads=${OCRKD_THREADS:-$((cores / ranks))}
[ "$threads" -ge 1 ] || threads=1
export OCRKD_THREADS=$threads OPENBLAS_NUM_THREADS=$threads
if [ "$(id -u)" -eq 0 ]; then # Open MPI refuses root unless told
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ $((ranks * threads)) -le "$cores" ]; then
    binding=(--bind-to core --map-by "slot:PE=$threads")
else # more threads than cores: binding would fail, so let the OS place them
    binding=(--bind-to none --oversubscribe)
fi
# OCRKD_MPIRUN_ARGS is split on blanks on purpose.
# shellcheck disable=SC2206
mpirun_args=(-np "$ranks" "${binding[@]}" -x OCRKD_THREADS -x OPENBLAS_NUM_THREADS
    -x OCRKD_EXIT_FILE ${OCRKD_MPIRUN_ARGS:-})

# signals to this script become SIGUSR1 to mpirun; `signalled` says one came
# shellcheck source=jobs/signals.sh
. "$root/jobs/signals.sh"

restarts=0
while :; do
    echo "run.sh: mpirun ${mpirun_args[*]} $bin $command $config ${extra[*]} --resume auto"
    start_step run.sh mpirun "${mpirun_args[@]}" "$bin" "$command" "$config" "${extra[@]}" --resume auto
    wait_step
    if [ "$rc" -ne 75 ] || [ "$signalled" = 1 ] || [ "$requeue" = 0 ]; then
        break
    fi
    if [ "$restarts" -ge "${OCRKD_MAX_RESTARTS:-20}" ]; then
        echo "run.sh: exit 75 again after $restarts re-launches; giving up" >&2
        break
    fi
    restarts=$((restarts + 1))
    echo "run.sh: ocrkd stopped after a checkpoint (exit 75): re-launch $restarts, as a requeue would" >&2
done
exit "$rc"
