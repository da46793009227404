/* kpo gain: the paper's Table 3 quantities, computed from the closed forms
 * rather than read off a run (algorithms.md §5 shows the paper's are off). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "filter/filter.h"
#include "filter/filter_official.h"
#include "filter/filter_params.h"
#include "filter/gain.h"

static const char DEFAULT_TOKENS[] = "1,2,3,5,10,20,50,100,200,500,1000,2000,4096";

/* --mode official: the official code's gains over --length tokens (the
 * padded width verl computes them for), *official NULL without it. */
static int read_official(const cli_command_spec *spec, float **official, int64_t *length,
                         int64_t *horizon, double q, double v, double p0, kpo_error *err)
{
    const char *mode = cli_get(spec, "mode");
    long long n = 4096;
    if (!mode)
        return KPO_OK;
    if (strcmp(mode, "official") != 0)
        return error_set(err, "--mode: '%s' is not a gain mode (the only one is official)", mode);
    if (cli_get_int64(spec, "length", n, &n, err) != KPO_OK)
        return KPO_ERR;
    if (n < 1 || n > 100000000)
        return error_set(err, "--length: must be in [1, 1e8], got %lld", n);
    *official = malloc((size_t)n * sizeof **official);
    if (!*official)
        return error_set(err, "out of memory for %lld gains", n);
    filter_official_gains(q, v, p0, n, *official);
    *length = n;
    if (*horizon < n)
        *horizon = n;
    return KPO_OK;
}

static void print_official_summary(const float *official, int64_t length)
{
    const int64_t bad = filter_official_first_nonfinite(official, length);
    printf("official code's gains (float32 closed form, kalman_gains_nonsteady_1d, %lld "
           "tokens):\n", (long long)length);
    if (bad < length)
        printf("  not finite from token %lld on: x_hat is NaN there in every row of a batch "
               "padded to %lld, so the loss is NaN and verl skips the update\n",
               (long long)bad + 1, (long long)length);
    else
        printf("  finite through token %lld\n", (long long)length);
}

int cmd_gain(int argc, char **argv)
{
    /* p0 and kappa: the filter's defaults (filter/filter_params.c). */
    char p0_help[96], kappa_help[96];
    snprintf(p0_help, sizeof p0_help, "initial posterior variance (default %s, as the KPO code)",
             param_table_find(FILTER_PARAMS, FILTER_PARAMS_LEN, "p0")->default_value);
    snprintf(kappa_help, sizeof kappa_help, "saturation multiplier for the thresholds (default %s)",
             param_table_find(FILTER_PARAMS, FILTER_PARAMS_LEN, "kappa")->default_value);
    cli_option options[] = {
        {"q", "Q", "process noise variance Q >= 0 (required)", NULL},
        {"v", "V", "measurement noise variance V > 0 (required)", NULL},
        {"p0", "P0", p0_help, NULL},
        {"kappa", "K", kappa_help, NULL},
        {"tokens", "LIST", "token positions to tabulate (default 1,2,3,5,...,4096)", NULL},
        {"csv", NULL, "print the transient table as CSV", NULL},
        {"mode", "official", "also the official KPO code's float32 closed-form gains, and "
                             "where they stop being finite", NULL},
        {"length", "T", "official: the padded length the gains are computed for (default 4096)",
         NULL},
    };
    cli_command_spec spec = {"gain", "--q Q --v V [--p0 P0] [--kappa K] [--tokens LIST] [--csv] [--mode official]",
                             "Kalman gain K_t of the random-walk filter over the first tokens, "
                             "its steady state, memory, innovation sigma and saturation "
                             "thresholds.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;

    kpo_error err;
    double q, v, p0, kappa;
    filter_config defaults;
    filter_config_default(&defaults);
    if (!cli_get(&spec, "q") || !cli_get(&spec, "v"))
        return command_fail("kpo gain: --q and --v are required");
    if (cli_get_double(&spec, "q", 0, &q, &err) != KPO_OK ||
        cli_get_double(&spec, "v", 0, &v, &err) != KPO_OK ||
        cli_get_double(&spec, "p0", defaults.p0, &p0, &err) != KPO_OK ||
        cli_get_double(&spec, "kappa", defaults.kappa, &kappa, &err) != KPO_OK)
        return command_fail(err.message);
    if (q < 0)
        return command_fail("--q: process noise Q must be >= 0");
    if (v <= 0)
        return command_fail("--v: measurement noise V must be > 0");
    if (p0 < 0)
        return command_fail("--p0: initial variance must be >= 0");
    if (kappa <= 0)
        return command_fail("--kappa: must be > 0");
    int64_t *tokens = NULL;
    size_t n_tokens = 0;
    const char *token_text = cli_get(&spec, "tokens");
    if (parse_int64_list(token_text ? token_text : DEFAULT_TOKENS, "--tokens", &tokens, &n_tokens,
                         &err) != KPO_OK)
        return command_fail(err.message);
    int64_t horizon = 0;
    for (size_t k = 0; k < n_tokens; k++) {
        if (tokens[k] < 1 || tokens[k] > 100000000) {
            free(tokens);
            return command_fail("--tokens: positions must be in [1, 1e8]");
        }
        if (tokens[k] > horizon)
            horizon = tokens[k];
    }

    float *official = NULL;
    int64_t length = 0;
    if (read_official(&spec, &official, &length, &horizon, q, v, p0, &err) != KPO_OK) {
        free(tokens);
        return command_fail(err.message);
    }
    const double ratio = q / v, k_inf = gain_steady(ratio);
    const double prior_inf = gain_steady_prior_variance(q, v), sigma_inf = sqrt(prior_inf + v);
    const int csv = cli_get(&spec, "csv") != NULL;
    if (!csv) {
        printf("random-walk Kalman filter: Q = %g, V = %g (q = Q/V = %g), P0 = %g, kappa = %g\n",
               q, v, ratio, p0, kappa);
        printf("steady state:\n");
        printf("  K_inf                      %.6g  (%.3f%%)\n", k_inf, 100 * k_inf);
        if (k_inf > 0)
            printf("  memory 1/K_inf             %.4g tokens\n", 1 / k_inf);
        else
            printf("  memory 1/K_inf             infinite (Q = 0: the filter stops learning)\n");
        printf("  prior variance M = P_pred  %.6g\n", prior_inf);
        printf("  posterior variance K_inf V %.6g\n", k_inf * v);
        printf("  innovation sigma sqrt(M+V) %.6g\n", sigma_inf);
        printf("  threshold, mode sigma      %.6g  (kappa * sigma_inf)\n", kappa * sigma_inf);
        printf("  threshold, mode sqrtv      %.6g  (kappa * sqrt(V))\n", kappa * sqrt(v));
        if (official)
            print_official_summary(official, length);
        printf("transient from P0 (sigma_t = sqrt(P_{t-1} + Q + V); data weight = "
               "1 - prod(1 - K_j)):\n");
        printf("%8s %12s %10s %12s %12s%s\n", "token", "K_t", "sigma_t", "threshold",
               "data_weight", official ? "  K_t_official" : "");
    } else {
        printf("token,gain,sigma,threshold_sigma,threshold_sqrtv,data_weight%s\n",
               official ? ",gain_official" : "");
    }
    /* One pass to the largest requested position, printing as it goes. */
    double k_prev = p0 / v, remaining = 1.0;
    for (int64_t t = 1; t <= horizon; t++) {
        double prior = k_prev + ratio;
        double gain = prior / (prior + 1.0), sigma = sqrt(v * (prior + 1.0));
        remaining *= 1.0 - gain;
        k_prev = gain;
        for (size_t k = 0; k < n_tokens; k++) {
            if (tokens[k] != t)
                continue;
            if (csv)
                printf("%lld,%.17g,%.17g,%.17g,%.17g,%.17g", (long long)t, gain, sigma,
                       kappa * sigma, kappa * sqrt(v), 1 - remaining);
            else
                printf("%8lld %12.6g %10.6g %12.6g %12.6g", (long long)t, gain, sigma,
                       kappa * sigma, 1 - remaining);
            if (official && t <= length && isnan(official[t - 1]))
                printf(csv ? ",nan" : "  %12s", "NaN"); /* not glibc's sign-carrying "-nan" */
            else if (official && t <= length)
                printf(csv ? ",%.9g" : "  %12.6g", (double)official[t - 1]);
            else if (official)
                printf(csv ? "," : "  %12s", "");
            printf("\n");
            break;
        }
    }
    free(tokens);
    free(official);
    return 0;
}
