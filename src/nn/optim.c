/* optim.c - SGD (momentum), Adam and AdamW on one flat parameter slice,
 * gradient-norm clipping and learning-rate schedules.
 *
 * For: PyTorch-equivalent updates (torch.optim.SGD with dampening 0 and no
 * Nesterov; Adam and AdamW without amsgrad; clip_grad_norm_ with the 2-norm)
 * so a run can be compared step by step with a PyTorch one.
 * Not for: choosing which parameters train (the caller passes the trainable
 * slice), allreducing gradients (dist.c), saving state (checkpoint.c reads
 * Optim's m, v and t directly).
 */
#include "ocrkd/optim.h"

#include "ocrkd/common.h"

#include <math.h>
#include <stdlib.h>

/* beta1 = beta2 = eps = 0 (a zeroed conf) means the torch defaults. */
void optim_init(Optim *o, const OptimConf *c, size_t n) {
    o->c = *c;
    if (o->c.beta1 == 0 && o->c.beta2 == 0 && o->c.eps == 0)
        o->c.beta1 = 0.9f, o->c.beta2 = 0.999f, o->c.eps = 1e-8f;
    o->n = n;
    o->m = xalloc_floats(n);
    o->v = c->kind == OPT_SGD ? NULL : xalloc_floats(n);
    o->t = 0;
}

void optim_free(Optim *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

/* torch.optim.SGD: g += wd*p; buf = g on the first step, else
 * buf = momentum*buf + g; p -= lr*buf (p -= lr*g without momentum). */
static void sgd_step(Optim *o, float *p, const float *grads, float lr) {
    float wd = o->c.weight_decay, mom = o->c.momentum;
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i] + wd * p[i];
        if (mom != 0.0f) {
            o->m[i] = o->t == 0 ? g : mom * o->m[i] + g;
            g = o->m[i];
        }
        p[i] -= lr * g;
    }
}

/* torch.optim.Adam / AdamW (o->t already counts this step):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
 * Adam adds wd*p to g (L2); AdamW first scales p by 1 - lr*wd (decoupled). */
static void adam_step(Optim *o, float *p, const float *grads, float lr) {
    float b1 = o->c.beta1, b2 = o->c.beta2, eps = o->c.eps, wd = o->c.weight_decay;
    int decoupled = o->c.kind == OPT_ADAMW;
    float step_size = (float)(lr / (1.0 - pow(b1, (double)o->t)));
    float bc2_sqrt = (float)sqrt(1.0 - pow(b2, (double)o->t));
    float decay = decoupled ? 1.0f - lr * wd : 1.0f, l2 = decoupled ? 0.0f : wd;
    for (size_t i = 0; i < o->n; i++) {
        float g = grads[i] + l2 * p[i];
        p[i] *= decay;
        o->m[i] = b1 * o->m[i] + (1.0f - b1) * g;
        o->v[i] = b2 * o->v[i] + (1.0f - b2) * g * g;
        p[i] -= step_size * o->m[i] / (sqrtf(o->v[i]) / bc2_sqrt + eps);
    }
}

void optim_step(Optim *o, float *params, const float *grads, float lr) {
    if (o->c.kind == OPT_SGD) {
        sgd_step(o, params, grads, lr);
        o->t++;
    } else {
        o->t++;
        adam_step(o, params, grads, lr);
    }
}

/* 8 double lanes, which the compiler vectorizes: one chain of dependent
 * additions ran at the adder's latency (1.4 % of a small train step). */
#define NORM_LANES 8
double grad_norm(const float *g, size_t n) {
    double a[NORM_LANES] = {0};
    size_t i = 0;
    for (; i + NORM_LANES <= n; i += NORM_LANES)
        for (int j = 0; j < NORM_LANES; j++)
            a[j] += (double)g[i + j] * g[i + j];
    double s = 0;
    for (int j = 0; j < NORM_LANES; j++)
        s += a[j];
    for (; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

/* As torch: g *= min(1, max_norm / (norm + 1e-6)). A non-finite norm leaves
 * g untouched; the caller sees it in the return value. */
double clip_grad_norm(float *g, size_t n, float max_norm) {
    return clip_grad_to_norm(g, n, max_norm, grad_norm(g, n));
}

double clip_grad_to_norm(float *g, size_t n, float max_norm, double norm) {
    if (max_norm <= 0 || !isfinite(norm)) return norm;
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(g[i] * coef);
    return norm;
}

/* After warmup: constant -> base; cosine -> from base down to min_lr at
 * total_steps (min_lr after it; base if total_steps <= warmup_steps, i.e.
 * no known end); step -> base * gamma^floor((step - warmup)/step_size). */
float lr_at_step(const Schedule *s, float base_lr, long step) {
    if (step < s->warmup_steps) return (float)((double)base_lr * (step + 1) / s->warmup_steps);
    long k = step - MAX(s->warmup_steps, 0);
    switch (s->kind) {
    case SCHED_COSINE: {
        long span = s->total_steps - MAX(s->warmup_steps, 0);
        if (span <= 0) return base_lr;
        double frac = k >= span ? 1.0 : (double)k / span;
        return (float)(s->min_lr + (base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * frac)));
    }
    case SCHED_STEP:
        if (s->step_size <= 0) return base_lr;
        return (float)(base_lr * pow(s->gamma, (double)(k / s->step_size)));
    default:
        return base_lr;
    }
}

float lr_at(const Schedule *s, float base_lr, long step, double time_frac) {
    if (!s->over_time || s->kind != SCHED_COSINE || step < s->warmup_steps)
        return lr_at_step(s, base_lr, step);
    double frac = time_frac > 1.0 ? 1.0 : time_frac > 0.0 ? time_frac : 0.0;
    return (float)(s->min_lr + (base_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * frac)));
}
