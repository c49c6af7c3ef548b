/* converge.c - the stop.converge rule (include/ocrkd/converge.h): window
 * means of the loss and a patience count of windows that did not improve.
 * Not for the other stop rules, which the step loop checks (trainer.c). */
#include "ocrkd/converge.h"

#include <math.h>
#include <string.h>

void converge_init(Converge *c, int window, double rel_tol, int patience) {
    memset(c, 0, sizeof *c);
    c->window = window;
    c->rel_tol = rel_tol;
    c->patience = patience;
    c->best = INFINITY;
}

int converge_add(Converge *c, double loss) {
    if (c->window <= 0) return 0;
    c->sum += loss;
    if (++c->count < c->window) return 0;
    double mean = c->sum / (double)c->count;
    c->sum = 0;
    c->count = 0;
    c->windows++;
    if (!isfinite(c->best)) {
        c->best = mean;
        return 0;
    }
    double gain = (c->best - mean) / fmax(fabs(c->best), 1e-12);
    if (gain < c->rel_tol)
        c->strikes++;
    else
        c->strikes = 0;
    if (mean < c->best) c->best = mean;
    return c->strikes >= c->patience;
}
