/* kpo simulate: a run file from synthetic heavy-tailed log-ratio streams,
 * filtered exactly as training would, so the offline tools can be shown and
 * tested before (and without) a model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/filter_options.h"
#include "io/runfile.h"
#include "sim/logratio_synth.h"

typedef struct ratio_summary {
    double mean, min, max;
} ratio_summary;

static ratio_summary summarise_exp(const double *x, int64_t n)
{
    ratio_summary s = {0.0, INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++) {
        double r = exp(x[i]);
        s.mean += r;
        s.min = fmin(s.min, r);
        s.max = fmax(s.max, r);
    }
    s.mean /= (double)(n ? n : 1);
    return s;
}

static int read_synth_options(const cli_command_spec *spec, synth_config *sc, long long *steps,
                              long long *samples, kpo_error *err)
{
    synth_config_default(sc);
    long long seed = (long long)sc->seed, responses = sc->responses, minibatches = sc->minibatches;
    long long min_length = sc->min_length, max_length = sc->max_length, nu = sc->nu;
    if (cli_get_int64(spec, "steps", 16, steps, err) != KPO_OK ||
        cli_get_int64(spec, "samples", 8, samples, err) != KPO_OK ||
        cli_get_int64(spec, "seed", seed, &seed, err) != KPO_OK ||
        cli_get_int64(spec, "responses", responses, &responses, err) != KPO_OK ||
        cli_get_int64(spec, "minibatches", minibatches, &minibatches, err) != KPO_OK ||
        cli_get_int64(spec, "min-length", min_length, &min_length, err) != KPO_OK ||
        cli_get_int64(spec, "max-length", max_length, &max_length, err) != KPO_OK ||
        cli_get_int64(spec, "nu", nu, &nu, err) != KPO_OK ||
        cli_get_double(spec, "noise-scale", sc->noise_scale, &sc->noise_scale, err) != KPO_OK ||
        cli_get_double(spec, "drift-q", sc->drift_q, &sc->drift_q, err) != KPO_OK)
        return KPO_ERR;
    if (*steps < 1 || *steps > 1000000)
        return error_set(err, "--steps: must be in [1, 1e6], got %lld", *steps);
    if (*samples < 0)
        return error_set(err, "--samples: must be >= 0, got %lld", *samples);
    if (nu > 1000)
        return error_set(err, "--nu: must be <= 1000, got %lld", nu);
    sc->seed = (uint64_t)seed;
    sc->responses = responses;
    sc->minibatches = minibatches;
    sc->min_length = min_length;
    sc->max_length = max_length;
    sc->nu = (int)nu;
    if (synth_config_validate(sc, err) != KPO_OK)
        return error_prefix(err, "--");
    return KPO_OK;
}

/* Records `samples` responses spread evenly over the batch, so every
 * mini-batch's staleness is represented in what `kpo filter` replays. */
static int record_samples(runfile *rf, const synth_config *sc, long long step, long long samples,
                          const double *values, const int64_t *offsets, kpo_error *err)
{
    int64_t n = samples < sc->responses ? samples : sc->responses;
    int64_t *picked_offsets = malloc((size_t)(n + 1) * sizeof *picked_offsets);
    double *picked = malloc((size_t)offsets[sc->responses] * sizeof *picked);
    if (!picked_offsets || !picked) {
        free(picked_offsets);
        free(picked);
        return error_set(err, "out of memory");
    }
    picked_offsets[0] = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t r = k * sc->responses / n, length = offsets[r + 1] - offsets[r];
        for (int64_t i = 0; i < length; i++)
            picked[picked_offsets[k] + i] = values[offsets[r] + i];
        picked_offsets[k + 1] = picked_offsets[k] + length;
    }
    int status = runfile_append_samples(rf, step, picked, picked_offsets, n, err);
    free(picked_offsets);
    free(picked);
    return status;
}

/* One simulated step: generate, filter, record. */
static int simulate_step(runfile *rf, const synth_config *sc, const filter_config *fc,
                         long long step, long long samples, kpo_error *err)
{
    int64_t *offsets = malloc((size_t)(sc->responses + 1) * sizeof *offsets);
    double *values = NULL, *rho = NULL;
    int status = offsets ? synth_generate_step(sc, step, &values, offsets, err)
                         : error_set(err, "out of memory");
    int64_t n_tokens = status == KPO_OK ? offsets[sc->responses] : 0;
    if (status == KPO_OK && !(rho = malloc((size_t)n_tokens * sizeof *rho)))
        status = error_set(err, "out of memory");
    innov_stats stats;
    innov_stats_init(&stats);
    filter_outputs out = {.rho = rho};
    if (status == KPO_OK)
        status = filter_apply(fc, values, offsets, sc->responses, &out, &stats, err);
    if (status == KPO_OK && samples > 0)
        status = record_samples(rf, sc, step, samples, values, offsets, err);
    if (status == KPO_OK) {
        ratio_summary raw = summarise_exp(values, n_tokens), filtered = summarise_exp(rho, n_tokens);
        runfile_metric metrics[] = {
            {"tokens", (double)n_tokens},
            {"responses", (double)sc->responses},
            {"response_length_mean", (double)n_tokens / (double)sc->responses},
            {"ratio_raw_mean", raw.mean},
            {"ratio_raw_min", raw.min},
            {"ratio_raw_max", raw.max},
            {"ratio_filtered_mean", filtered.mean},
            {"ratio_filtered_min", filtered.min},
            {"ratio_filtered_max", filtered.max},
        };
        status = runfile_append_step(rf, step, &stats, metrics, sizeof metrics / sizeof metrics[0],
                                     err);
        if (status == KPO_OK)
            printf("step %3lld  tokens %7lld  kurtosis %7.2f  max|delta| %.4f  clip %.2e  "
                   "mean K %.5f\n",
                   step, (long long)n_tokens, innov_stats_kurtosis(&stats), stats.max_abs,
                   innov_stats_clip_fraction(&stats), innov_stats_mean_gain(&stats));
    }
    free(offsets);
    free(values);
    free(rho);
    return status;
}

int cmd_simulate(int argc, char **argv)
{
    const cli_option own_options[] = {
        {"out", "RUN.h5", "run file to create (required; never overwritten)", NULL},
        {"steps", "N", "training steps to simulate (default 16)", NULL},
        {"responses", "N", "responses per step (default 64)", NULL},
        {"minibatches", "M", "mini-batches per step; batch k is k updates stale (default 4)",
         NULL},
        {"min-length", "T", "shortest response in tokens (default 64)", NULL},
        {"max-length", "T", "longest response in tokens (default 1024)", NULL},
        {"noise-scale", "S", "log-ratio spread per step of staleness (default 0.012)", NULL},
        {"nu", "NU", "Student-t degrees of freedom of the noise, >= 3 (default 4)", NULL},
        {"drift-q", "D", "variance of the drift's per-token increment (default 1e-6)", NULL},
        {"samples", "N", "responses per step recorded for kpo filter (default 8)", NULL},
        {"seed", "S", "random seed (default 1)", NULL},
    };
    cli_option options[FILTER_CLI_OPTIONS_MAX + sizeof own_options / sizeof own_options[0]];
    const size_t n_options = filter_cli_options(options, sizeof options / sizeof options[0],
                                                own_options,
                                                sizeof own_options / sizeof own_options[0]);
    cli_command_spec spec = {"simulate", "--out RUN.h5 [--q Q --v V --mode M ...] [--steps N ...]",
                             "Generate heavy-tailed token log-ratio streams shaped like a KPO "
                             "run's, filter them, and write a run file as training would.",
                             options, n_options};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    filter_config fc;
    synth_config sc;
    long long steps, samples;
    const char *out_path = cli_get(&spec, "out");
    if (!out_path)
        return command_fail("kpo simulate: --out RUN.h5 is required");
    if (filter_options_read(&spec, &fc, NULL, &err) != KPO_OK ||
        read_synth_options(&spec, &sc, &steps, &samples, &err) != KPO_OK)
        return command_fail(err.message);

    char filter_text[256], config[1024];
    filter_options_describe(&fc, filter_text, sizeof filter_text);
    snprintf(config, sizeof config,
             "[simulate]\nseed = %llu\nsteps = %lld\nresponses = %lld\nminibatches = %lld\n"
             "min_length = %lld\nmax_length = %lld\nnoise_scale = %g\nnu = %d\ndrift_q = %g\n"
             "samples = %lld\n[filter]\n%s\n",
             (unsigned long long)sc.seed, steps, (long long)sc.responses,
             (long long)sc.minibatches, (long long)sc.min_length, (long long)sc.max_length,
             sc.noise_scale, sc.nu, sc.drift_q, samples, filter_text);
    runfile *rf = NULL;
    if (runfile_create(out_path, config, &rf, &err) != KPO_OK)
        return command_fail(err.message);
    printf("simulating %lld steps into %s: %s\n", steps, out_path, filter_text);
    for (long long step = 1; step <= steps && status < 0; step++)
        if (simulate_step(rf, &sc, &fc, step, samples, &err) != KPO_OK)
            status = 1;
    kpo_error close_err;
    if (runfile_close(rf, &close_err) != KPO_OK && status < 0) {
        err = close_err;
        status = 1;
    }
    return status < 0 ? 0 : command_fail(err.message);
}
