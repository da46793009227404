/* kpo diag: the paper's Table 2 for each run file, and the runs side by side. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/innov_table.h"
#include "core/parse.h"
#include "filter/gain.h"
#include "io/runfile.h"

enum { MAX_RUNS = 16 };

/* Which mini-batches a step's row pools (--pool). The first mini-batch is
 * on-policy: its innovations are 0 up to rounding, so pooling them with
 * the stale ones (what the step's accumulator, and the paper's Table 2,
 * does) adds a spike at 0 that inflates the kurtosis and dilutes the clip
 * fraction. */
typedef enum pool_kind { POOL_DEFAULT, POOL_ALL, POOL_OFF_POLICY } pool_kind;

/* One run as Table 2 shows it: rows pooled as `pool` says, and why. */
typedef struct diag_run {
    runfile_innovation whole;  /* the step accumulators, as recorded */
    runfile_innovation pooled; /* what the table prints: whole, or mini-batches 2..M merged */
    pool_kind pool;            /* POOL_ALL or POOL_OFF_POLICY */
    int minibatches;           /* M per step, 0 when not recorded */
    char note[160];            /* why a default fell back to all, or "" */
} diag_run;

static void diag_run_free(diag_run *run)
{
    runfile_innovation_free(&run->whole);
    runfile_innovation_free(&run->pooled);
}

/* Copies whole into pooled (pool all). */
static int pool_copy(diag_run *run, kpo_error *err, const char *path)
{
    int64_t n = run->whole.n_rows;
    run->pooled.n_rows = n;
    run->pooled.step = malloc((size_t)(n ? n : 1) * sizeof *run->pooled.step);
    run->pooled.stats = malloc((size_t)(n ? n : 1) * sizeof *run->pooled.stats);
    if (!run->pooled.step || !run->pooled.stats)
        return error_set(err, "%s: out of memory", path);
    for (int64_t r = 0; r < n; r++) {
        run->pooled.step[r] = run->whole.step[r];
        run->pooled.stats[r] = run->whole.stats[r];
    }
    return KPO_OK;
}

/* Why mini-batches 2..M cannot be pooled for this run (NULL: they can). */
static const char *off_policy_unavailable(const diag_run *run, const runfile_minibatches *mb,
                                          char *why, size_t size)
{
    if (mb->n_rows == 0)
        return "no /innovation/minibatch_accumulator (kpo simulate, or a run from before it "
               "was recorded)";
    if (mb->n_minibatches < 2)
        return "/innovation/minibatch_accumulator holds 1 mini-batch per step: none is "
               "off-policy";
    for (int64_t r = 0; r < run->whole.n_rows; r++) {
        /* A run resumed from an older file has its earlier rows NaN there. */
        int missing = r >= mb->n_rows || mb->step[r] != run->whole.step[r];
        for (int k = 0; !missing && k < mb->n_minibatches; k++)
            missing = !(mb->stats[r * mb->n_minibatches + k].count >= 0);
        if (missing) {
            snprintf(why, size, "/innovation/minibatch_accumulator has no row for step %lld",
                     (long long)run->whole.step[r]);
            return why;
        }
    }
    return NULL;
}

/* Reads one run and pools it as asked: POOL_DEFAULT takes off-policy when
 * the per-mini-batch accumulators exist (else all, noting why); an explicit
 * off-policy without them is an error naming the file. */
static int diag_run_load(const char *path, pool_kind asked, diag_run *run, kpo_error *err)
{
    memset(run, 0, sizeof *run);
    if (runfile_read_innovation(path, &run->whole, err) != KPO_OK)
        return KPO_ERR;
    runfile_minibatches mb;
    if (runfile_read_minibatches(path, &mb, err) != KPO_OK)
        return KPO_ERR;
    char why_text[160];
    const char *why = off_policy_unavailable(run, &mb, why_text, sizeof why_text);
    run->minibatches = mb.n_rows > 0 ? mb.n_minibatches : 0;
    int status = KPO_OK;
    if (asked == POOL_OFF_POLICY && why) {
        status = error_set(err, "%s: --pool off-policy: %s", path, why);
    } else if (asked == POOL_ALL || why) {
        run->pool = POOL_ALL;
        if (asked == POOL_DEFAULT)
            snprintf(run->note, sizeof run->note, "%s", why);
        status = pool_copy(run, err, path);
    } else {
        run->pool = POOL_OFF_POLICY;
        status = pool_copy(run, err, path);
        for (int64_t r = 0; status == KPO_OK && r < run->whole.n_rows; r++) {
            innov_stats_init(&run->pooled.stats[r]);
            for (int k = 1; k < mb.n_minibatches; k++)
                innov_stats_merge(&run->pooled.stats[r], &mb.stats[r * mb.n_minibatches + k]);
        }
    }
    runfile_minibatches_free(&mb);
    return status;
}

/* "pooled over ..." for a run's header. */
static void describe_pool(const diag_run *run, char *out, size_t size)
{
    if (run->pool == POOL_OFF_POLICY)
        snprintf(out, size, "Table 2 over the off-policy mini-batches 2..%d (mini-batch 1 is "
                            "on-policy, its innovations 0); --pool all for the whole step",
                 run->minibatches);
    else if (run->note[0])
        snprintf(out, size, "Table 2 pooled over all mini-batches of each step: %s", run->note);
    else
        snprintf(out, size, "Table 2 pooled over all mini-batches of each step, the on-policy "
                            "first included");
}

static int step_selected(int64_t step, const int64_t *steps, size_t n_steps)
{
    if (!steps)
        return 1;
    for (size_t k = 0; k < n_steps; k++)
        if (steps[k] == step)
            return 1;
    return 0;
}

static void print_run(const char *path, const diag_run *d, const int64_t *steps, size_t n_steps,
                      int csv)
{
    const runfile_innovation *run = &d->pooled;
    innov_stats whole;
    innov_stats_init(&whole);
    if (!csv) {
        char pool[512];
        describe_pool(d, pool, sizeof pool);
        printf("== %s (%lld steps)\n%s\n", path, (long long)run->n_rows, pool);
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

/* The value of `key` in `[section]` of a run's stored config: kpo train's
 * "key = value  ; origin" lines, or kpo simulate's "q=0.01 v=1 mode=sigma"
 * one. 1 when found. */
static int config_lookup(const char *text, const char *section, const char *key, char *out,
                         size_t size)
{
    size_t key_len = strlen(key), section_len = strlen(section);
    int in_section = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;
        while (p < line + len && isspace((unsigned char)*p))
            p++;
        if (p < line + len && *p == '[') {
            in_section = len - (size_t)(p - line) > section_len + 1 &&
                         strncmp(p + 1, section, section_len) == 0 && p[1 + section_len] == ']';
        } else if (in_section) {
            const char *stop = line + len; /* comments start at ';' or '#' */
            for (const char *c = p; c < stop; c++)
                if (*c == ';' || *c == '#') {
                    stop = c;
                    break;
                }
            for (const char *c = p; c + key_len <= stop; c++) {
                if ((c > line && !isspace((unsigned char)c[-1])) || strncmp(c, key, key_len) != 0)
                    continue;
                const char *v = c + key_len;
                while (v < stop && (*v == ' ' || *v == '\t'))
                    v++;
                if (v >= stop || *v != '=')
                    continue;
                v++;
                while (v < stop && (*v == ' ' || *v == '\t'))
                    v++;
                size_t n = 0;
                while (v + n < stop && !isspace((unsigned char)v[n]))
                    n++;
                if (n == 0 || n >= size)
                    return 0;
                memcpy(out, v, n);
                out[n] = '\0';
                return 1;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

static int config_number(const char *text, const char *section, const char *key, double *out)
{
    char value[64], *end = NULL;
    if (!text || !config_lookup(text, section, key, value, sizeof value))
        return 0;
    double x = strtod(value, &end);
    if (end == value || *end != '\0')
        return 0;
    *out = x;
    return 1;
}

/* The paper's scale (algorithms.md, the KPO recipe): 32 prompts x 8
 * responses per step, responses up to 4096 tokens; IS-KPO-weak at
 * Q = 0.01, V = 1, kappa = 3; and the threshold it states (Table 2, §4.3). */
#define PAPER_RESPONSES 256.0
#define PAPER_MAX_TOKENS 4096.0
#define PAPER_Q 0.01
#define PAPER_V 1.0
#define PAPER_KAPPA 3.0
#define PAPER_THRESHOLD 3.06

/* Two figures the paper's Table 2 and its text give that a run file can
 * check: clip fractions below what one clipped token in a step can show,
 * and a threshold that none of the formulas yields. */
static void print_paper_check(const char *path, const diag_run *d)
{
    kpo_error err;
    char *config = NULL;
    if (runfile_read_config(path, &config, &err) != KPO_OK)
        config = NULL;
    printf("paper check:\n");

    /* Clip-fraction resolution: a step's clip fraction is a count over its
     * tokens, so the smallest non-zero one is 1 / tokens of the step. */
    printf("  smallest non-zero clip fraction a step can show: 1 / its tokens (all mini-batches)\n");
    double most = 0;
    int64_t most_step = -1;
    for (int64_t r = 0; r < d->whole.n_rows; r++)
        if (d->whole.stats[r].count > most) {
            most = d->whole.stats[r].count;
            most_step = d->whole.step[r];
        }
    if (most_step >= 0)
        printf("    this run: its largest step, %lld, held %.0f tokens: 1/%.0f = %.2e",
               (long long)most_step, most, most, 1.0 / most);
    else
        printf("    this run: no steps recorded");
    double prompts, group, max_new, responses, max_length;
    if (config_number(config, "rollout", "prompts_per_step", &prompts) &&
        config_number(config, "rollout", "group_size", &group) &&
        config_number(config, "rollout", "max_new_tokens", &max_new))
        printf("; its config allows at most %.0f x %.0f x %.0f = %.0f tokens a step (%.2e)",
               prompts, group, max_new, prompts * group * max_new, 1.0 / (prompts * group * max_new));
    else if (config_number(config, "simulate", "responses", &responses) &&
             config_number(config, "simulate", "max_length", &max_length))
        printf("; its config allows at most %.0f x %.0f = %.0f tokens a step (%.2e)", responses,
               max_length, responses * max_length, 1.0 / (responses * max_length));
    printf("\n");
    const double paper_floor = 1.0 / (PAPER_RESPONSES * PAPER_MAX_TOKENS);
    printf("    the paper's scale: 1/(%.0f x %.0f) = %.2e, so its 1.2e-07 (Table 2) and max "
           "7e-07 (Fig. 2) are less than one clipped token in a step, and a non-zero \"below "
           "1e-6\" needs over 1e6 tokens in the step (responses averaging over %.0f of %.0f)\n",
           PAPER_RESPONSES, PAPER_MAX_TOKENS, paper_floor, 1e6 / PAPER_RESPONSES,
           PAPER_MAX_TOKENS);

    /* The threshold: kappa sigma_t, sigma_t = sqrt(P_pred + V) settling at
     * sqrt(M + V) with M the steady prior variance (src/filter/gain.h). */
    const double paper_sigma = PAPER_KAPPA * sqrt(gain_steady_prior_variance(PAPER_Q, PAPER_V) +
                                                  PAPER_V);
    double q, v, kappa = 3;
    char mode[32] = "none";
    int have_qv = config_number(config, "filter", "q", &q) && config_number(config, "filter", "v", &v);
    int have_kappa = config_number(config, "filter", "kappa", &kappa);
    if (config)
        config_lookup(config, "filter", "mode", mode, sizeof mode);
    if (have_qv) {
        const double m = gain_steady_prior_variance(q, v);
        const double sigma_rule = kappa * sqrt(m + v), sqrtv_rule = kappa * sqrt(v);
        printf("  threshold of this run (mode %s, q=%g, v=%g, kappa=%g%s):\n    ", mode, q, v, kappa,
               have_kappa ? "" : " (not recorded: the default)");
        if (strcmp(mode, "sigma") == 0 || strcmp(mode, "adaptive") == 0)
            printf("kappa sigma_inf = kappa sqrt(M + V) = %.4f (M = %.4g, the steady prior "
                   "variance%s); kappa sqrt(V) = %.4g", sigma_rule, m,
                   strcmp(mode, "adaptive") == 0 ? "; adaptive: its nominal bound" : "",
                   sqrtv_rule);
        else if (strcmp(mode, "sqrtv") == 0 || strcmp(mode, "iterated") == 0)
            printf("kappa sqrt(V) = %.4g (kappa sigma_inf would be %.4f)", sqrtv_rule, sigma_rule);
        else
            printf("none, nothing is clipped (in mode sigma: kappa sigma_inf = %.4f)", sigma_rule);
        double recorded = NAN;
        innov_stats all;
        innov_stats_init(&all);
        for (int64_t r = 0; r < d->whole.n_rows; r++)
            innov_stats_merge(&all, &d->whole.stats[r]);
        recorded = innov_stats_mean_threshold(&all);
        if (!isnan(recorded))
            printf("; recorded mean threshold %.4f", recorded);
        printf("\n");
    } else {
        printf("  threshold of this run: its config (root attribute 'config') gives no "
               "filter q and v\n");
    }
    printf("    the paper's %.2f (\"kappa sqrt(V) ~= 3.06\", sigma_t ~= 1.02) is neither "
           "kappa sqrt(V) = %.4g nor kappa sigma_inf = %.4f at its Q = %g, V = %g, kappa = %g\n",
           PAPER_THRESHOLD, PAPER_KAPPA * sqrt(PAPER_V), paper_sigma, PAPER_Q, PAPER_V,
           PAPER_KAPPA);
    free(config);
}

int cmd_diag(int argc, char **argv)
{
    cli_option options[] = {
        {"steps", "LIST", "only these steps, e.g. 1,5,10,15 (default: all)", NULL},
        {"csv", NULL, "machine-readable CSV, one row per run and step", NULL},
        {"minibatches", NULL, "also each step's mini-batches (step.k; k = 1 on-policy)", NULL},
        {"pool", "all|off-policy", "what a step's row pools: its off-policy mini-batches 2..M "
                                   "(the default when the run recorded them) or all of them, the "
                                   "on-policy first included (the step's accumulator)", NULL},
    };
    cli_command_spec spec = {"diag", "RUN.h5 [RUN2.h5 ...] [--steps LIST] [--pool all|off-policy] "
                                     "[--csv]",
                             "Innovation statistics per step (the paper's Table 2: kurtosis, "
                             "max |delta|, clip fraction, plus mean gain and threshold) over the "
                             "off-policy mini-batches or all, the whole run merged, the runs side "
                             "by side, and a check of the paper's clip fractions and threshold.",
                             CLI_OPTIONS(options)};
    const char *paths[MAX_RUNS];
    size_t n_runs;
    int status = command_start(&spec, argc, argv, paths, MAX_RUNS, &n_runs);
    if (status >= 0)
        return status;
    if (n_runs == 0)
        return command_fail("kpo diag: name at least one run file (kpo diag RUN.h5)");
    kpo_error err;
    pool_kind pool = POOL_DEFAULT;
    const char *pool_text = cli_get(&spec, "pool");
    if (pool_text && strcmp(pool_text, "all") == 0)
        pool = POOL_ALL;
    else if (pool_text && strcmp(pool_text, "off-policy") == 0)
        pool = POOL_OFF_POLICY;
    else if (pool_text)
        return command_fail("kpo diag: --pool takes all or off-policy");
    int64_t *steps = NULL;
    size_t n_steps = 0;
    const char *steps_text = cli_get(&spec, "steps");
    if (steps_text && parse_int64_list(steps_text, "--steps", &steps, &n_steps, &err) != KPO_OK)
        return command_fail(err.message);

    diag_run runs[MAX_RUNS];
    for (size_t k = 0; k < n_runs; k++) {
        if (diag_run_load(paths[k], pool, &runs[k], &err) != KPO_OK) {
            for (size_t j = 0; j <= k; j++)
                diag_run_free(&runs[j]);
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
                diag_run_free(&runs[j]);
            free(steps);
            return command_fail(err.message);
        }
        if (!csv) {
            print_paper_check(paths[k], &runs[k]);
            printf("\n");
        }
    }
    if (!csv && n_runs > 1) {
        char **names = (char **)paths;
        runfile_innovation pooled[MAX_RUNS];
        for (size_t k = 0; k < n_runs; k++)
            pooled[k] = runs[k].pooled; /* shallow: runs[k] still owns the arrays */
        printf("side by side, each run pooled as its header says\n\n");
        print_comparison("kurtosis (Pearson, Gaussian = 3)", names, pooled, (int)n_runs, steps,
                         n_steps, innov_stats_kurtosis, 0);
        print_comparison("max |delta|", names, pooled, (int)n_runs, steps, n_steps, stat_max_abs,
                         0);
        print_comparison("clip fraction", names, pooled, (int)n_runs, steps, n_steps,
                         innov_stats_clip_fraction, 1);
    }
    for (size_t k = 0; k < n_runs; k++)
        diag_run_free(&runs[k]);
    free(steps);
    return 0;
}
