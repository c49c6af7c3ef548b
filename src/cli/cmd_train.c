/* cmd_train.c - `ocrkd train`, `ocrkd distill` and `ocrkd bench`: install
 * the signal handlers, parse the command line and config, start MPI, hand
 * over to the trainer, and report the exit code. Not for the step loop
 * (train/trainer.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ocrkd/config.h"
#include "ocrkd/dist.h"
#include "ocrkd/trainer.h"

static const char *train_help =
    "usage: ocrkd %s CONFIG [--set KEY=VALUE]... [--resume auto|fresh|PATH]\n"
    "\n"
    "  CONFIG            YAML run configuration (see conf/ and README \"Config\")\n"
    "  --set KEY=VALUE   override any config key by its dotted path, e.g.\n"
    "                    --set optim.lr=3e-4 --set data.train=[a.h5,b.h5]\n"
    "  --resume auto     continue from the newest checkpoint in run.dir that verifies\n"
    "                    (none there: start fresh; some but none verifies: exit 4)\n"
    "  --resume fresh    start over: an earlier run's files in run.dir are moved to\n"
    "                    run.dir/previous-N/ first\n"
    "  --resume PATH     continue from this checkpoint\n"
    "Without --resume, a run.dir that already holds checkpoints is refused (exit 2).\n"
    "\n"
    "Launch under `mpirun -np N` for N data-parallel ranks (batch_size is per rank).\n"
    "SIGTERM, SIGUSR1, SIGUSR2 or SIGINT to a rank (mpirun forwards SIGUSR1 and SIGUSR2,\n"
    "not SIGTERM): checkpoint at the next step, exit 75; during start-up: exit 75,\n"
    "nothing written.\n"
    "OCRKD_EXIT_FILE=PATH: rank 0 also writes its exit code there (for job scripts).\n";

static const char *bench_help =
    "usage: ocrkd bench CONFIG [--steps N] [--set KEY=VALUE]...\n"
    "\n"
    "Times N steps (default 20, after 2 warm-up steps) of the configured job: `train`,\n"
    "or `distill` when the config names teacher.checkpoint. Prints images/s and the\n"
    "time split (data, teacher, student forward/backward, allreduce, optimizer).\n"
    "No files are written. Compare with bench/torch_distill.py on the same model.\n";

typedef struct {
    const char *config;
    const char *resume;
    const char **sets;
    int nsets;
    long steps;
} TrainArgs;

static int parse_args(int argc, char **argv, int bench, TrainArgs *a, const char *cmd) {
    memset(a, 0, sizeof *a);
    a->sets = calloc((size_t)argc, sizeof(char *));
    a->steps = 20;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            if (bench)
                fputs(bench_help, stdout);
            else
                printf(train_help, cmd);
            exit(0);
        } else if (!strcmp(s, "--set") && i + 1 < argc) {
            a->sets[a->nsets++] = argv[++i];
        } else if (!strncmp(s, "--set=", 6)) {
            a->sets[a->nsets++] = s + 6;
        } else if (!bench && !strcmp(s, "--resume") && i + 1 < argc) {
            a->resume = argv[++i];
        } else if (bench && !strcmp(s, "--steps") && i + 1 < argc) {
            char *end;
            a->steps = strtol(argv[++i], &end, 10);
            if (*end || a->steps < 1) {
                fprintf(stderr, "ocrkd %s: --steps wants a positive integer, not '%s'\n", cmd,
                        argv[i]);
                return EXIT_USAGE;
            }
        } else if (s[0] == '-') {
            fprintf(stderr, "ocrkd %s: unknown or incomplete option '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        } else if (!a->config) {
            a->config = s;
        } else {
            fprintf(stderr, "ocrkd %s: unexpected argument '%s' (see --help)\n", cmd, s);
            return EXIT_USAGE;
        }
    }
    if (!a->config) {
        fprintf(stderr, "ocrkd %s: missing CONFIG (see --help)\n", cmd);
        return EXIT_USAGE;
    }
    return 0;
}

static void print_config(const Config *cfg, const char *path) {
    char *yaml = config_to_yaml(cfg);
    printf0("config   %s (effective):\n", path);
    /* indent so the block stands apart from the log */
    for (const char *p = yaml; *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf0("  | %.*s\n", len, p);
        p += len + (nl != NULL);
    }
    free(yaml);
}

/* OCRKD_EXIT_FILE: rank 0's exit code, for a job script whose mpirun
 * reports 1 when it was itself signalled although ocrkd stopped cleanly. */
static void write_exit_file(int code) {
    const char *path = getenv("OCRKD_EXIT_FILE");
    if (!path || !path[0] || dist_rank() != 0) return;
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", code) < 0 || fclose(f) != 0)
        warn0("cannot write OCRKD_EXIT_FILE %s: %s", path, strerror(errno));
}

/* Shared by train, distill and bench: config file, overrides, checks,
 * thread cap, then the trainer. bench picks distill when the config names a
 * teacher, and times steps without writing files (and keeps the default
 * signal actions: a signal just ends it). */
static int run_job(int argc, char **argv, int bench, int distill) {
    const char *cmd = bench ? "bench" : distill ? "distill" : "train";
    if (!bench) trainer_install_signals(); /* before anything slow, MPI_Init included */
    TrainArgs a;
    int rc = parse_args(argc, argv, bench, &a, cmd);
    if (rc) return rc;
    dist_init(&argc, &argv);
    Config cfg;
    Err err = {0};
    if (config_load(&cfg, a.config, &err)) fatal_err(&err);
    for (int i = 0; i < a.nsets; i++)
        if (config_set(&cfg, a.sets[i], &err)) fatal_err(&err);
    if (bench) distill = cfg.teacher_checkpoint && cfg.teacher_checkpoint[0];
    if (config_validate(&cfg, distill ? "distill" : "train", &err)) fatal_err(&err);
    if (bench) {
        cfg.teacher_cache = TEACHER_CACHE_OFF; /* time the teacher every step */
        cfg.eval_every_steps = 0;
        cfg.log_every_steps = 0;
        cfg.converge_window = 0;
    }
    int threads = dist_set_threads(cfg.threads);
    printf0("ocrkd %s %s: %d rank(s), %d BLAS thread(s) per rank\n", cmd, OCRKD_VERSION,
            dist_world(), threads);
    if (!bench) print_config(&cfg, a.config);
    TrainOptions opt = {.resume = a.resume, .bench_steps = bench ? a.steps : 0};
    rc = trainer_run(distill ? MODE_DISTILL : MODE_TRAIN, &cfg, &opt);
    config_free(&cfg);
    free(a.sets);
    write_exit_file(rc);
    dist_finalize();
    return rc;
}

int cmd_train(int argc, char **argv, int distill) { return run_job(argc, argv, 0, distill); }

int cmd_bench(int argc, char **argv) { return run_job(argc, argv, 1, 0); }
