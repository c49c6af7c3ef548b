# shellcheck shell=bash disable=SC2034  # signalled, cancelled and rc are read by the sourcing script
# signals.sh - sourced by jobs/slurm/launch.sh, jobs/pbs/launch.sh and
# jobs/local/run.sh: run the ocrkd step (mpirun or srun) so that whatever
# stop signal reaches the job ends in a checkpoint and exit 75, and wait for
# it.
#   start_step LABEL COMMAND...   start COMMAND in the background
#   wait_step                     wait until it has ended; rc = its exit code
#
# Why this is needed: ocrkd's ranks turn SIGTERM, SIGUSR1 and SIGINT into
# "checkpoint at the next step, exit 75", and mpirun forwards SIGUSR1 to
# every rank, but Open MPI's mpirun cannot forward SIGTERM or SIGINT: on
# either it aborts the job (SIGTERM to the ranks, SIGKILL soon after) and
# exits 1. So:
# - USR1, TERM, INT or HUP to this shell becomes USR1 to the step. TERM also
#   sets `cancelled` (scancel, qdel or a hard limit: the callers do not
#   requeue); any of them sets `signalled`. USR1 is sent again every
#   OCRKD_RESEND seconds (default 10) until the step ends, because mpirun
#   drops a signal that arrives before it has started the ranks.
# - The step runs in its own process group with stdin from /dev/null, so a
#   signal sent to this shell's process group (Ctrl-C in a terminal,
#   kill -- -PGID) reaches only this shell, which converts it.
# - When a scheduler signals every process of the job, mpirun gets SIGTERM
#   too. OMPI_MCA_odls_base_sigkill_timeout (OCRKD_TERM_GRACE seconds,
#   default 5) makes mpirun wait that long before it passes SIGTERM to the
#   ranks, and as long again before SIGKILL, so that they can finish the
#   checkpoint (the price: mpirun lingers twice that long after a rank
#   exits non-zero, 75 included). Rank 0 writes its exit code to
#   OCRKD_EXIT_FILE after the last checkpoint; when mpirun reports a failure
#   but that file holds ocrkd's own code, rc is that code.
# The caller sets exit_dir (default ${TMPDIR:-/tmp}) to a directory rank 0
# can write and this shell can read: the submit directory on a cluster.
signalled=0
cancelled=0
trapped=0
step_pid=
step_label=step
resender=
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
    trapped=1
    signalled=1
    [ "$1" = TERM ] && cancelled=1
    echo "$step_label: got SIG$1 at $(date -u '+%T') UTC, asking ocrkd to checkpoint and stop" >&2
    [ -n "$step_pid" ] || return
    kill -USR1 "$step_pid" 2>/dev/null
    if [ -z "$resender" ]; then # until the step has ended (the kill fails)
        (while sleep "${OCRKD_RESEND:-10}"; do kill -USR1 "$step_pid" 2>/dev/null || exit 0; done) &
        resender=$!
    fi
}
for sig in USR1 TERM INT HUP; do
    # shellcheck disable=SC2064  # expand $sig now
    trap "on_signal $sig" "$sig"
done

export OMPI_MCA_odls_base_sigkill_timeout=${OCRKD_TERM_GRACE:-5}
OCRKD_EXIT_FILE=${exit_dir:-${TMPDIR:-/tmp}}/.ocrkd-exit.$$
export OCRKD_EXIT_FILE

start_step() {
    step_label=$1
    shift
    rm -f "$OCRKD_EXIT_FILE"
    set -m # a process group of its own (bash job control), then back
    "$@" </dev/null &
    step_pid=$!
    set +m
}

wait_step() {
    # `wait` returns early when a trap runs: wait again until the step has ended.
    while :; do
        trapped=0
        wait "$step_pid"
        rc=$?
        [ "$trapped" = 1 ] || break
    done
    step_pid=
    [ -n "$resender" ] && kill "$resender" 2>/dev/null
    resender=
    if [ "$rc" -ne 0 ] && [ -s "$OCRKD_EXIT_FILE" ]; then
        own=$(cat "$OCRKD_EXIT_FILE")
        case $own in '' | *[!0-9]*) ;; *)
            if [ "$own" != "$rc" ]; then
                echo "$step_label: the launcher exited with $rc after a signal, but ocrkd had finished with $own" >&2
                rc=$own
            fi ;;
        esac
    fi
    rm -f "$OCRKD_EXIT_FILE"
}
