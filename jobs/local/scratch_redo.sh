# scratch_redo.sh - sourced by compare.sh (and tests/e2e/test_compare.sh):
# whether the scratch run is redone, and with how many steps.
#   scratch_redo_steps STEPS_DONE SECONDS_USED BUDGET_SECONDS STEPS_WANTED GAP
# prints the steps of the redo (STEPS_DONE scaled to the budget by the rate
# the run really had), or nothing when the run stands. A run is redone when
# it ended before 90 % of the budget by more than GAP seconds, or when the
# budget ran out before 95 % of its steps (past 95 % of a cosine schedule
# the rate is under 0.7 % of its peak: the run has had its schedule).
scratch_redo_steps() {
    awk -v n="$1" -v s="$2" -v w="$3" -v want="$4" -v gap="$5" 'BEGIN {
        if (s < 0.1) s = 0.1 # metrics walls have 0.1-s resolution
        if (n > 0 && ((s < 0.9 * w && w - s > gap) || (n < 0.95 * want && w - s < 0.05 * w)))
            printf "%d", n * w / s }'
}
