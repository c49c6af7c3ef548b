/* test_unlabeled.c - unlabeled data (SPEC "Dataset file": /labels absent):
 * the writer/reader round trip and `info`, the loader refusing such files
 * unless allowed and giving them labeled = 0 and label length 0 in a mixed
 * list, ctc_loss_labeled against plain CTC on the labeled subset, and the
 * step loss of a mixed batch: exactly the distances on every sample plus
 * the CTC of the labeled ones (hand_mixed_gradient, from two separate
 * computations), with nothing at all from an unlabeled sample's CTC. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill_fixture.h"
#include "ocrkd/dataset.h"
#include "test.h"

static char g_dir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

enum { H = 8, W = 12, N = 6 };

static void write_file(const char *path, int labeled, int seed) {
    DatasetWriter *w;
    Err err = {0};
    int rc = labeled ? dswriter_open(&w, path, H, W, "abc", 0, &err)
                     : dswriter_open_unlabeled(&w, path, H, W, "abc", 0, &err);
    if (rc) fatal_err(&err);
    uint8_t img[H * W];
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < H * W; p++)
            img[p] = (uint8_t)(seed * 31 + i * 7 + p);
        const char *labels[3] = {"ab", "c", "abc"};
        if (dswriter_add(w, img, W - i, labeled ? labels[i % 3] : NULL, &err)) fatal_err(&err);
    }
    if (dswriter_close(w, &err)) fatal_err(&err);
}

static void test_round_trip(void) {
    const char *path = tmp_path("unl.h5");
    write_file(path, 0, 1);
    DatasetMeta m;
    Err err = {0};
    CHECK(dataset_read_meta(path, &m, &err) == 0, "unlabeled file is valid: %s", err.msg);
    CHECK(m.n == N && !m.labeled && m.has_widths, "meta: n %ld, labeled %d", m.n, m.labeled);
    dataset_meta_free(&m);
    FILE *out = tmpfile();
    CHECK(dataset_describe(path, out, &err) == 0, "describe: %s", err.msg);
    char text[4096] = {0};
    rewind(out);
    size_t got = fread(text, 1, sizeof text - 1, out);
    fclose(out);
    CHECK(got > 0 && strstr(text, "unlabeled") != NULL, "info says unlabeled:\n%s", text);
    DatasetWriter *w;
    CHECK(dswriter_open_unlabeled(&w, tmp_path("x.h5"), H, W, "abc", 0, &err) == 0, "open");
    uint8_t img[H * W] = {0};
    CHECK(dswriter_add(w, img, W, "ab", &err) != 0, "a label for an unlabeled file refused");
    dswriter_abort(w);
}

static void test_loader(void) {
    write_file(tmp_path("lab.h5"), 1, 2);
    char f0[512], f1[512]; /* tmp_path's buffers rotate */
    snprintf(f0, sizeof f0, "%s", tmp_path("lab.h5"));
    snprintf(f1, sizeof f1, "%s", tmp_path("unl.h5"));
    const char *fs[2] = {f0, f1};
    LoaderConf c = {0};
    c.files = fs;
    c.nfiles = 2;
    c.world = 1;
    c.batch_size = 4;
    c.labels_for = "the test";
    Loader *l = NULL;
    Err err = {0};
    int rc = loader_open(&l, &c, &err);
    CHECK(rc == EXIT_DATA && strstr(err.msg, f1) && strstr(err.msg, "unlabeled") &&
              strstr(err.msg, "the test"),
          "refused by default (rc %d): %s", rc, err.msg);
    c.allow_unlabeled = 1;
    rc = loader_open(&l, &c, &err);
    CHECK(rc == 0, "accepted when allowed: %s", err.msg);
    if (rc) return;
    CHECK(loader_unlabeled(l) == N && loader_shard_size(l) == 2 * N, "counts %ld of %ld",
          loader_unlabeled(l), loader_shard_size(l));
    int lab = 0, unl = 0, ok = 1;
    for (;;) {
        const Batch *b;
        if (loader_next(l, &b, &err) || !b) break;
        int n = 0;
        for (int k = 0; k < b->B; k++) {
            n += b->labeled[k];
            ok &= b->labeled[k] == (b->file[k] == 0);
            ok &= b->labeled[k] ? b->label_lens[k] > 0 : b->label_lens[k] == 0;
        }
        ok &= n == b->n_labeled;
        lab += b->n_labeled, unl += b->B - b->n_labeled;
    }
    CHECK(ok && lab == N && unl == N, "eval pass: %d labeled, %d unlabeled, flags by file", lab,
          unl);
    loader_close(l);
}

/* ctc_loss_labeled on a mask = ctc_loss on the compacted subset, bit for bit;
 * nothing at all for the unlabeled samples. */
static void test_ctc_subset(void) {
    enum { T = 6, B = 4, K = 5 };
    float logp[T * B * K], sub[T * B * K];
    Rng g;
    rng_seed(&g, 5);
    for (int r = 0; r < T * B; r++) {
        double z = 0;
        for (int k = 0; k < K; k++)
            z += exp(logp[r * K + k] = (float)rng_uniform(&g));
        for (int k = 0; k < K; k++)
            logp[r * K + k] -= (float)log(z);
    }
    unsigned char mask[B] = {1, 0, 1, 0};
    int labels[] = {1, 2, 3, 4, 4}, lens[B] = {2, 0, 3, 0};
    int sub_labels[] = {1, 2, 3, 4, 4}, sub_lens[2] = {2, 3};
    for (int t = 0; t < T; t++)
        for (int j = 0; j < 2; j++)
            memcpy(sub + (t * 2 + j) * K, logp + (t * B + 2 * j) * K, K * sizeof(float));
    double ws[1024];
    float d[T * B * K] = {0}, ds[T * 2 * K] = {0};
    double losses[B];
    double a = ctc_loss_labeled(logp, T, B, K, labels, lens, mask, losses, d, 0.5f, ws);
    double b = ctc_loss(sub, T, 2, K, sub_labels, sub_lens, NULL, ds, 0.5f, ws);
    CHECK(a == b && a > 0, "masked CTC = CTC on the labeled subset (%.17g vs %.17g)", a, b);
    int same = 1, zero = 1;
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++) {
            for (int j = 0; j < 2; j++)
                same &= d[(t * B + 2 * j) * K + k] == ds[(t * 2 + j) * K + k];
            zero &= d[(t * B + 1) * K + k] == 0 && d[(t * B + 3) * K + k] == 0;
        }
    CHECK(same, "gradient of the labeled samples bit-identical to the subset's");
    CHECK(zero && losses[1] == 0 && losses[3] == 0, "unlabeled samples: no loss, no gradient");
    unsigned char none[B] = {0};
    CHECK(ctc_loss_labeled(logp, T, B, K, labels, lens, none, NULL, d, 1, ws) == 0,
          "no labeled sample: CTC 0");
}

/* The step loss of a mixed batch against the hand-computed mix. */
static void test_mixed_gradient(void) {
    Crnn *teacher = make_teacher();
    LossConf lc = {.temperature = 2.0f, .ctc_weight = 0.7f, .logit_kl = 0.5f};
    lc.feat_weight[DIST_L1] = 0.3f;
    lc.dist_weight[DIST_L2] = 1.0f;
    lc.dist_weight[DIST_KL] = 0.25f;
    static const unsigned char masks[3][NB] = {{1, 0, 1}, {0, 0, 0}, {1, 1, 1}};
    const char *names[3] = {"mixed batch", "no labeled sample", "all labeled"};
    for (int m = 0; m < 3; m++) {
        Crnn *s = make_student(teacher), *h = make_student(teacher);
        size_t n = s->n_trainable;
        Shard sh;
        make_shard_mixed(&sh, 4, masks[m]);
        crnn_forward(teacher, sh.img, NB, 0, UPTO_LOGITS);
        TeacherView tv = {teacher->enc, teacher->feat, teacher->logp};
        LossScratch w;
        loss_scratch_init(&w, s, LMAX);
        LossTerms lt = student_gradients(s, &tv, &sh.b, &lc, &w);
        float *ref = xalloc_floats(n);
        double loss = hand_mixed_gradient(h, &tv, &sh.b, &lc, ref);
        char what[96];
        snprintf(what, sizeof what, "%s: gradient = distances + labeled CTC", names[m]);
        /* float rounding: one backward of the summed upstream gradients vs two */
        CHECK_CLOSE(what, s->grads, ref, n, 1e-6, 1e-5);
        double gmax = 0;
        for (size_t i = 0; i < n; i++)
            gmax = fmax(gmax, fabs(ref[i]));
        CHECK(gmax > 1e-3, "%s: gradient not trivially small (max |g| %g)", names[m], gmax);
        CHECK(fabs(lt.loss - loss) <= 1e-12 * fabs(loss), "%s: loss %.17g vs hand %.17g", names[m],
              lt.loss, loss);
        if (m == 1) CHECK(lt.ctc == 0, "no labeled sample: CTC term 0 (%g)", lt.ctc);
        /* an unlabeled sample's stale label ids must change nothing at all */
        if (m == 0) {
            float *g0 = xalloc_floats(n);
            memcpy(g0, s->grads, n * sizeof(float));
            int labels2[NB * LMAX], lens2[NB];
            memcpy(lens2, sh.lens, sizeof lens2);
            lens2[1] = 3;
            int at = 0, off = 0;
            for (int i = 0; i < NB; i++) {
                for (int k = 0; k < lens2[i]; k++)
                    labels2[at++] = i == 1 ? 1 + k : sh.labels[off + k];
                off += sh.lens[i];
            }
            Batch b2 = sh.b;
            b2.labels = labels2;
            b2.label_lens = lens2;
            LossTerms l2 = student_gradients(s, &tv, &b2, &lc, &w);
            CHECK(memcmp(g0, s->grads, n * sizeof(float)) == 0 && l2.loss == lt.loss,
                  "unlabeled sample's CTC exactly absent (labels ignored, bit-identical)");
            free(g0);
        }
        free(ref);
        loss_scratch_free(&w);
        crnn_free(s);
        crnn_free(h);
    }
    crnn_free(teacher);
}

int main(void) {
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/test_unlabeled_XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_loader();
    test_ctc_subset();
    test_mixed_gradient();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) printf("could not remove %s\n", g_dir);
    TEST_END();
}
