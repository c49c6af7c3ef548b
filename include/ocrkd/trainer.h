/* trainer.h - the step loop of `ocrkd train` (CTC from scratch) and
 * `ocrkd distill` (SPEC "The method"), with data parallelism, stop rules,
 * evaluation, checkpoints, resume and preemption. */
#ifndef OCRKD_TRAINER_H
#define OCRKD_TRAINER_H

#include "ocrkd/config.h"
#include "ocrkd/converge.h" /* for the tests, which include trainer.h */

typedef enum { MODE_TRAIN = 0, MODE_DISTILL } TrainMode;

typedef struct {
    const char *resume; /* NULL, "auto", "fresh" or a checkpoint path */
    long bench_steps;   /* > 0: `ocrkd bench`: time this many steps, no files written */
} TrainOptions;

/* SIGTERM, SIGUSR1, SIGUSR2 and SIGINT only set a flag from here on; the
 * trainer acts on it at the next agreement point (a step, or a phase of the
 * start-up). Call it first thing, before MPI_Init, so that no signal of the
 * start-up kills the job. */
void trainer_install_signals(void);

/* Runs the job on every rank (MPI already initialised) and returns the exit
 * code (EXIT_OK, EXIT_PREEMPTED, EXIT_NUMERIC; fatal errors abort). */
int trainer_run(TrainMode mode, Config *cfg, const TrainOptions *opt);

#endif
