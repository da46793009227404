/* kpo stats: the pooled two-proportion z-test (algorithms.md §6) from
 * accuracies, or from per-problem counts (plain count files, or the
 * benchmarks of kpo eval files) the paired comparisons over problems
 * (paired t-test, seeded bootstrap, gap recovered). */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "io/evalfile.h"
#include "stats/count_file.h"
#include "stats/eval_stats.h"
#include "stats/proportion_test.h"

/* "0.4859" or "48.59%": bare numbers must already be proportions, so that
 * 1 can never mean both 100% and 1%. */
static int read_proportion(const cli_command_spec *spec, const char *name, double *out,
                           kpo_error *err)
{
    const char *text = cli_get(spec, name);
    char label[32], buffer[64];
    snprintf(label, sizeof label, "--%s", name);
    if (!text)
        return error_set(err, "%s is required", label);
    size_t len = strlen(text);
    int percent = len > 0 && text[len - 1] == '%';
    if (percent) {
        snprintf(buffer, sizeof buffer, "%.*s", (int)(len - 1), text);
        text = buffer;
    }
    if (parse_double(text, label, out, err) != KPO_OK)
        return KPO_ERR;
    if (percent)
        *out /= 100.0;
    if (*out < 0 || *out > 1)
        return error_set(err, "%s: %s is not a proportion in [0, 1] (write 0.4859 or 48.59%%)",
                         label, cli_get(spec, name));
    return KPO_OK;
}

/* *sum += v, or false when the sum would leave long's range. */
static bool add_checked(long *sum, long v)
{
    if ((v > 0 && *sum > LONG_MAX - v) || (v < 0 && *sum < LONG_MIN - v))
        return false;
    *sum += v;
    return true;
}

/* An arm's total samples and correct answers; a clear failure (not a
 * wrapped sum) when counts in the file add up beyond long. */
static int arm_totals(const char *path, const problem_count *c, size_t n, long *total,
                      long *correct, kpo_error *err)
{
    *total = *correct = 0;
    for (size_t j = 0; j < n; j++)
        if (!add_checked(total, c[j].samples) || !add_checked(correct, c[j].correct))
            return error_set(err, "%s: the sample counts add up past %ld (problem %zu)", path,
                             LONG_MAX, j + 1);
    return KPO_OK;
}

/* The caller has checked the totals with arm_totals. */
static void print_arm(const char *label, const char *path, const problem_count *c, size_t n,
                      long k)
{
    long total = 0, correct = 0, fewest = c[0].samples;
    kpo_error err;
    (void)arm_totals(path, c, n, &total, &correct, &err);
    for (size_t j = 0; j < n; j++)
        fewest = c[j].samples < fewest ? c[j].samples : fewest;
    double pass;
    printf("  %-9s %s: %zu problems, %ld samples, avg %.4f", label, path, n, total,
           eval_avg_at_k(c, n));
    if (k <= fewest && eval_pass_at_k(c, n, k, &pass, &err) == KPO_OK)
        printf(", pass@%ld %.4f", k, pass);
    else if (k <= fewest)
        printf(", pass@%ld undefined (%s)", k, err.message);
    printf("\n");
}

/* The paired analyses' settings, shared by count files and eval files. */
typedef struct compare_params {
    long long resamples, seed, k;
    double level;
} compare_params;

static int read_compare_params(const cli_command_spec *spec, compare_params *p, kpo_error *err)
{
    return (cli_get_int64(spec, "bootstrap", 10000, &p->resamples, err) != KPO_OK ||
            cli_get_int64(spec, "seed", 0, &p->seed, err) != KPO_OK ||
            cli_get_int64(spec, "k", 0, &p->k, err) != KPO_OK ||
            cli_get_double(spec, "level", 0.95, &p->level, err) != KPO_OK)
               ? KPO_ERR
               : KPO_OK;
}

/* Arms A, B (and a reference) over the same n problems: the pooled z-test,
 * the paired t-test, the bootstrap CI and the gap recovered. */
static int compare_arms(const char **paths, problem_count *const *arm, size_t n, size_t n_arms,
                        const compare_params *p)
{
    kpo_error err;
    long k = p->k > 0 ? (long)p->k : arm[0][0].samples;
    static const char *const labels[] = {"arm A", "arm B", "reference"};
    long xa = 0, na = 0, xb = 0, nb = 0, unused_total, unused_correct;
    if (arm_totals(paths[0], arm[0], n, &na, &xa, &err) != KPO_OK ||
        arm_totals(paths[1], arm[1], n, &nb, &xb, &err) != KPO_OK ||
        (n_arms == 3 &&
         arm_totals(paths[2], arm[2], n, &unused_total, &unused_correct, &err) != KPO_OK))
        return command_fail(err.message);
    printf("per-problem counts\n");
    for (size_t j = 0; j < n_arms; j++)
        print_arm(labels[j], paths[j], arm[j], n, k);
    proportion_test z;
    paired_test t;
    bootstrap_ci diff, gap;
    if (proportion_test_pooled((double)xa / (double)na, (double)na, (double)xb / (double)nb,
                               (double)nb, &z, &err) != KPO_OK ||
        eval_paired_test(arm[0], arm[1], n, &t, &err) != KPO_OK ||
        eval_bootstrap_diff(arm[0], arm[1], n, (long)p->resamples, (uint64_t)p->seed, p->level,
                            &diff, &err) != KPO_OK)
        return command_fail(err.message);
    /* A gap that does not exist (reference = baseline) leaves the other
     * tests standing: report it as undefined rather than fail. */
    kpo_error gap_err;
    int have_gap = n_arms == 3 && eval_bootstrap_gap(arm[0], arm[1], arm[2], n,
                                                     (long)p->resamples, (uint64_t)p->seed,
                                                     p->level, &gap, &gap_err) == KPO_OK;
    printf("pooled two-proportion z-test (samples as independent: optimistic)\n");
    printf("  z = %.3f   two-sided p = %.3f\n", z.z, z.p_value);
    printf("paired t-test over problems\n");
    printf("  difference %+.4f   SE = %.5f   t = %.3f   df = %ld   two-sided p = %.3f\n",
           t.mean_diff, t.std_error, t.t, t.df, t.p_value);
    printf("bootstrap over problems (%lld resamples, seed %lld)\n", p->resamples, p->seed);
    printf("  difference %+.4f   %.0f%% CI [%+.4f, %+.4f]   share <= 0: %.4f\n", diff.estimate,
           100 * p->level, diff.low, diff.high, diff.frac_le_zero);
    if (have_gap)
        printf("gap recovered: %.1f%% of the reference-baseline gap   %.0f%% CI "
               "[%.1f%%, %.1f%%]\n",
               gap.estimate + 0.0, 100 * p->level, gap.low + 0.0, gap.high + 0.0); /* no -0.0 */
    else if (n_arms == 3)
        printf("gap recovered: undefined (%s)\n", gap_err.message);
    return 0;
}

static int different_problems(const char *a, size_t na, const char *b, size_t nb)
{
    kpo_error err;
    snprintf(err.message, sizeof err.message,
             "%s has %zu problems but %s has %zu: paired statistics need the same problems in "
             "the same order",
             b, nb, a, na);
    return command_fail(err.message);
}

/* A, B (and a reference R) per-problem count files over the same problems. */
static int stats_from_files(const cli_command_spec *spec, const char **paths, size_t n_paths)
{
    kpo_error err;
    compare_params params;
    if (read_compare_params(spec, &params, &err) != KPO_OK)
        return command_fail(err.message);
    problem_count *arm[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    int status = 0;
    for (size_t j = 0; j < n_paths && status == 0; j++)
        if (count_file_read(paths[j], &arm[j], &n[j], &err) != KPO_OK)
            status = command_fail(err.message);
    for (size_t j = 1; j < n_paths && status == 0; j++)
        if (n[j] != n[0])
            status = different_problems(paths[0], n[0], paths[j], n[j]);
    if (status == 0)
        status = compare_arms(paths, arm, n[0], n_paths, &params);
    for (size_t j = 0; j < 3; j++)
        free(arm[j]);
    return status;
}

/* One benchmark of A, B (and R) eval files: the same problems, by source
 * index, in the same order. */
static int compare_eval_bench(const char **paths, size_t n_paths, const char *bench,
                              const compare_params *params)
{
    kpo_error err;
    problem_count *arm[3] = {NULL, NULL, NULL};
    int64_t *index[3] = {NULL, NULL, NULL};
    size_t n[3] = {0, 0, 0};
    int status = 0;
    for (size_t j = 0; j < n_paths && status == 0; j++)
        if (evalfile_read(paths[j], bench, &arm[j], &index[j], &n[j], &err) != KPO_OK)
            status = command_fail(err.message);
    for (size_t j = 1; j < n_paths && status == 0; j++) {
        if (n[j] != n[0]) {
            status = different_problems(paths[0], n[0], paths[j], n[j]);
        } else if (memcmp(index[j], index[0], n[0] * sizeof *index[0]) != 0) {
            snprintf(err.message, sizeof err.message,
                     "%s and %s: benchmark %s holds different problems (problem_index differs)",
                     paths[0], paths[j], bench);
            status = command_fail(err.message);
        }
    }
    if (status == 0) {
        printf("== benchmark %s ==\n", bench);
        status = compare_arms(paths, arm, n[0], n_paths, params);
    }
    for (size_t j = 0; j < 3; j++) {
        free(arm[j]);
        free(index[j]);
    }
    return status;
}

static int name_listed(char *const *names, size_t n, const char *name)
{
    for (size_t j = 0; j < n; j++)
        if (strcmp(names[j], name) == 0)
            return 1;
    return 0;
}

/* A.h5 B.h5 [REF.h5]: --bench NAME, or every benchmark every file holds. */
static int stats_from_evals(const cli_command_spec *spec, const char **paths, size_t n_paths)
{
    kpo_error err;
    compare_params params;
    if (read_compare_params(spec, &params, &err) != KPO_OK)
        return command_fail(err.message);
    const char *only = cli_get(spec, "bench");
    if (only)
        return compare_eval_bench(paths, n_paths, only, &params);
    char **names[3] = {NULL, NULL, NULL};
    size_t n_names[3] = {0, 0, 0};
    int status = 0;
    for (size_t j = 0; j < n_paths && status == 0; j++)
        if (evalfile_list(paths[j], &names[j], &n_names[j], &err) != KPO_OK)
            status = command_fail(err.message);
    size_t compared = 0;
    for (size_t b = 0; status == 0 && b < n_names[0]; b++) {
        int everywhere = 1;
        for (size_t j = 1; j < n_paths; j++)
            everywhere = everywhere && name_listed(names[j], n_names[j], names[0][b]);
        if (!everywhere)
            continue;
        if (compared++)
            printf("\n");
        status = compare_eval_bench(paths, n_paths, names[0][b], &params);
    }
    if (status == 0 && compared == 0) {
        snprintf(err.message, sizeof err.message, "%s and %s share no benchmark", paths[0],
                 paths[1]);
        status = command_fail(err.message);
    }
    for (size_t j = 0; j < 3; j++)
        evalfile_names_free(names[j], n_names[j]);
    return status;
}

int cmd_stats(int argc, char **argv)
{
    cli_option options[] = {
        {"p1", "P1", "accuracy of arm 1, as 0.4859 or 48.59%", NULL},
        {"n1", "N1", "trials of arm 1 (problems x samples)", NULL},
        {"p2", "P2", "accuracy of arm 2", NULL},
        {"n2", "N2", "trials of arm 2", NULL},
        {"k", "K", "files: pass@K (default: the first problem's sample count)", NULL},
        {"bootstrap", "N", "files: bootstrap resamples (default 10000)", NULL},
        {"seed", "S", "files: bootstrap seed (default 0)", NULL},
        {"level", "L", "files: confidence level (default 0.95)", NULL},
        {"bench", "NAME", "eval files: the benchmark (default: every one in all files)", NULL},
    };
    cli_command_spec spec = {"stats", "--p1 P1 --n1 N1 --p2 P2 --n2 N2 | A.counts B.counts "
                                      "[REF.counts] | A.h5 B.h5 [REF.h5] [--bench NAME] "
                                      "[--k K --bootstrap N --seed S --level L]",
                             "Pooled two-proportion z-test with its two-sided p-value. Samples "
                             "of one problem are correlated, so treat it as optimistic; given "
                             "per-problem count files (lines 'correct_count samples') or kpo eval "
                             "files (per benchmark), also a "
                             "paired t-test and a bootstrap CI over problems, and with a third "
                             "(reference) file the share of the gap recovered.",
                             CLI_OPTIONS(options)};
    const char *positional[3];
    size_t n_positional;
    int status = command_start(&spec, argc, argv, positional, 3, &n_positional);
    if (status >= 0)
        return status;
    if (n_positional == 1)
        return command_fail("kpo stats: give two count files (or three with a reference)");
    if (n_positional >= 2)
    {
        size_t n_hdf5 = 0;
        for (size_t j = 0; j < n_positional; j++)
            n_hdf5 += evalfile_is_hdf5(positional[j]) != 0;
        if (n_hdf5 == n_positional)
            return stats_from_evals(&spec, positional, n_positional);
        if (n_hdf5 > 0)
            return command_fail("kpo stats: give eval files (.h5) or count files, not a mix");
        return stats_from_files(&spec, positional, n_positional);
    }
    kpo_error err;
    double p1, p2, n1, n2;
    if (!cli_get(&spec, "n1") || !cli_get(&spec, "n2"))
        return command_fail("kpo stats: --n1 and --n2 are required");
    if (read_proportion(&spec, "p1", &p1, &err) != KPO_OK ||
        read_proportion(&spec, "p2", &p2, &err) != KPO_OK ||
        cli_get_double(&spec, "n1", 0, &n1, &err) != KPO_OK ||
        cli_get_double(&spec, "n2", 0, &n2, &err) != KPO_OK)
        return command_fail(err.message);
    proportion_test t;
    if (proportion_test_pooled(p1, n1, p2, n2, &t, &err) != KPO_OK)
        return command_fail(err.message);
    printf("pooled two-proportion z-test\n");
    printf("  arm 1       p = %.4f  n = %g\n", p1, n1);
    printf("  arm 2       p = %.4f  n = %g\n", p2, n2);
    printf("  difference  %+.4f (%+.2f points)\n", t.difference, 100 * t.difference);
    printf("  pooled p    %.4f   SE = %.5f\n", t.pooled, t.std_error);
    printf("  z = %.3f   two-sided p = %.3f\n", t.z, t.p_value);
    return 0;
}
