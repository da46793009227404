/* kpo diag: the paper's Table 2 for each run file, and the runs side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/innov_table.h"
#include "core/parse.h"
#include "io/runfile.h"

enum { MAX_RUNS = 16 };

static int step_selected(int64_t step, const int64_t *steps, size_t n_steps)
{
    if (!steps)
        return 1;
    for (size_t k = 0; k < n_steps; k++)
        if (steps[k] == step)
            return 1;
    return 0;
}

static void print_run(const char *path, const runfile_innovation *run, const int64_t *steps,
                      size_t n_steps, int csv)
{
    innov_stats whole;
    innov_stats_init(&whole);
    if (!csv) {
        printf("== %s (%lld steps)\n", path, (long long)run->n_rows);
        innov_table_print_header(stdout);
    }
    for (int64_t r = 0; r < run->n_rows; r++) {
        innov_stats_merge(&whole, &run->stats[r]);
        if (!step_selected(run->step[r], steps, n_steps))
            continue;
        char step_text[32];
        snprintf(step_text, sizeof step_text, "%lld", (long long)run->step[r]);
        innov_table_print_row(stdout, path, step_text, &run->stats[r], csv);
    }
    innov_table_print_row(stdout, path, "all", &whole, csv);
    if (!csv)
        printf("\n");
}

/* One line per step present in any run: a statistic of each run side by side. */
static void print_comparison(const char *title, char **paths, const runfile_innovation *runs,
                             int n_runs, const int64_t *steps, size_t n_steps,
                             double (*value)(const innov_stats *), int as_fraction)
{
    printf("%s\n%6s", title, "step");
    for (int k = 0; k < n_runs; k++) {
        /* The file name's tail tells runs in one directory apart. */
        const char *slash = strrchr(paths[k], '/'), *name = slash ? slash + 1 : paths[k];
        size_t len = strlen(name);
        printf(" %14s", len > 14 ? name + len - 14 : name);
    }
    printf("\n");
    int64_t max_step = -1;
    for (int k = 0; k < n_runs; k++)
        for (int64_t r = 0; r < runs[k].n_rows; r++)
            if (runs[k].step[r] > max_step)
                max_step = runs[k].step[r];
    for (int64_t step = 0; step <= max_step; step++) {
        if (!step_selected(step, steps, n_steps))
            continue;
        int present = 0;
        char line[1024];
        int used = snprintf(line, sizeof line, "%6lld", (long long)step);
        for (int k = 0; k < n_runs; k++) {
            double x = NAN;
            for (int64_t r = 0; r < runs[k].n_rows; r++)
                if (runs[k].step[r] == step) {
                    x = value(&runs[k].stats[r]);
                    present = 1;
                }
            char cell[32];
            if (as_fraction)
                innov_table_format_fraction(cell, sizeof cell, x);
            else if (isnan(x))
                snprintf(cell, sizeof cell, "-");
            else
                snprintf(cell, sizeof cell, "%.4g", x);
            if (used < (int)sizeof line)
                used += snprintf(line + used, sizeof line - (size_t)used, " %14s", cell);
        }
        if (present)
            printf("%s\n", line);
    }
    printf("\n");
}

/* Per mini-batch rows, "step.k" with k = 1 the on-policy mini-batch. */
static int print_minibatches(const char *path, const int64_t *steps, size_t n_steps, int csv,
                             kpo_error *err)
{
    runfile_minibatches table;
    if (runfile_read_minibatches(path, &table, err) != KPO_OK)
        return KPO_ERR;
    if (!csv) {
        printf("== %s per mini-batch (step.k; k = 1 is on-policy, later ones are k-1 updates "
               "stale)\n", path);
        if (table.n_rows == 0)
            printf("   (no per-mini-batch statistics recorded)\n");
        else
            innov_table_print_header(stdout);
    }
    for (int64_t r = 0; r < table.n_rows; r++) {
        if (!step_selected(table.step[r], steps, n_steps))
            continue;
        for (int k = 0; k < table.n_minibatches; k++) {
            char step_text[48];
            snprintf(step_text, sizeof step_text, "%lld.%d", (long long)table.step[r], k + 1);
            innov_table_print_row(stdout, path, step_text,
                                  &table.stats[r * table.n_minibatches + k], csv);
        }
    }
    if (!csv)
        printf("\n");
    runfile_minibatches_free(&table);
    return KPO_OK;
}

static double stat_max_abs(const innov_stats *s)
{
    return s->count > 0 ? s->max_abs : NAN;
}

int cmd_diag(int argc, char **argv)
{
    cli_option options[] = {
        {"steps", "LIST", "only these steps, e.g. 1,5,10,15 (default: all)", NULL},
        {"csv", NULL, "machine-readable CSV, one row per run and step", NULL},
        {"minibatches", NULL, "also each step's mini-batches (step.k; k = 1 on-policy)", NULL},
    };
    cli_command_spec spec = {"diag", "RUN.h5 [RUN2.h5 ...] [--steps LIST] [--csv]",
                             "Innovation statistics per step (the paper's Table 2: kurtosis, "
                             "max |delta|, clip fraction, plus mean gain and threshold), the "
                             "whole run merged, and the runs side by side.",
                             CLI_OPTIONS(options)};
    const char *paths[MAX_RUNS];
    size_t n_runs;
    int status = command_start(&spec, argc, argv, paths, MAX_RUNS, &n_runs);
    if (status >= 0)
        return status;
    if (n_runs == 0)
        return command_fail("kpo diag: name at least one run file (kpo diag RUN.h5)");
    kpo_error err;
    int64_t *steps = NULL;
    size_t n_steps = 0;
    const char *steps_text = cli_get(&spec, "steps");
    if (steps_text && parse_int64_list(steps_text, "--steps", &steps, &n_steps, &err) != KPO_OK)
        return command_fail(err.message);

    runfile_innovation runs[MAX_RUNS];
    for (size_t k = 0; k < n_runs; k++) {
        if (runfile_read_innovation(paths[k], &runs[k], &err) != KPO_OK) {
            for (size_t j = 0; j < k; j++)
                runfile_innovation_free(&runs[j]);
            free(steps);
            return command_fail(err.message);
        }
    }
    int csv = cli_get(&spec, "csv") != NULL;
    if (csv)
        innov_table_print_csv_header(stdout);
    for (size_t k = 0; k < n_runs; k++) {
        print_run(paths[k], &runs[k], steps, n_steps, csv);
        if (cli_get(&spec, "minibatches") &&
            print_minibatches(paths[k], steps, n_steps, csv, &err) != KPO_OK) {
            for (size_t j = 0; j < n_runs; j++)
                runfile_innovation_free(&runs[j]);
            free(steps);
            return command_fail(err.message);
        }
    }
    if (!csv && n_runs > 1) {
        char **names = (char **)paths;
        print_comparison("kurtosis (Pearson, Gaussian = 3)", names, runs, (int)n_runs, steps,
                         n_steps, innov_stats_kurtosis, 0);
        print_comparison("max |delta|", names, runs, (int)n_runs, steps, n_steps, stat_max_abs, 0);
        print_comparison("clip fraction", names, runs, (int)n_runs, steps, n_steps,
                         innov_stats_clip_fraction, 1);
    }
    for (size_t k = 0; k < n_runs; k++)
        runfile_innovation_free(&runs[k]);
    free(steps);
    return 0;
}
