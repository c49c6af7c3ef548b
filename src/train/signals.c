/* signals.c - the trainer's signal flag (the handler only sets it; the step
 * loop acts on it at points where all ranks agree) and the fault injection
 * the tests use to make a job slow or numerically broken on purpose.
 * Not for what a stop does (trainer.c, run_state.c). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ocrkd/dist.h"
#include "trainer_internal.h"

static volatile sig_atomic_t g_signal;
static void on_signal(int sig) {
    g_signal = sig;
}
void trainer_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* a signal must not fail a read or write in progress */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL); /* mpirun forwards it too; by default it would kill the rank */
    sigaction(SIGINT, &sa, NULL);
}

/* Has any rank been signalled? A collective: every rank calls it at the
 * same points of the start-up, so all agree to stop before step 1. */
int signalled_anywhere(void) {
    double f[1] = {g_signal != 0};
    dist_allreduce_sum_f64(f, 1);
    return f[0] > 0;
}

/* Fault injection for tests: OCRKD_FAULT_STARTUP_SLEEP=SECONDS makes the
 * start-up that much slower (ended early by a signal), so that a test can
 * signal a job before its first step. */
void fault_startup_sleep(void) {
    const char *env = getenv("OCRKD_FAULT_STARTUP_SLEEP");
    double left = env ? atof(env) : 0;
    for (; left > 0 && !g_signal; left -= 0.05) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int signal_caught(void) {
    return g_signal;
}

/* Fault injection for tests: OCRKD_FAULT_NAN=RANK:FROM:COUNT poisons the
 * gradient of that rank for steps FROM .. FROM+COUNT-1 (1-based), as a
 * numerical blow-up would. */
int fault_nan_now(long step) {
    static int parsed, rank = -1;
    static long from, count;
    if (!parsed) {
        parsed = 1;
        const char *env = getenv("OCRKD_FAULT_NAN");
        if (env && sscanf(env, "%d:%ld:%ld", &rank, &from, &count) != 3) rank = -1;
    }
    return rank == dist_rank() && step >= from && step < from + count;
}
