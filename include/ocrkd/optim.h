/* optim.h - optimizers on one flat parameter slice, gradient clipping and
 * learning-rate schedules. Semantics are PyTorch's (torch.optim.SGD, Adam,
 * AdamW; clip_grad_norm_). Not for deciding WHICH parameters train: the
 * caller passes the trainable slice. */
#ifndef OCRKD_OPTIM_H
#define OCRKD_OPTIM_H

#include <stddef.h>

typedef enum { OPT_SGD = 0, OPT_ADAM, OPT_ADAMW } OptKind;

typedef struct {
    OptKind kind;
    float lr;           /* base learning rate */
    float weight_decay; /* sgd/adam: L2 added to the gradient; adamw: decoupled */
    float momentum;     /* sgd only (0 = plain SGD) */
    float beta1, beta2, eps; /* adam/adamw; defaults 0.9, 0.999, 1e-8 */
} OptimConf;

typedef struct {
    OptimConf c;
    size_t n;
    float *m; /* sgd momentum buffer / adam first moment (n) */
    float *v; /* adam second moment (n); NULL for sgd */
    long t;   /* number of steps taken (adam bias correction) */
} Optim;

void optim_init(Optim *o, const OptimConf *c, size_t n); /* allocates zeroed state */
void optim_free(Optim *o);
/* One update of params (n) from grads (n) at learning rate lr. */
void optim_step(Optim *o, float *params, const float *grads, float lr);

/* L2 norm of g (n), accumulated in double. */
double grad_norm(const float *g, size_t n);
/* Scales g so its norm is at most max_norm (max_norm <= 0: no clipping);
 * returns the norm before clipping, as torch.nn.utils.clip_grad_norm_. */
double clip_grad_norm(float *g, size_t n, float max_norm);
/* clip_grad_norm with g's norm already known (grad_norm(g, n), computed
 * since g last changed): spares the second pass over g. */
double clip_grad_to_norm(float *g, size_t n, float max_norm, double norm);

typedef enum { SCHED_CONSTANT = 0, SCHED_COSINE, SCHED_STEP } SchedKind;

typedef struct {
    SchedKind kind;
    long warmup_steps; /* linear warmup: lr * (step+1) / warmup_steps for step < warmup */
    long total_steps;  /* cosine: decays to min_lr at total_steps */
    float min_lr;      /* cosine floor (absolute) */
    long step_size;    /* step: multiply by gamma every step_size steps after warmup */
    float gamma;
    int over_time; /* cosine over the fraction of stop.max_minutes elapsed, not over steps */
} Schedule;

/* Learning rate for 0-based optimizer step `step`. */
float lr_at_step(const Schedule *s, float base_lr, long step);

/* lr_at_step, unless s->over_time: then the cosine's position after the
 * warmup (still in steps) is time_frac, the share of the run's time budget
 * used (clamped to [0, 1]), so the decay ends when the time does. */
float lr_at(const Schedule *s, float base_lr, long step, double time_frac);

#endif
