#!/bin/sh
# test_jobs.sh - the job scripts' signal and requeue logic, without a
# scheduler: fake srun/scontrol/qstat/qrerun/qsub and a fake ocrkd that exits
# 75 when signalled record what they were asked to do. (jobs/local/run.sh
# with the real mpirun and ocrkd: tests/e2e/test_faults.sh.)
. tests/e2e/lib.sh
mock=$TMP/mock
mkdir -p "$mock"
log=$TMP/calls.log
cat >"$mock/fake-ocrkd" <<'EOF'
#!/bin/bash
echo "ocrkd $* threads=$OCRKD_THREADS" >>"$FAKE_LOG"
echo "step pgid=$(ps -o pgid= $$ | tr -d ' ') exitfile=$OCRKD_EXIT_FILE grace=$OMPI_MCA_odls_base_sigkill_timeout" >>"$FAKE_LOG"
# FAKE_DEAF: a USR1 before the ranks exist is lost, as mpirun loses it
if [ -n "$FAKE_DEAF" ]; then trap '' USR1; sleep 2; fi
trap 'echo "ocrkd signalled" >>"$FAKE_LOG"; exit 75' USR1 TERM
# FAKE_OWN: rank 0's own exit code, hidden by a launcher that exits FAKE_RC
[ -n "$FAKE_OWN" ] && echo "$FAKE_OWN" >"$OCRKD_EXIT_FILE"
[ -n "$FAKE_RC" ] && exit "$FAKE_RC"
for _ in $(seq 100); do sleep 0.1; done
exit 9
EOF
cat >"$mock/srun" <<'EOF'
#!/bin/bash
echo "srun $*" >>"$FAKE_LOG"
while [ "${1#--}" != "$1" ]; do shift; done
exec "$@"
EOF
cat >"$mock/mpirun" <<'EOF'
#!/bin/bash
echo "mpirun $*" >>"$FAKE_LOG"
while [ "${1#-}" != "$1" ]; do case $1 in --oversubscribe) shift ;; *) shift 2 ;; esac; done
exec "$@"
EOF
# shellcheck disable=SC2016  # $* and $FAKE_LOG expand in the mocks, not here
for t in scontrol qsub; do printf '#!/bin/sh\necho "%s $*" >>"$FAKE_LOG"\n' "$t" >"$mock/$t"; done
# shellcheck disable=SC2016
printf '#!/bin/sh\necho "qrerun $*" >>"$FAKE_LOG"; exit 1\n' >"$mock/qrerun"
printf '#!/bin/sh\necho "    Resource_List.walltime = 01:00:00"\n' >"$mock/qstat"
chmod +x "$mock"/*
printf 'n1\nn1\nn2\nn2\n' >"$TMP/nodefile"
unset OCRKD_REQUEUE OCRKD_CONFIG OCRKD_ARGS OCRKD_THREADS OCRKD_LAUNCHER OCRKD_RANKS PBS_WALLTIME \
  OCRKD_TERM_GRACE OCRKD_EXIT_FILE
export PATH="$mock:$PATH" FAKE_LOG="$log" OCRKD_BIN="$mock/fake-ocrkd"
export SLURM_SUBMIT_DIR="$PWD" SLURM_JOB_ID=42 SLURM_CPUS_PER_TASK=3
export PBS_O_WORKDIR="$PWD" PBS_JOBID=7.pbs PBS_NODEFILE="$TMP/nodefile" OMP_NUM_THREADS=8

# check_eq GOT WANT DESCRIPTION
check_eq() {
  if [ "$1" -eq "$2" ]; then pass "$3"; else fail "$3: got $1, want $2"; fi
}

# signal_run SIGNAL SCRIPT ARGS...: start it, signal it after 1 s, rc in $rc
signal_run() {
  sig=$1; shift
  : >"$log"
  bash "$@" >"$TMP/out" 2>&1 &
  pid=$!
  sleep 1
  kill -"$sig" "$pid"
  wait "$pid"; rc=$?
}

for f in jobs/slurm/*.sbatch jobs/slurm/launch.sh jobs/pbs/*.pbs jobs/pbs/launch.sh jobs/local/run.sh; do
  if bash -n "$f"; then pass "bash -n $f"; else fail "bash -n $f"; fi
done

signal_run USR1 jobs/slurm/distill.sbatch conf/demo-distill.yaml --set a=b
check_eq "$rc" 0 "slurm: USR1 -> exit 0 after requeue"
expect_grep '^srun --cpu-bind=cores --cpus-per-task=3 .*fake-ocrkd distill conf/demo-distill.yaml --set a=b --resume auto$' "$log" "slurm: srun line"
expect_grep 'threads=3' "$log" "slurm: OCRKD_THREADS from SLURM_CPUS_PER_TASK"
expect_grep '^ocrkd signalled' "$log" "slurm: USR1 forwarded to the step"
expect_grep '^scontrol requeue 42$' "$log" "slurm: requeue on exit 75"

script_pgid=$(ps -o pgid= $$ | tr -d ' ')
if grep -q "^step pgid=$script_pgid " "$log"; then fail "slurm: the step shares the script's process group"
else pass "slurm: the step runs in its own process group"; fi
expect_grep "exitfile=$PWD/.ocrkd-exit.[0-9]+ grace=5$" "$log" "slurm: OCRKD_EXIT_FILE in the submit dir, mpirun's kill delay"

signal_run TERM jobs/slurm/teacher.sbatch
check_eq "$rc" 75 "slurm: TERM (scancel) -> exit 75"
if grep -q scontrol "$log"; then fail "slurm: requeued after scancel"; else pass "slurm: no requeue after scancel"; fi

signal_run HUP jobs/slurm/distill.sbatch
check_eq "$rc" 0 "slurm: HUP -> checkpoint and requeue"
expect_grep '^ocrkd signalled' "$log" "slurm: HUP passed on to the step as USR1"

: >"$log"
FAKE_RC=1 FAKE_OWN=75 bash jobs/slurm/distill.sbatch >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 0 "slurm: launcher exit 1 but ocrkd's own 75 -> requeue"
expect_grep 'the launcher exited with 1 after a signal, but ocrkd had finished with 75' "$TMP/out" "slurm: says so"
expect_grep '^scontrol requeue 42$' "$log" "slurm: requeued"
[ -z "$(ls -A "$PWD"/.ocrkd-exit.* 2>/dev/null)" ] && pass "slurm: exit file removed" || fail "slurm: exit file left behind"

: >"$log"
SLURM_ARRAY_JOB_ID=40 SLURM_ARRAY_TASK_ID=3 FAKE_RC=75 bash jobs/slurm/distill.sbatch >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 0 "slurm array task: exit 75 -> requeue"
expect_grep '^scontrol requeue 40_3$' "$log" "slurm array task: requeues only its own task (ARRAYJOB_TASK)"

: >"$log"
FAKE_RC=1 bash jobs/slurm/distill.sbatch >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 1 "slurm: a real failure (no exit file) stays 1"

: >"$log"
FAKE_RC=3 bash jobs/slurm/teacher.sbatch >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 3 "slurm: data error exit 3 propagated"
expect_grep 'fake-ocrkd train conf/teacher-r101.yaml --resume auto' "$log" "slurm: teacher default config"

signal_run USR1 jobs/pbs/distill.pbs
check_eq "$rc" 0 "pbs: USR1 -> exit 0 after resubmission"
expect_grep '^mpirun -np 4 --hostfile .* --map-by ppr:2:node:PE=8 --bind-to core' "$log" "pbs: mpirun line"
expect_grep '^qrerun 7.pbs$' "$log" "pbs: qrerun tried first"
expect_grep '^qsub -v OCRKD_CONFIG=conf/distill-r18.yaml,.* /.*/jobs/pbs/distill.pbs$' "$log" "pbs: qsub fallback"
expect_grep 'checkpoint and stop after 3300s' "$TMP/out" "pbs: timer at walltime - 300 s"

: >"$log"
FAKE_RC=5 bash jobs/pbs/teacher.pbs >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 5 "pbs: numerical exit 5 propagated"

signal_run USR1 jobs/local/run.sh train conf/demo-teacher.yaml -n 2 -- --set x=1
check_eq "$rc" 75 "local: USR1 -> exit 75, no re-launch"
expect_grep "exitfile=${TMPDIR:-/tmp}/.ocrkd-exit.[0-9]+ grace=5$" "$log" "local: OCRKD_EXIT_FILE, mpirun's kill delay"
expect_grep '^mpirun .* -x OCRKD_EXIT_FILE ' "$log" "local: mpirun passes OCRKD_EXIT_FILE on"
check_eq "$(grep -c '^mpirun' "$log")" 1 "local: launched once"
expect_grep '^mpirun -np 2 .*fake-ocrkd train conf/demo-teacher.yaml --set x=1 --resume auto$' "$log" "local: mpirun line"

: >"$log"
FAKE_RC=75 OCRKD_MAX_RESTARTS=2 bash jobs/local/run.sh distill conf/demo-distill.yaml >"$TMP/out" 2>&1; rc=$?
check_eq "$rc" 75 "local: exit 75 after the last re-launch"
check_eq "$(grep -c '^mpirun' "$log")" 3 "local: re-launched twice on exit 75"

FAKE_DEAF=1 OCRKD_RESEND=1 signal_run TERM jobs/local/run.sh train conf/demo-teacher.yaml
check_eq "$rc" 75 "local: a USR1 mpirun lost (ranks not started yet) is sent again"
expect_grep '^ocrkd signalled' "$log" "local: the repeated USR1 reached the step"

expect_code 2 "local: bad -n" -- bash jobs/local/run.sh train conf/demo-teacher.yaml -n x
expect_code 2 "local: bad command" -- bash jobs/local/run.sh eval conf/demo-teacher.yaml
e2e_end
