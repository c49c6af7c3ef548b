/* converge.h - the convergence rule of stop.converge (SPEC "The method":
 * distil "until the loss converges"), as plain state that a checkpoint can
 * store. Not for the other stop rules (steps, epochs, minutes: trainer.c). */
#ifndef OCRKD_CONVERGE_H
#define OCRKD_CONVERGE_H

/* The mean of each full window of `window` losses is compared with the best
 * window mean so far; an improvement of less than rel_tol (relative) is a
 * strike, `patience` strikes in a row stop the run. */
typedef struct {
    int window, patience;
    double rel_tol;
    double sum;  /* of the current, incomplete window */
    long count;  /* losses in the current window */
    double best; /* best window mean so far (INFINITY before the first) */
    int strikes;
    long windows; /* completed windows */
} Converge;
void converge_init(Converge *c, int window, double rel_tol, int patience);
/* Adds one loss; returns 1 when the run has converged. */
int converge_add(Converge *c, double loss);

#endif
