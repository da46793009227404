/* kpo train CONFIG.ini [--set section.key=value ...] [--resume]: run under
 * mpirun or srun (or alone: one process holds both roles). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/config.h"
#include "kpo_config.h"
#include "core/parse.h"
#include "train/train_config.h"
#include "train/train_plan.h"
#if KPO_HAVE_MPI
#include <mpi.h>

#include "comm/comm_roles.h"
#include "comm/comm_world.h"
#include "train/train_loop.h"
#endif

enum { MAX_OVERRIDES = 256 };

enum { MAX_FILES = 16 };

/* Reads the config files (later ones override earlier ones: a preset, then
 * configs/tiny.ini) and the --set overrides, validates, and checks them
 * against the world size. Every rank reaches the same verdict. */
static int load_settings(const char **paths, int n_paths, char **overrides, int n_overrides,
                         int world_size, config *cfg, train_settings *s, kpo_error *err)
{
    if (config_init(cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, err) != KPO_OK)
        return KPO_ERR;
    for (int k = 0; k < n_paths; k++)
        if (config_load_file(cfg, paths[k], err) != KPO_OK)
            return KPO_ERR;
    for (int k = 0; k < n_overrides; k++)
        if (config_apply_override(cfg, overrides[k], err) != KPO_OK)
            return KPO_ERR;
    if (config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    return train_settings_from_config(cfg, world_size, s, err);
}

static void print_usage(void)
{
    printf("usage: kpo train CONFIG.ini [MORE.ini ...] [--set section.key=value ...] [--resume]\n"
           "       kpo train --help-config      every key, its type, default and meaning\n"
           "       kpo train CONFIG.ini ... --plan [--ranks N] [--gpu-memory GB]\n"
           "                                    the GPU memory plan of learner and rollout\n"
           "                                    ranks (model, activations, KV cache and the\n"
           "                                    rollout's schedule), without a GPU or MPI\n\n"
           "Runs the RL loop (rollout, learner, weight sync, run file, checkpoints) on the\n"
           "ranks mpirun or srun starts; rollout.ranks of them sample, the rest learn.\n"
           "Later config files override earlier ones; --set overrides them all.\n");
}

/* --plan: the settings for --ranks ranks, then the plans (train_plan.h). */
static int print_plan(const char **paths, int n_paths, char **overrides, int n_overrides,
                      const char *ranks_text, const char *memory_text)
{
    int64_t ranks = 0;
    double gb = 0;
    kpo_error err;
    config cfg = {0};
    train_settings s;
    int status = parse_int64(ranks_text, "--ranks", &ranks, &err);
    if (status == KPO_OK && (ranks < 1 || ranks > 1000000))
        status = error_set(&err, "--ranks must be in [1, 1000000], not %lld", (long long)ranks);
    if (status == KPO_OK)
        status = parse_double(memory_text, "--gpu-memory", &gb, &err);
    if (status == KPO_OK && (gb < 0 || gb > 1e6))
        status = error_set(&err, "--gpu-memory must be gigabytes free per GPU (e.g. 141) or 0 "
                                 "for unknown, not %g", gb);
    if (status == KPO_OK)
        status = load_settings(paths, n_paths, overrides, n_overrides, (int)ranks, &cfg, &s,
                               &err);
    if (status == KPO_OK)
        status = train_plan_print(&s, (int)ranks, gb * 1e9, stdout, &err);
    config_free(&cfg);
    return status == KPO_OK ? 0 : command_fail(err.message);
}

int cmd_train(int argc, char **argv)
{
    const char *paths[MAX_FILES];
    int n_paths = 0;
    char *overrides[MAX_OVERRIDES];
    int n_overrides = 0, resume = 0, plan = 0;
    const char *plan_ranks = "1", *plan_memory = "0";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage();
            return 0;
        }
        if (strcmp(argv[i], "--help-config") == 0) {
            config_print_schema(TRAIN_SCHEMA, TRAIN_SCHEMA_LEN);
            return 0;
        }
        if (strcmp(argv[i], "--resume") == 0) {
            resume = 1;
        } else if (strcmp(argv[i], "--plan") == 0) {
            plan = 1;
        } else if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc) {
            plan_ranks = argv[++i];
        } else if (strcmp(argv[i], "--gpu-memory") == 0 && i + 1 < argc) {
            plan_memory = argv[++i];
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc && n_overrides < MAX_OVERRIDES) {
            overrides[n_overrides++] = argv[++i];
        } else if (strncmp(argv[i], "--set=", 6) == 0 && n_overrides < MAX_OVERRIDES) {
            overrides[n_overrides++] = argv[i] + 6;
        } else if (argv[i][0] != '-' && n_paths < MAX_FILES) {
            paths[n_paths++] = argv[i];
        } else {
            fprintf(stderr, "kpo train: unexpected argument '%s' (kpo train --help)\n", argv[i]);
            return 1;
        }
    }
    if (n_paths == 0)
        return command_fail("kpo train: name a config file (kpo train CONFIG.ini)");
    if (plan)
        return print_plan(paths, n_paths, overrides, n_overrides, plan_ranks, plan_memory);
#if !KPO_HAVE_MPI
    (void)resume;
    (void)paths;
    (void)overrides;
    (void)load_settings;
    return command_fail("kpo train: this build has no MPI (install libopenmpi-dev and rebuild)");
#else
    int rank, size;
    comm_world_init(&argc, &argv, &rank, &size);
    config cfg = {0};
    train_settings s;
    kpo_error err;
    if (load_settings(paths, n_paths, overrides, n_overrides, size, &cfg, &s, &err) != KPO_OK) {
        if (rank == 0)
            fprintf(stderr, "kpo: %s\n", err.message);
        config_free(&cfg);
        comm_world_finalize();
        return 1;
    }
    train_install_signal_handlers();
    train_outcome outcome;
    int status = train_run(&s, &cfg, resume, MPI_COMM_WORLD, &outcome, &err);
    if (status != KPO_OK && !outcome.startup_failed)
        comm_abort_all(err.message);
    if (status != KPO_OK && outcome.report)
        fprintf(stderr, "kpo: %s\n", err.message);
    if (status == KPO_OK && rank == 0)
        printf("%s at step %lld; run file %s/run.h5\n",
               outcome.preempted ? "checkpointed and stopped (signal)" : "finished",
               (long long)outcome.last_step, s.out_dir);
    config_free(&cfg);
    comm_world_finalize();
    return status == KPO_OK ? 0 : 1;
#endif
}
