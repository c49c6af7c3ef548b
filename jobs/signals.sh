# shellcheck shell=bash disable=SC2034  # cancelled and rc are read by the sourcing launcher
# signals.sh - sourced by jobs/slurm/launch.sh and jobs/pbs/launch.sh: pass
# the scheduler's warning signal on to the running ocrkd step and wait for it.
#   wait_step PID LABEL
# USR1 or TERM to this shell becomes USR1 to the step, whose ranks then write
# a checkpoint and exit 75. TERM means the job was cancelled or hit its hard
# limit: `cancelled` is set to 1 so the caller does not requeue. On return,
# `rc` holds the step's exit code.
trapped=0
cancelled=0
# shellcheck disable=SC2317  # called from the traps below
on_signal() {
    trapped=1
    [ "$1" = TERM ] && cancelled=1
    echo "$step_label: got SIG$1 at $(date -u '+%T') UTC, asking ocrkd to checkpoint and stop" >&2
    kill -USR1 "$step_pid" 2>/dev/null
}

wait_step() {
    step_pid=$1
    step_label=$2
    trap 'on_signal USR1' USR1
    trap 'on_signal TERM' TERM
    # `wait` returns early when a trap runs: wait again until the step has ended.
    while :; do
        trapped=0
        wait "$step_pid"
        rc=$?
        [ "$trapped" = 1 ] || break
    done
}
