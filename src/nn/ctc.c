/* ctc.c - CTC loss (forward-backward in log space, double) and greedy decoding.
 *
 * For: torch.nn.CTCLoss(blank=0, reduction='mean', zero_infinity=True) on
 * full-length sequences (every input has T steps), with its gradient taken
 * w.r.t. the logits that fed the log-softmax (softmax - posterior); and
 * best-path decoding. Not for: beam search, per-sample input lengths,
 * allocation (scratch comes in as ws).
 *
 * Per sample, the extended label l' has S = 2L+1 states (blank, l1, blank,
 * l2, ..., blank). alpha[t][s] is the log probability of all prefixes that
 * are in state s after emitting at step t; beta[s] (two rolling rows) the
 * log probability of finishing from state s at step t, excluding the
 * emission at t. Their sum minus log Z is the log posterior of state s at t.
 *
 * Labels longer than the Lmax given to ctc_workspace_doubles overrun ws:
 * the caller sizes ws for its longest label (and its largest batch).
 *
 * ws layout (ctc_workspace_doubles), S = 2*Lmax+1, for each sample b:
 *   alpha (T,S) | beta (S) | beta_next (S) | lead (S) | post (S); then the
 *   B samples' nll. Threads: the samples split over the pool (each its own
 *   scratch and its own rows of dlogits); the mean is summed in sample order
 *   afterwards, so the loss and gradient do not depend on the thread count.
 */
#include "ocrkd/common.h"
#include "ocrkd/nn.h"
#include "ocrkd/pool.h"

#include <math.h>

/* per sample b: alpha (T,S) | beta | beta_next | lead | post, then B doubles of
 * the samples' nll */
static size_t sample_doubles(int T, int Lmax) {
    return ((size_t)T + 4) * (2 * (size_t)MAX(Lmax, 0) + 1);
}

size_t ctc_workspace_doubles(int T, int B, int Lmax) {
    return (size_t)MAX(B, 1) * (sample_doubles(T, Lmax) + 1);
}

static inline double logadd(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

/* class of extended-label state s */
static inline int state_class(const int *lab, int s) {
    return s % 2 ? lab[s / 2] : 0;
}

/* May a path jump from state s-2 to s (skip the blank between)? */
static inline int can_skip(const int *lab, int s) {
    return s % 2 == 1 && s >= 2 && lab[s / 2] != lab[s / 2 - 1];
}

/* Fewest steps that can emit lab: one per symbol plus a blank between repeats. */
static int min_steps(const int *lab, int L) {
    int n = L;
    for (int i = 1; i < L; i++)
        n += lab[i] == lab[i - 1];
    return n;
}

/* alpha (T,S) for sample b; returns log Z (-inf if no path). */
static double ctc_alpha(const float *logp, int T, int B, int K, int b, const int *lab, int S,
                        double *alpha) {
    const float *lp = logp + (size_t)b * K;
    for (int s = 0; s < S; s++)
        alpha[s] = -INFINITY;
    alpha[0] = lp[0];
    if (S > 1) alpha[1] = lp[lab[0]];
    for (int t = 1; t < T; t++) {
        const double *prev = alpha + (size_t)(t - 1) * S;
        double *cur = alpha + (size_t)t * S;
        lp = logp + ((size_t)t * B + b) * K;
        for (int s = 0; s < S; s++) {
            double a = prev[s];
            if (s >= 1) a = logadd(a, prev[s - 1]);
            if (can_skip(lab, s)) a = logadd(a, prev[s - 2]);
            cur[s] = a + lp[state_class(lab, s)];
        }
    }
    const double *last = alpha + (size_t)(T - 1) * S;
    return S > 1 ? logadd(last[S - 1], last[S - 2]) : last[0];
}

/* beta row for step t from the row of step t+1 (both exclude their own
 * step's emission): beta_t[s] = logsum over successors s' of
 * beta_{t+1}[s'] + logp[t+1][class(s')]. */
static void ctc_beta_step(const float *lp_next, const int *lab, int S, const double *next,
                          double *cur) {
    for (int s = 0; s < S; s++) {
        double v = next[s] + lp_next[state_class(lab, s)];
        if (s + 1 < S) v = logadd(v, next[s + 1] + lp_next[state_class(lab, s + 1)]);
        if (s + 2 < S && can_skip(lab, s + 2))
            v = logadd(v, next[s + 2] + lp_next[state_class(lab, s + 2)]);
        cur[s] = v;
    }
}

/* lead[s]: the first state with the same class as s (blanks share state 0),
 * so posteriors of repeated classes can be summed in one slot. */
static void ctc_leads(const int *lab, int S, double *lead) {
    for (int s = 0; s < S; s++) {
        int first = s;
        for (int r = s % 2; r < s; r += 2)
            if (state_class(lab, r) == state_class(lab, s)) {
                first = r;
                break;
            }
        lead[s] = first;
    }
}

typedef struct {
    double *alpha, *beta, *beta_next, *lead, *post;
} CtcScratch;

/* dlogits[:, b, :] += coef * (softmax - posterior), walking t down with beta. */
static void ctc_grad(const float *logp, int T, int B, int K, int b, const int *lab, int S,
                     double logz, CtcScratch w, double coef, float *dlogits) {
    ctc_leads(lab, S, w.lead);
    for (int t = T - 1; t >= 0; t--) {
        const float *lp = logp + ((size_t)t * B + b) * K;
        if (t == T - 1) {
            for (int s = 0; s < S; s++)
                w.beta[s] = s >= S - 2 ? 0.0 : -INFINITY;
        } else {
            double *tmp = w.beta_next;
            w.beta_next = w.beta, w.beta = tmp;
            ctc_beta_step(lp + (size_t)B * K, lab, S, w.beta_next, w.beta);
        }
        const double *a = w.alpha + (size_t)t * S;
        for (int s = 0; s < S; s++)
            w.post[s] = 0.0;
        for (int s = 0; s < S; s++)
            w.post[(int)w.lead[s]] += exp(a[s] + w.beta[s] - logz);
        float *dl = dlogits + ((size_t)t * B + b) * K;
        for (int k = 0; k < K; k++)
            dl[k] += (float)(coef * exp((double)lp[k]));
        for (int s = 0; s < S; s++)
            if ((int)w.lead[s] == s) dl[state_class(lab, s)] -= (float)(coef * w.post[s]);
    }
}

double ctc_loss(const float *logp, int T, int B, int K, const int *labels, const int *label_lens,
                double *losses, float *dlogits, float scale, double *ws) {
    return ctc_loss_labeled(logp, T, B, K, labels, label_lens, NULL, losses, dlogits, scale, ws);
}

typedef struct {
    const float *logp;
    int T, B, K, n, Lmax;
    const int *labels, *label_lens;
    const unsigned char *labeled;
    float *dlogits;
    float scale;
    double *ws, *nll;
} CtcJob;

/* samples [lo, hi): nll[b] (+inf where no alignment fits, 0 unlabeled) and,
 * where finite, dlogits[:, b, :] += scale * per_b * (softmax - posterior) */
static void ctc_samples(void *arg, size_t lo, size_t hi) {
    const CtcJob *j = arg;
    const int *lab = j->labels;
    for (size_t b = 0; b < lo; b++)
        lab += j->label_lens[b];
    const size_t per_sample = sample_doubles(j->T, j->Lmax);
    for (size_t b = lo; b < hi; lab += j->label_lens[b], b++) {
        const int L = j->label_lens[b], S = 2 * L + 1;
        if (j->labeled && !j->labeled[b]) { /* not in the loss: no term, no gradient */
            j->nll[b] = 0;
            continue;
        }
        double *ws = j->ws + b * per_sample;
        CtcScratch w = {ws, ws + (size_t)j->T * S, ws + (size_t)(j->T + 1) * S,
                        ws + (size_t)(j->T + 2) * S, ws + (size_t)(j->T + 3) * S};
        double logz = -INFINITY;
        if (min_steps(lab, L) <= j->T)
            logz = ctc_alpha(j->logp, j->T, j->B, j->K, (int)b, lab, S, w.alpha);
        j->nll[b] = -logz;
        if (isfinite(-logz) && j->dlogits)
            ctc_grad(j->logp, j->T, j->B, j->K, (int)b, lab, S, logz, w,
                     j->scale * (1.0 / ((double)j->n * MAX(L, 1))), j->dlogits);
    }
}

double ctc_loss_labeled(const float *logp, int T, int B, int K, const int *labels,
                        const int *label_lens, const unsigned char *labeled, double *losses,
                        float *dlogits, float scale, double *ws) {
    int n = 0, Lmax = 0;
    for (int b = 0; b < B; b++) {
        n += !labeled || labeled[b];
        Lmax = MAX(Lmax, label_lens[b]);
    }
    CtcJob j = {logp, T, B, K, n, Lmax, labels, label_lens, labeled, dlogits, scale, ws,
                ws + (size_t)MAX(B, 1) * sample_doubles(T, Lmax)};
    pool_for((size_t)B, (size_t)T * (2 * Lmax + 1) * 16, ctc_samples, &j);
    double mean = 0.0;
    for (int b = 0; b < B; b++) {
        if (losses) losses[b] = j.nll[b];
        if ((!labeled || labeled[b]) && isfinite(j.nll[b]))
            mean += j.nll[b] * (1.0 / ((double)n * MAX(label_lens[b], 1)));
    }
    return mean;
}

int ctc_greedy_decode(const float *logp, int T, int B, int K, int b, int *out) {
    int n = 0, prev = 0;
    for (int t = 0; t < T; t++) {
        const float *lp = logp + ((size_t)t * B + b) * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (lp[k] > lp[best]) best = k;
        if (best != 0 && best != prev) out[n++] = best;
        prev = best;
    }
    return n;
}
