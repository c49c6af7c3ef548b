/* progress.c - what a run tells its user: the start-up banner, progress
 * lines (redrawn in place on a terminal), metrics.jsonl for plotting and
 * tools, and the report of `ocrkd bench`. Not for decisions: nothing here
 * changes what the run does. */
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ocrkd/blas_core.h"
#include "ocrkd/denormals.h"
#include "ocrkd/dist.h"
#include "ocrkd/gemm.h"
#include "trainer_internal.h"

static const char *tm_name[TM_COUNT] = {"data (wait)", "teacher forward",
                                        "student forward+backward", "allreduce", "optimizer"};

/* fmt is a JSON object "{...}"; the line gets "wall" (seconds of training
 * since the run began, resumed jobs included) as its first key. */
void log_json(Trainer *t, const char *fmt, ...) {
    if (!t->metrics) return;
    if (fmt[0] != '{') fatal(1, "internal: log_json format %s", fmt);
    fprintf(t->metrics, "{\"wall\":%.1f,", t->elapsed_before + now_seconds() - t->t_start);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->metrics, fmt + 1, ap);
    va_end(ap);
    fputc('\n', t->metrics);
    fflush(t->metrics);
}

void log_progress(Trainer *t, float lr) {
    if (t->log_steps == 0) return;
    double n = (double)t->log_steps;
    double dt = now_seconds() - t->t_log;
    double ips = dt > 0 ? t->log_sum[F_IMAGES] / dt : 0;
    double loss = t->log_sum[F_LOSS] / n, dist = t->log_sum[F_DIST] / n,
           ctc = t->log_sum[F_CTC] / n;
    long epoch, in_epoch;
    loader_tell(t->train, &epoch, &in_epoch);
    char eta[64] = "";
    double left = -1; /* seconds: by the step limit, else by the time limit */
    if (t->cfg->max_steps > 0 && ips > 0)
        left = (double)(t->cfg->max_steps - t->step) * t->cfg->batch_size * dist_world() / ips;
    else if (t->cfg->max_minutes > 0)
        left = fmax(0, 60 * t->cfg->max_minutes - (t->elapsed_before + now_seconds() - t->t_start));
    if (left >= 0)
        snprintf(eta, sizeof eta, " eta %02d:%02d:%02d", (int)(left / 3600),
                 (int)fmod(left / 60, 60), (int)fmod(left, 60));
    double lab = t->log_sum[F_LABELED], unl = t->log_sum[F_UNLABELED];
    if (dist_rank() == 0) {
        char line[512], mix[64] = "";
        if (t->unlabeled_total > 0) /* the samples the logged steps had, all ranks */
            snprintf(mix, sizeof mix, " (%.0f lab + %.0f unl)", lab, unl);
        if (t->mode == MODE_DISTILL)
            snprintf(line, sizeof line,
                     "step %7ld  epoch %3ld  loss %.4f  dist %.4f  ctc %.4f%s  lr %.2e  %.0f "
                     "img/s%s",
                     t->step, epoch, loss, dist, ctc, mix, lr, ips, eta);
        else
            snprintf(line, sizeof line, "step %7ld  epoch %3ld  loss %.4f  lr %.2e  %.0f img/s%s",
                     t->step, epoch, loss, lr, ips, eta);
        if (t->tty)
            printf("\r\033[K%s", line);
        else
            printf("%s\n", line);
        fflush(stdout);
    }
    if (t->mode == MODE_DISTILL)
        log_json(t,
                 "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.6g,\"distance\":%.6g,\"ctc\":%.6g,"
                 "\"lr\":%.6g,\"img_per_s\":%.1f,\"labeled\":%.0f,\"unlabeled\":%.0f}",
                 t->step, epoch, loss, dist, ctc, lr, ips, lab, unl);
    else
        log_json(t,
                 "{\"step\":%ld,\"epoch\":%ld,\"loss\":%.6g,\"distance\":%.6g,\"ctc\":%.6g,"
                 "\"lr\":%.6g,\"img_per_s\":%.1f}",
                 t->step, epoch, loss, dist, ctc, lr, ips);
    memset(t->log_sum, 0, sizeof t->log_sum);
    t->log_steps = 0;
    t->t_log = now_seconds();
}

/* Redraw the progress line in place only on a real terminal. mpirun gives
 * its ranks a pseudo-terminal even when its own output goes to a batch log,
 * so under a launcher we print plain lines unless OCRKD_PROGRESS=redraw. */
int progress_redraws(void) {
    const char *env = getenv("OCRKD_PROGRESS");
    if (env) return strcmp(env, "redraw") == 0;
    int launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("SLURM_STEP_ID");
    return !launched && isatty(STDOUT_FILENO);
}

void end_progress_line(const Trainer *t) {
    if (t->tty && dist_rank() == 0) printf("\n");
}

/* GEMM GFLOP/s of `flops` in `sec` per rank, and its share of the
 * rank's peak (threads x one core's measured FMA peak) */
static void print_rate(const char *what, double flops, double sec, double peak) {
    if (sec <= 0 || flops <= 0) return;
    double g = flops / sec / 1e9;
    if (peak > 0)
        printf0("bench      %-22s %8.1f GFLOP/s  %5.1f%% of peak\n", what, g, 100 * g / peak);
    else
        printf0("bench      %-22s %8.1f GFLOP/s\n", what, g);
}

void print_bench(Trainer *t, double secs) {
    double v[2 * TM_COUNT + 1];
    memcpy(v, t->tm, sizeof t->tm);
    memcpy(v + TM_COUNT, t->flops, sizeof t->flops);
    v[2 * TM_COUNT] = secs;
    dist_allreduce_sum_f64(v, 2 * TM_COUNT + 1);
    const int P = dist_world();
    double total = v[2 * TM_COUNT] / P;
    long steps = t->step - BENCH_WARMUP;
    double images = (double)steps * t->cfg->batch_size * P;
    printf0("bench    %s: %ld steps, %d ranks x batch %d: %.1f images/s (%.1f ms/step)\n",
            mode_name(t->mode), steps, P, t->cfg->batch_size, images / total, 1e3 * total / steps);
    for (int k = 0; k < TM_COUNT; k++) {
        if (k == TM_TEACHER && t->mode != MODE_DISTILL) continue;
        double sec = v[k] / P;
        printf0("bench      %-22s %8.2f ms/step  %5.1f%%\n", tm_name[k], 1e3 * sec / steps,
                100 * sec / total);
    }
    double teacher = v[TM_TEACHER] / P;
    if (t->mode == MODE_DISTILL && teacher > 0)
        printf0("bench    teacher forward alone: %.1f images/s\n", images / teacher);
    double student = total - teacher;
    printf0("bench    student training step alone: %.1f images/s\n", images / student);
    /* per rank: FLOPs and seconds are both means over the ranks */
    const int threads = gemm_path() == GEMM_CBLAS ? openblas_get_num_threads() : gemm_threads();
    const double core = gemm_peak_gflops(), peak = core * threads;
    printf0(
        "bench    GEMM rate per rank (%d thread(s), %s; core FMA peak %.1f GFLOP/s measured; "
        "Winograd convs at their direct FLOPs):\n",
        threads, gemm_path_name(gemm_path()), core);
    const double ft = v[TM_COUNT + TM_TEACHER] / P, fs = v[TM_COUNT + TM_STUDENT] / P;
    if (t->mode == MODE_DISTILL) print_rate("teacher forward", ft, teacher, peak);
    print_rate("student step", fs, v[TM_STUDENT] / P, peak);
    print_rate("whole step", ft + fs, total, peak);
}

void print_start(const Trainer *t) {
    const Crnn *s = t->student;
    char desc[256];
    arch_describe(&s->arch, desc, sizeof desc);
    printf0("model    %s\n", desc);
    char blas[256];
    blas_core_describe(blas, sizeof blas);
    printf0("blas     %s\n", blas);
    denormals_describe(blas, sizeof blas);
    printf0("numerics %s\n", blas);
    printf0("params   extractor %zu, encoder %zu, classifier %zu; trainable %zu (%s)\n",
            s->count[PART_EXTRACTOR], s->count[PART_ENCODER], s->count[PART_CLASSIFIER],
            s->n_trainable,
            s->trainable == PART_ALL         ? "all"
            : s->trainable == PART_EXTRACTOR ? "extractor"
                                             : "extractor, classifier");
    printf0("data     %ld samples per rank, %d ranks, batch %d per rank (global %d), %ld steps "
            "per epoch, alphabet of %d\n",
            loader_shard_size(t->train), dist_world(), t->cfg->batch_size,
            t->cfg->batch_size * dist_world(), loader_steps_per_epoch(t->train), t->alpha.n);
    if (t->cfg->train_limit > 0)
        printf0("data     data.train_limit: only the first %ld samples of each training file\n",
                t->cfg->train_limit);
    if (t->unlabeled_total > 0)
        printf0("data     %.0f unlabeled samples (all ranks): distance terms alone for them, CTC "
                "averaged over each batch's labeled samples\n",
                t->unlabeled_total);
}
