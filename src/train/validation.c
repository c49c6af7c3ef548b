/* validation.c - validation passes during a run: the teacher's once at the
 * start of a distillation, the student's every eval.every_steps and at the
 * end, with the best one kept as best.h5. Not for `ocrkd eval` on test
 * files (cli/cmd_eval.c) or for the metrics themselves (evaluate.c). */
#include "ocrkd/dist.h"
#include "ocrkd/evaluate.h"
#include "trainer_internal.h"

/* The teacher on the validation set, once at the start of a distill run:
 * logged as {"model":"teacher",...}; later val lines carry the gap to it. */
void evaluate_teacher(Trainer *t) {
    t->teacher_acc = -1;
    if (!t->val || t->mode != MODE_DISTILL || t->opt->bench_steps) return;
    Err err = {0};
    fail_if(loader_seek(t->val, 0, 0, &err), &err);
    EvalCounts c = {0};
    fail_if(evaluate_pass(t->teacher, t->val, t->cfg->eval_case_insensitive, &c, &err), &err);
    dist_allreduce_sum_f64(c.v, EVAL_COUNT);
    EvalResult r = eval_result(&c);
    t->teacher_acc = r.word_acc;
    printf0("eval     teacher  val word_acc %.4f  cer %.4f  1-ned %.4f  (%.0f images)\n",
            r.word_acc, r.cer, r.ned, r.n);
    log_json(t,
             "{\"step\":%ld,\"split\":\"val\",\"model\":\"teacher\",\"word_acc\":%.6g,"
             "\"cer\":%.6g,\"ned\":%.6g}",
             t->step, r.word_acc, r.cer, r.ned);
}

void evaluate_val(Trainer *t) {
    if (!t->val) return;
    Err err = {0};
    average_bn_buffers(t->student);
    fail_if(loader_seek(t->val, 0, 0, &err), &err);
    EvalCounts c = {0};
    fail_if(evaluate_pass(t->student, t->val, t->cfg->eval_case_insensitive, &c, &err), &err);
    dist_allreduce_sum_f64(c.v, EVAL_COUNT);
    EvalResult r = eval_result(&c);
    end_progress_line(t);
    printf0("eval     step %ld  val word_acc %.4f  cer %.4f  1-ned %.4f  (%.0f images)\n", t->step,
            r.word_acc, r.cer, r.ned, r.n);
    if (t->teacher_acc >= 0) {
        printf0("eval     step %ld  student - teacher word_acc %+.4f\n", t->step,
                r.word_acc - t->teacher_acc);
        log_json(t,
                 "{\"step\":%ld,\"split\":\"val\",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g,"
                 "\"gap_to_teacher\":%.6g}",
                 t->step, r.word_acc, r.cer, r.ned, r.word_acc - t->teacher_acc);
    } else {
        log_json(t, "{\"step\":%ld,\"split\":\"val\",\"word_acc\":%.6g,\"cer\":%.6g,\"ned\":%.6g}",
                 t->step, r.word_acc, r.cer, r.ned);
    }
    int better = r.word_acc > t->best_acc || (r.word_acc == t->best_acc && r.cer < t->best_cer);
    if (better) {
        t->best_acc = r.word_acc;
        t->best_cer = r.cer;
        if (dist_rank() == 0 && !t->opt->bench_steps) {
            char path[4200];
            snprintf(path, sizeof path, "%s/best.h5", t->cfg->run_dir);
            write_checkpoint(t, path);
        }
    }
}
