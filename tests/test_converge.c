/* test_converge.c - the stop.converge rule: stop when the windowed mean of
 * the loss improves by less than rel_tol for `patience` windows in a row,
 * and not before. */
#include "test.h"
#include "ocrkd/trainer.h"

/* Feeds losses from f(step) until converge_add says stop; returns the step
 * (1-based) or -1 if it never did within limit steps. */
static long stop_step(double (*f)(long), int window, double tol, int patience, long limit) {
    Converge c;
    converge_init(&c, window, tol, patience);
    for (long s = 0; s < limit; s++)
        if (converge_add(&c, f(s))) return s + 1;
    return -1;
}

static double flat(long s) { return 2.0 + 0.01 * ((s * 7919) % 13) / 13.0; }
static double decaying(long s) { return 10.0 * exp(-0.002 * (double)s) + 0.0; }
static double drop_then_flat(long s) { return s < 1000 ? 5.0 - 0.004 * (double)s : 1.0; }

int main(void) {
    /* a plateau: first window sets the best, then `patience` strikes */
    long s = stop_step(flat, 50, 1e-3, 3, 100000);
    CHECK(s == 50 * 4, "flat loss stops after 1 + patience windows (stopped at %ld)", s);
    /* steady improvement of ~10% per window never stops */
    s = stop_step(decaying, 50, 1e-3, 3, 2000);
    CHECK(s == -1, "improving loss does not stop (stopped at %ld)", s);
    /* improving, then flat: stops only after the plateau starts */
    s = stop_step(drop_then_flat, 100, 1e-3, 2, 100000);
    CHECK(s > 1000 && s <= 1000 + 100 * 3, "stops 2-3 windows into the plateau (at %ld)", s);
    /* window 0 disables the rule */
    s = stop_step(flat, 0, 1e-3, 1, 5000);
    CHECK(s == -1, "window 0 never stops (stopped at %ld)", s);
    /* patience counts windows IN A ROW: one good window resets it */
    Converge c;
    converge_init(&c, 1, 0.1, 2);
    double seq[] = {10, 10, 5, 5, 5};
    int stop_at = -1;
    for (int i = 0; i < 5 && stop_at < 0; i++)
        if (converge_add(&c, seq[i])) stop_at = i;
    CHECK(stop_at == 4, "strikes reset by an improving window (stopped at index %d)", stop_at);
    TEST_END();
}
