/* kpo filter: replays the filter on recorded raw log-ratios with other
 * parameters, so "would saturation activate at V = 0.1?" needs no GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/filter_official_replay.h"
#include "cli/filter_options.h"
#include "cli/innov_table.h"
#include "io/logratio_text.h"
#include "io/runfile.h"

/* Which recorded mini-batches a replay takes (--minibatches). Mini-batch 1
 * is on-policy, its z 0 up to rounding: a replay of it says nothing about
 * saturation, and pooled with the stale ones it dilutes their tails. */
typedef struct minibatch_selection {
    enum { SELECT_ALL, SELECT_OFF_POLICY, SELECT_ONE } kind;
    long long which; /* SELECT_ONE: the 1-based mini-batch */
} minibatch_selection;

static int selection_parse(const char *text, minibatch_selection *sel, kpo_error *err)
{
    sel->kind = SELECT_ALL;
    sel->which = 0;
    if (!text || strcmp(text, "all") == 0)
        return KPO_OK;
    if (strcmp(text, "off-policy") == 0) {
        sel->kind = SELECT_OFF_POLICY;
        return KPO_OK;
    }
    char *end = NULL;
    long long k = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || k < 1)
        return error_set(err, "--minibatches '%s': expected all, off-policy or a mini-batch "
                              "number >= 1 (1 is the on-policy one)", text);
    sel->kind = SELECT_ONE;
    sel->which = k;
    return KPO_OK;
}

static int selection_takes(const minibatch_selection *sel, int64_t minibatch)
{
    return sel->kind == SELECT_ALL || (sel->kind == SELECT_OFF_POLICY && minibatch >= 2) ||
           (sel->kind == SELECT_ONE && minibatch == sel->which);
}

/* "all (1..4)", "off-policy (2..4)", "3": for the header, over the
 * mini-batches the file recorded (lowest..highest). */
static void selection_describe(const minibatch_selection *sel, const runfile_samples *s,
                               char *out, size_t size)
{
    int64_t low = 0, high = 0;
    for (int64_t r = 0; s->minibatch && r < s->n_responses; r++)
        if (s->minibatch[r] >= 1 && selection_takes(sel, s->minibatch[r])) {
            low = low == 0 || s->minibatch[r] < low ? s->minibatch[r] : low;
            high = s->minibatch[r] > high ? s->minibatch[r] : high;
        }
    const char *name = sel->kind == SELECT_ALL ? "all" : sel->kind == SELECT_OFF_POLICY
                                                             ? "off-policy" : NULL;
    if (!name)
        snprintf(out, size, "%lld%s", sel->which, sel->which == 1 ? " (on-policy)" : "");
    else if (high == 0)
        snprintf(out, size, "%s (not recorded in this file)", name);
    else
        snprintf(out, size, "%s (%lld..%lld)", name, (long long)low, (long long)high);
}

/* Keeps only the selected responses of s (in order). Errors name the file:
 * a file without mini-batch tags can only be replayed whole. */
static int selection_apply(const minibatch_selection *sel, const char *source,
                           runfile_samples *s, kpo_error *err)
{
    if (sel->kind == SELECT_ALL)
        return KPO_OK;
    if (!s->minibatch)
        return error_set(err, "%s: plain-text log-ratios have no mini-batches: --minibatches "
                              "needs a run file", source);
    for (int64_t r = 0; r < s->n_responses; r++)
        if (s->minibatch[r] < 1)
            return error_set(err, "%s: /samples/minibatch does not say which mini-batch "
                                  "response %lld (step %lld) came from (a file written before "
                                  "kpo recorded it, or by kpo simulate): only --minibatches all "
                                  "replays it", source, (long long)r, (long long)s->step[r]);
    int64_t kept = 0, kept_values = 0;
    for (int64_t r = 0; r < s->n_responses; r++) {
        if (!selection_takes(sel, s->minibatch[r]))
            continue;
        int64_t length = s->offsets[r + 1] - s->offsets[r];
        /* Moving down only: kept_values <= offsets[r], so nothing is overwritten unread. */
        memmove(s->values + kept_values, s->values + s->offsets[r], (size_t)length * sizeof *s->values);
        s->step[kept] = s->step[r];
        s->minibatch[kept] = s->minibatch[r];
        s->offsets[kept] = kept_values;
        kept_values += length;
        kept++;
    }
    if (kept == 0 && sel->kind == SELECT_OFF_POLICY)
        return error_set(err, "%s: /samples/minibatch: no recorded samples from an off-policy "
                              "mini-batch (2 and later)", source);
    if (kept == 0)
        return error_set(err, "%s: /samples/minibatch: no recorded samples from mini-batch %lld",
                         source, sel->which);
    s->offsets[kept] = kept_values;
    s->n_responses = kept;
    return KPO_OK;
}

static int print_per_token(const filter_config *cfg, const runfile_samples *samples,
                           kpo_error *err)
{
    int64_t n = samples->offsets[samples->n_responses];
    size_t count = (size_t)(n ? n : 1);
    filter_outputs out = {
        .rho = malloc(count * sizeof(double)),
        .gain = malloc(count * sizeof(double)),
        .innovation = malloc(count * sizeof(double)),
        .threshold = malloc(count * sizeof(double)),
        .clipped = malloc(count),
    };
    int status = KPO_ERR;
    if (!out.rho || !out.gain || !out.innovation || !out.threshold || !out.clipped)
        error_set(err, "out of memory for %lld tokens", (long long)n);
    else
        status = filter_apply(cfg, samples->values, samples->offsets, samples->n_responses, &out,
                              NULL, err);
    if (status == KPO_OK) {
        printf("response,token,z,rho,gain,delta,threshold,clipped\n");
        for (int64_t r = 0; r < samples->n_responses; r++)
            for (int64_t i = samples->offsets[r]; i < samples->offsets[r + 1]; i++)
                printf("%lld,%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%d\n", (long long)r,
                       (long long)(i - samples->offsets[r]), samples->values[i], out.rho[i],
                       out.gain[i], out.innovation[i], out.threshold[i], out.clipped[i]);
    }
    free(out.rho);
    free(out.gain);
    free(out.innovation);
    free(out.threshold);
    free(out.clipped);
    return status;
}

/* Statistics per recorded step (responses of one step are contiguous) and
 * for everything together. */
static int print_replay(const filter_config *cfg, const runfile_samples *samples, int by_step,
                        int csv, const char *label, kpo_error *err)
{
    innov_stats whole;
    innov_stats_init(&whole);
    if (csv)
        innov_table_print_csv_header(stdout);
    else
        innov_table_print_header(stdout);
    int64_t r = 0;
    while (r < samples->n_responses) {
        int64_t end = r + 1;
        while (end < samples->n_responses && samples->step[end] == samples->step[r])
            end++;
        /* Rebase this group's offsets to start at 0. */
        int64_t n_group = end - r;
        int64_t *offsets = malloc((size_t)(n_group + 1) * sizeof *offsets);
        if (!offsets)
            return error_set(err, "out of memory");
        for (int64_t k = 0; k <= n_group; k++)
            offsets[k] = samples->offsets[r + k] - samples->offsets[r];
        innov_stats group;
        innov_stats_init(&group);
        int status = filter_apply(cfg, samples->values + samples->offsets[r], offsets, n_group,
                                  NULL, &group, err);
        free(offsets);
        if (status != KPO_OK)
            return KPO_ERR;
        if (by_step) {
            char step_text[32];
            snprintf(step_text, sizeof step_text, "%lld", (long long)samples->step[r]);
            innov_table_print_row(stdout, label, step_text, &group, csv);
        }
        innov_stats_merge(&whole, &group);
        r = end;
    }
    innov_table_print_row(stdout, label, "all", &whole, csv);
    return KPO_OK;
}

/* The first non-finite recorded log-ratio, named by response, step and token. */
static int samples_check_finite(const runfile_samples *samples, const char *source,
                                kpo_error *err)
{
    for (int64_t r = 0; r < samples->n_responses; r++)
        for (int64_t i = samples->offsets[r]; i < samples->offsets[r + 1]; i++)
            if (!isfinite(samples->values[i]))
                return error_set(err, "%s: log-ratio of response %lld (step %lld), token %lld "
                                      "is %g",
                                 source, (long long)r, (long long)samples->step[r],
                                 (long long)(i - samples->offsets[r]), samples->values[i]);
    return KPO_OK;
}

int cmd_filter(int argc, char **argv)
{
    const cli_option own_options[] = {
        {"input", "FILE", "plain text instead of a run file: one response per line ('-': stdin)",
         NULL},
        {"per-token", NULL, "print rho, K, delta, threshold, clipped for every token (CSV)", NULL},
        {"csv", NULL, "statistics as CSV", NULL},
        {"width", "N", "--mode official: padded response length (default 4096, verl's "
                       "response_length)", NULL},
        {"tolerance", "T", "--mode official: |official - exact| counted as diverged "
                           "(default 1e-3)", NULL},
        {"minibatches", "all|off-policy|K", "run file: replay the samples of these mini-batches: "
                                            "all (default), off-policy (2 and later, stale), or "
                                            "K (1-based; 1 is on-policy, its z are 0)", NULL},
    };
    cli_option options[FILTER_CLI_OPTIONS_MAX + sizeof own_options / sizeof own_options[0]];
    const size_t n_options = filter_cli_options(options, sizeof options / sizeof options[0],
                                                own_options,
                                                sizeof own_options / sizeof own_options[0]);
    cli_command_spec spec = {"filter", "RUN.h5 [--minibatches all|off-policy|K] | --input FILE  "
                                       "[--q Q --v V --mode M|official --kappa K ...]",
                             "Replay the Kalman filter on recorded raw log-ratios with the given "
                             "parameters and print the innovation statistics it would have "
                             "produced (per recorded step and overall). --mode official runs the "
                             "official KPO code's float32 parallel filter beside the exact one "
                             "and reports where they part and where it stops being finite.",
                             options, n_options};
    const char *positional[1];
    size_t n_positional;
    int status = command_start(&spec, argc, argv, positional, 1, &n_positional);
    if (status >= 0)
        return status;
    kpo_error err;
    filter_config cfg;
    int official;
    official_replay_options replay = {.width = 4096, .tolerance = 1e-3};
    long long width = replay.width;
    if (filter_options_read(&spec, &cfg, &official, &err) != KPO_OK ||
        cli_get_int64(&spec, "width", width, &width, &err) != KPO_OK ||
        cli_get_double(&spec, "tolerance", replay.tolerance, &replay.tolerance, &err) != KPO_OK)
        return command_fail(err.message);
    if (width < 1 || width > 1 << 20 || !(replay.tolerance > 0))
        return command_fail("--width must be in [1, 2^20] and --tolerance > 0");
    replay.width = width;
    const char *input = cli_get(&spec, "input");
    if ((input != NULL) == (n_positional == 1))
        return command_fail("kpo filter: give either a run file or --input FILE");
    minibatch_selection selection;
    if (selection_parse(cli_get(&spec, "minibatches"), &selection, &err) != KPO_OK)
        return command_fail(err.message);

    runfile_samples samples;
    const char *source = input ? input : positional[0];
    status = input ? logratio_text_read(input, &samples, &err)
                   : runfile_read_samples(source, &samples, &err);
    if (status != KPO_OK)
        return command_fail(err.message);
    if (samples.n_responses == 0) {
        runfile_samples_free(&samples);
        char message[512];
        snprintf(message, sizeof message, "%s: holds no recorded log-ratio samples", source);
        return command_fail(message);
    }
    char selected[96];
    selection_describe(&selection, &samples, selected, sizeof selected);
    if (selection_apply(&selection, source, &samples, &err) != KPO_OK) {
        runfile_samples_free(&samples);
        return command_fail(err.message);
    }
    /* Headers say which mini-batches were replayed; CSV rows keep the bare name. */
    char titled[4096 + 128];
    snprintf(titled, sizeof titled, "%s [mini-batches %s]", source, selected);
    const char *header_source = input ? source : titled;
    /* Check every value before printing anything: no half-written output. */
    if (samples_check_finite(&samples, source, &err) != KPO_OK) {
        runfile_samples_free(&samples);
        return command_fail(err.message);
    }
    int csv = cli_get(&spec, "csv") != NULL;
    if (official) {
        replay.per_token = cli_get(&spec, "per-token") != NULL;
        replay.one_batch = input != NULL;
        status = filter_official_replay(&cfg, &samples, &replay, header_source, &err);
    } else if (cli_get(&spec, "per-token")) {
        status = print_per_token(&cfg, &samples, &err);
    } else {
        char description[256];
        filter_options_describe(&cfg, description, sizeof description);
        if (!csv)
            printf("replay of %s: %lld responses, %lld tokens; %s\n", header_source,
                   (long long)samples.n_responses, (long long)samples.offsets[samples.n_responses],
                   description);
        status = print_replay(&cfg, &samples, input == NULL, csv, source, &err);
    }
    runfile_samples_free(&samples);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
