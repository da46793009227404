/* kpo diag: the paper's Table 2 for each run file, and the runs side by side. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/innov_table.h"
#include "core/parse.h"
#include "filter/gain.h"
#include "io/metric_units.h"
#include "io/runfile.h"

enum { MAX_RUNS = 16, LABEL_MAX = 256 };

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

static void print_run(const char *label, const char *path, const diag_run *d,
                      const int64_t *steps, size_t n_steps, int csv)
{
    const runfile_innovation *run = &d->pooled;
    innov_stats whole;
    innov_stats_init(&whole);
    if (!csv) {
        char pool[512];
        describe_pool(d, pool, sizeof pool);
        printf("== %s: %s (%lld steps)\n%s\n", label, path, (long long)run->n_rows, pool);
        innov_table_print_header(stdout);
    }
    for (int64_t r = 0; r < run->n_rows; r++) {
        innov_stats_merge(&whole, &run->stats[r]);
        if (!step_selected(run->step[r], steps, n_steps))
            continue;
        char step_text[32];
        snprintf(step_text, sizeof step_text, "%lld", (long long)run->step[r]);
        innov_table_print_row(stdout, label, step_text, &run->stats[r], csv);
    }
    innov_table_print_row(stdout, label, "all", &whole, csv);
    if (!csv)
        printf("\n");
}

/* One line per step present in any run: a statistic of each run side by side. */
static void print_comparison(const char *title, char (*labels)[LABEL_MAX],
                             const runfile_innovation *runs, int n_runs, const int64_t *steps,
                             size_t n_steps, double (*value)(const innov_stats *),
                             int as_fraction)
{
    /* Columns as wide as the longest label (up to 40; a longer one shows
     * its tail), at least 14. */
    int width = 14;
    for (int k = 0; k < n_runs; k++) {
        int len = (int)strlen(labels[k]);
        if (len > width)
            width = len < 40 ? len : 40;
    }
    printf("%s\n%6s", title, "step");
    for (int k = 0; k < n_runs; k++) {
        size_t len = strlen(labels[k]);
        printf(" %*s", width, len > (size_t)width ? labels[k] + len - width : labels[k]);
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
                used += snprintf(line + used, sizeof line - (size_t)used, " %*s", width, cell);
        }
        if (present)
            printf("%s\n", line);
    }
    printf("\n");
}

/* Per mini-batch rows, "step.k" with k = 1 the on-policy mini-batch. */
static int print_minibatches(const char *label, const char *path, const int64_t *steps,
                             size_t n_steps, int csv, kpo_error *err)
{
    runfile_minibatches table;
    if (runfile_read_minibatches(path, &table, err) != KPO_OK)
        return KPO_ERR;
    if (!csv) {
        printf("== %s per mini-batch (step.k; k = 1 is on-policy, later ones are k-1 updates "
               "stale)\n", label);
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
            innov_table_print_row(stdout, label, step_text,
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

/* --- Labels: each run's name in headers, columns and the CSV `run` field - */

/* One run to read: its file and label. */
typedef struct diag_input {
    const char *path;
    char label[LABEL_MAX];
    int given;  /* the label came from --label */
    int depth;  /* a default label's detail: 0 the directory, 1 dir/stem, 2+ more dirs */
    size_t arg; /* where it appeared on the command line, for the order of runs */
} diag_input;

/* The components of path made absolute ("." dropped, ".." applied): dirs
 * in order, then the file; returns how many, at most max. */
static size_t path_components(const char *path, char *buffer, size_t size, const char **parts,
                              size_t max)
{
    buffer[0] = '\0';
    if (path[0] != '/' && !getcwd(buffer, size))
        buffer[0] = '\0';
    size_t used = strlen(buffer);
    snprintf(buffer + used, size - used, "/%s", path);
    size_t n = 0;
    for (char *tok = strtok(buffer, "/"); tok; tok = strtok(NULL, "/")) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0) {
            n -= n > 0;
            continue;
        }
        if (n < max)
            parts[n++] = tok;
    }
    return n;
}

/* The default label at a depth: the directory holding the file (depth 0),
 * dir/stem (1), then more directories in front (2, 3, ...). 0 when depth
 * adds nothing over depth - 1. */
static int default_label(const char *path, int depth, char *out, size_t size)
{
    char buffer[8192];
    const char *parts[256];
    size_t n = path_components(path, buffer, sizeof buffer, parts, 256);
    if (n == 0) {
        snprintf(out, size, "%s", path);
        return depth == 0;
    }
    char stem[LABEL_MAX];
    snprintf(stem, sizeof stem, "%s", parts[n - 1]);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem)
        *dot = '\0';
    size_t dirs = n - 1;
    if (dirs == 0) { /* a file at the root: its stem */
        snprintf(out, size, "%s", stem);
        return depth == 0;
    }
    if (depth == 0) {
        snprintf(out, size, "%s", parts[dirs - 1]);
        return 1;
    }
    size_t take = (size_t)depth; /* directories in front of the stem */
    if (take > dirs)
        return 0;
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = dirs - take; k < dirs && used < size; k++)
        used += (size_t)snprintf(out + used, size - used, "%s/", parts[k]);
    if (used < size)
        snprintf(out + used, size - used, "%s", stem);
    return 1;
}

static int label_taken(const diag_input *in, size_t n, size_t self)
{
    for (size_t j = 0; j < n; j++)
        if (j != self && strcmp(in[j].label, in[self].label) == 0)
            return 1;
    return 0;
}

/* path made absolute and normalised ("A/../B/run.h5" -> "/cwd/B/run.h5"). */
static void normalised_path(const char *path, char *out, size_t size)
{
    char buffer[8192];
    const char *parts[256];
    size_t n = path_components(path, buffer, sizeof buffer, parts, 256), used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n && used < size; k++)
        used += (size_t)snprintf(out + used, size - used, "/%s", parts[k]);
}

/* Whether run self's label is shared with a run of another file. */
static int label_shared_with_other_file(const diag_input *in, size_t n, size_t self)
{
    char mine[8192], theirs[8192];
    normalised_path(in[self].path, mine, sizeof mine);
    for (size_t j = 0; j < n; j++) {
        if (j == self || strcmp(in[j].label, in[self].label) != 0)
            continue;
        normalised_path(in[j].path, theirs, sizeof theirs);
        if (in[j].given || strcmp(mine, theirs) != 0)
            return 1;
    }
    return 0;
}

/* Default labels for the runs without one: the directory's name, made
 * longer (dir/stem, then more directories) while two runs share it, and
 * "#k" after the k-th of files named twice. */
static void assign_default_labels(diag_input *in, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!in[k].given)
            default_label(in[k].path, 0, in[k].label, sizeof in[k].label);
    for (int round = 0; round < 64; round++) {
        int changed = 0;
        int grow[MAX_RUNS] = {0};
        for (size_t k = 0; k < n; k++)
            grow[k] = !in[k].given && label_shared_with_other_file(in, n, k);
        for (size_t k = 0; k < n; k++) {
            char longer[LABEL_MAX];
            if (grow[k] && default_label(in[k].path, in[k].depth + 1, longer, sizeof longer)) {
                in[k].depth++;
                snprintf(in[k].label, sizeof in[k].label, "%s", longer);
                changed = 1;
            }
        }
        if (!changed)
            break;
    }
    /* The same file named again (or labels no directory tells apart):
     * the second is LABEL#2, the third LABEL#3. */
    for (size_t k = 0; k < n; k++) {
        if (in[k].given || !label_taken(in, n, k))
            continue;
        int seen = 1;
        for (size_t j = 0; j < k; j++)
            seen += !in[j].given && strcmp(in[j].label, in[k].label) == 0;
        size_t len = strlen(in[k].label);
        for (int suffix = seen; seen > 1 && len + 12 < sizeof in[k].label; suffix++) {
            snprintf(in[k].label + len, sizeof in[k].label - len, "#%d", suffix);
            if (!label_taken(in, n, k))
                break;
        }
    }
}

/* Which argv entry holds p (a positional or an option's value). */
static size_t argv_index(int argc, char **argv, const char *p)
{
    for (int i = 0; i < argc; i++)
        if (p >= argv[i] && p <= argv[i] + strlen(argv[i]))
            return (size_t)i;
    return (size_t)argc;
}

static int compare_inputs(const void *a, const void *b)
{
    const diag_input *x = a, *y = b;
    return x->arg < y->arg ? -1 : x->arg > y->arg;
}

/* The runs of the command line: the positional files and each --label
 * NAME=FILE (a FILE also named among the runs is that run, labelled), in
 * command-line order, every one with a unique label. */
static int collect_inputs(const cli_command_spec *spec, int argc, char **argv,
                          const char **paths, size_t n_paths, diag_input *in, size_t *n_in,
                          kpo_error *err)
{
    memset(in, 0, MAX_RUNS * sizeof *in);
    for (size_t k = 0; k < n_paths; k++)
        in[k] = (diag_input){.path = paths[k], .arg = argv_index(argc, argv, paths[k])};
    size_t n = n_paths;
    const char *specs[MAX_RUNS + 1];
    size_t n_specs = cli_get_all(spec, argc, argv, "label", specs, MAX_RUNS + 1);
    if (n_specs > MAX_RUNS)
        return error_set(err, "kpo diag: at most %d --label", MAX_RUNS);
    for (size_t s = 0; s < n_specs; s++) {
        const char *eq = strchr(specs[s], '=');
        size_t name_len = eq ? (size_t)(eq - specs[s]) : 0;
        if (!eq || name_len == 0 || eq[1] == '\0')
            return error_set(err, "kpo diag: --label %s: expected NAME=FILE", specs[s]);
        if (name_len >= LABEL_MAX)
            return error_set(err, "kpo diag: --label %s: NAME is longer than %d bytes", specs[s],
                             LABEL_MAX - 1);
        for (size_t c = 0; c < name_len; c++)
            if ((unsigned char)specs[s][c] < 0x20 || specs[s][c] == ',' || specs[s][c] == '"')
                return error_set(err, "kpo diag: --label %s: NAME may not hold commas, quotes "
                                      "or control characters", specs[s]);
        const char *file = eq + 1;
        size_t target = n;
        for (size_t k = 0; k < n_paths; k++)
            if (!in[k].given && strcmp(in[k].path, file) == 0) {
                target = k;
                break;
            }
        if (target == n) {
            if (n == MAX_RUNS)
                return error_set(err, "kpo diag: --label %s: at most %d runs", specs[s],
                                 MAX_RUNS);
            in[n++] = (diag_input){.path = file, .arg = argv_index(argc, argv, specs[s])};
        }
        in[target].given = 1;
        memcpy(in[target].label, specs[s], name_len);
        in[target].label[name_len] = '\0';
        for (size_t k = 0; k < n; k++)
            if (k != target && in[k].given && strcmp(in[k].label, in[target].label) == 0)
                return error_set(err, "kpo diag: --label %s: the label '%s' is already given to "
                                      "%s; labels must be unique", specs[s], in[target].label,
                                 in[k].path);
    }
    qsort(in, n, sizeof *in, compare_inputs);
    assign_default_labels(in, n);
    *n_in = n;
    return KPO_OK;
}

/* --- --metrics: every /metrics series per step, with its unit ----------- */

typedef enum metrics_format { METRICS_TEXT, METRICS_CSV, METRICS_JSONL } metrics_format;

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* A CSV field, quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

/* One line per (step, metric): the long format, so runs with different
 * metrics (kpo train, kpo simulate) share one table. */
static void print_metric_rows(const diag_input *in, const metric_series *ms,
                              const int64_t *steps, size_t n_steps, metrics_format format)
{
    if (format == METRICS_TEXT)
        printf("== %s: %s (%lld steps, %zu metrics)\n%6s %-26s %24s  %s\n", in->label, in->path,
               (long long)ms->n_rows, ms->n_metrics, "step", "metric", "value", "unit");
    for (int64_t r = 0; r < ms->n_rows; r++) {
        if (!step_selected(ms->step[r], steps, n_steps))
            continue;
        for (size_t m = 0; m < ms->n_metrics; m++) {
            const metric_unit *u = metric_unit_find(ms->names[m]);
            const char *unit = u ? u->unit : "";
            double x = ms->values[m * (size_t)ms->n_rows + (size_t)r];
            char value[40];
            if (isnan(x))
                snprintf(value, sizeof value, format == METRICS_JSONL ? "null" : "nan");
            else if (isinf(x) && format == METRICS_JSONL)
                snprintf(value, sizeof value, "null");
            else
                snprintf(value, sizeof value, "%.17g", x);
            if (format == METRICS_CSV) {
                csv_field(stdout, in->label);
                printf(",%lld,%s,%s,", (long long)ms->step[r], ms->names[m], value);
                csv_field(stdout, unit);
                printf("\n");
            } else if (format == METRICS_JSONL) {
                printf("{\"run\": ");
                json_string(stdout, in->label);
                printf(", \"step\": %lld, \"metric\": ", (long long)ms->step[r]);
                json_string(stdout, ms->names[m]);
                printf(", \"value\": %s, \"unit\": ", value);
                json_string(stdout, unit);
                printf("}\n");
            } else {
                printf("%6lld %-26s %24s  %s\n", (long long)ms->step[r], ms->names[m], value,
                       u ? unit : "(not in kpo's table)");
            }
        }
    }
    if (format == METRICS_TEXT)
        printf("\n");
}

static int print_metrics(const diag_input *in, size_t n, const int64_t *steps, size_t n_steps,
                         metrics_format format, kpo_error *err)
{
    if (format == METRICS_CSV)
        printf("run,step,metric,value,unit\n");
    for (size_t k = 0; k < n; k++) {
        metric_series ms;
        if (metric_series_read(in[k].path, &ms, err) != KPO_OK)
            return KPO_ERR;
        print_metric_rows(&in[k], &ms, steps, n_steps, format);
        metric_series_free(&ms);
    }
    return KPO_OK;
}

/* --list-metrics: the table itself. */
static void print_metric_table(int csv)
{
    if (csv)
        printf("metric,unit,writers,meaning\n");
    for (size_t k = 0; k < METRIC_UNITS_LEN; k++) {
        const metric_unit *u = &METRIC_UNITS[k];
        const char *writers = u->writers == (METRIC_WRITER_TRAIN | METRIC_WRITER_SIMULATE)
                                  ? "train simulate"
                                  : u->writers == METRIC_WRITER_TRAIN ? "train" : "simulate";
        if (csv) {
            printf("%s,", u->name);
            csv_field(stdout, u->unit);
            printf(",%s,", writers);
            csv_field(stdout, u->meaning);
            printf("\n");
        } else {
            printf("%-24s %-18s %-15s %s\n", u->name, u->unit, writers, u->meaning);
        }
    }
}

/* Table 2 for each run (its rows pooled as pool says), its mini-batches on
 * request, the paper check, then the runs side by side. */
static int print_table2(const diag_input *inputs, size_t n_runs, pool_kind pool,
                        const int64_t *steps, size_t n_steps, int csv, int minibatches,
                        kpo_error *err)
{
    diag_run runs[MAX_RUNS];
    size_t loaded = 0;
    int status = KPO_OK;
    for (; loaded < n_runs && status == KPO_OK; loaded++)
        status = diag_run_load(inputs[loaded].path, pool, &runs[loaded], err);
    if (status == KPO_OK && csv)
        innov_table_print_csv_header(stdout);
    for (size_t k = 0; k < n_runs && status == KPO_OK; k++) {
        print_run(inputs[k].label, inputs[k].path, &runs[k], steps, n_steps, csv);
        if (minibatches)
            status = print_minibatches(inputs[k].label, inputs[k].path, steps, n_steps, csv, err);
        if (status == KPO_OK && !csv) {
            print_paper_check(inputs[k].path, &runs[k]);
            printf("\n");
        }
    }
    if (status == KPO_OK && !csv && n_runs > 1) {
        char labels[MAX_RUNS][LABEL_MAX];
        runfile_innovation pooled[MAX_RUNS];
        for (size_t k = 0; k < n_runs; k++) {
            memcpy(labels[k], inputs[k].label, LABEL_MAX);
            pooled[k] = runs[k].pooled; /* shallow: runs[k] still owns the arrays */
        }
        printf("side by side, each run pooled as its header says\n\n");
        print_comparison("kurtosis (Pearson, Gaussian = 3)", labels, pooled, (int)n_runs, steps,
                         n_steps, innov_stats_kurtosis, 0);
        print_comparison("max |delta|", labels, pooled, (int)n_runs, steps, n_steps,
                         stat_max_abs, 0);
        print_comparison("clip fraction", labels, pooled, (int)n_runs, steps, n_steps,
                         innov_stats_clip_fraction, 1);
    }
    for (size_t k = 0; k < loaded; k++)
        diag_run_free(&runs[k]);
    return status;
}

int cmd_diag(int argc, char **argv)
{
    cli_option options[] = {
        {"steps", "LIST", "only these steps, e.g. 1,5,10,15 (default: all)", NULL},
        {"csv", NULL, "machine-readable CSV, one row per run and step (--metrics: per run, step "
                      "and metric)", NULL},
        {"minibatches", NULL, "also each step's mini-batches (step.k; k = 1 on-policy)", NULL},
        {"pool", "all|off-policy", "what a step's row pools: its off-policy mini-batches 2..M "
                                   "(the default when the run recorded them) or all of them, the "
                                   "on-policy first included (the step's accumulator)", NULL},
        {"label", "NAME=FILE", "the run FILE, labelled NAME (repeatable; labels are unique; a "
                               "FILE also named among the runs is that run). Default: the name "
                               "of the directory holding the file, longer where two share it",
         NULL},
        {"metrics", NULL, "instead of Table 2, every /metrics series per step with its unit: "
                          "one row per run, step and metric (run, step, metric, value, unit)",
         NULL},
        {"jsonl", NULL, "--metrics as JSON lines ({\"run\", \"step\", \"metric\", \"value\" "
                        "(null for NaN), \"unit\"})", NULL},
        {"list-metrics", NULL, "print the metrics kpo knows (name, unit, which command writes "
                               "it, meaning) and stop; no run needed", NULL},
    };
    cli_command_spec spec = {"diag", "RUN.h5 [RUN2.h5 ...] [--label NAME=RUN.h5 ...] "
                                     "[--steps LIST] [--pool all|off-policy] [--csv] "
                                     "[--metrics [--csv|--jsonl]]",
                             "Innovation statistics per step (the paper's Table 2: kurtosis, "
                             "max |delta|, clip fraction, plus mean gain and threshold) over the "
                             "off-policy mini-batches or all, the whole run merged, the runs side "
                             "by side, and a check of the paper's clip fractions and threshold. "
                             "--metrics exports every per-step metric with its unit instead.",
                             CLI_OPTIONS(options)};
    const char *paths[MAX_RUNS];
    size_t n_paths;
    int status = command_start(&spec, argc, argv, paths, MAX_RUNS, &n_paths);
    if (status >= 0)
        return status;
    int csv = cli_get(&spec, "csv") != NULL, jsonl = cli_get(&spec, "jsonl") != NULL;
    int metrics = cli_get(&spec, "metrics") != NULL;
    if (cli_get(&spec, "list-metrics")) {
        print_metric_table(csv);
        return 0;
    }
    if (jsonl && !metrics)
        return command_fail("kpo diag: --jsonl goes with --metrics (Table 2 has --csv)");
    if (jsonl && csv)
        return command_fail("kpo diag: --csv and --jsonl: choose one");
    if (metrics && (cli_get(&spec, "minibatches") || cli_get(&spec, "pool")))
        return command_fail("kpo diag: --metrics prints the /metrics series only: --minibatches "
                            "and --pool go with Table 2");
    kpo_error err;
    diag_input inputs[MAX_RUNS];
    size_t n_runs = 0;
    if (collect_inputs(&spec, argc, argv, paths, n_paths, inputs, &n_runs, &err) != KPO_OK)
        return command_fail(err.message);
    if (n_runs == 0)
        return command_fail("kpo diag: name at least one run file (kpo diag RUN.h5)");
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
    if (metrics) {
        status = print_metrics(inputs, n_runs, steps, n_steps,
                               csv ? METRICS_CSV : jsonl ? METRICS_JSONL : METRICS_TEXT, &err);
        free(steps);
        return status == KPO_OK ? 0 : command_fail(err.message);
    }

    status = print_table2(inputs, n_runs, pool, steps, n_steps, csv,
                          cli_get(&spec, "minibatches") != NULL, &err);
    free(steps);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
