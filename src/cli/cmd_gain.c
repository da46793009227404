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

/* What the command line asks for, checked. */
typedef struct gain_request {
    double q, v, p0, kappa;
    int64_t *tokens;    /* [n_tokens] positions to tabulate */
    size_t n_tokens;
    int64_t horizon;    /* the largest of them (and of the official length) */
    int csv;
    float *official;    /* [length] the official code's gains, NULL without --mode official */
    int64_t length;
} gain_request;

static int read_request(const cli_command_spec *spec, gain_request *r, kpo_error *err)
{
    filter_config defaults;
    filter_config_default(&defaults);
    memset(r, 0, sizeof *r);
    if (!cli_get(spec, "q") || !cli_get(spec, "v"))
        return error_set(err, "kpo gain: --q and --v are required");
    if (cli_get_double(spec, "q", 0, &r->q, err) != KPO_OK ||
        cli_get_double(spec, "v", 0, &r->v, err) != KPO_OK ||
        cli_get_double(spec, "p0", defaults.p0, &r->p0, err) != KPO_OK ||
        cli_get_double(spec, "kappa", defaults.kappa, &r->kappa, err) != KPO_OK)
        return KPO_ERR;
    if (r->q < 0)
        return error_set(err, "--q: process noise Q must be >= 0");
    if (r->v <= 0)
        return error_set(err, "--v: measurement noise V must be > 0");
    if (r->p0 < 0)
        return error_set(err, "--p0: initial variance must be >= 0");
    if (r->kappa <= 0)
        return error_set(err, "--kappa: must be > 0");
    const char *token_text = cli_get(spec, "tokens");
    if (parse_int64_list(token_text ? token_text : DEFAULT_TOKENS, "--tokens", &r->tokens,
                         &r->n_tokens, err) != KPO_OK)
        return KPO_ERR;
    for (size_t k = 0; k < r->n_tokens; k++) {
        if (r->tokens[k] < 1 || r->tokens[k] > 100000000)
            return error_set(err, "--tokens: positions must be in [1, 1e8]");
        if (r->tokens[k] > r->horizon)
            r->horizon = r->tokens[k];
    }
    r->csv = cli_get(spec, "csv") != NULL;
    return read_official(spec, &r->official, &r->length, &r->horizon, r->q, r->v, r->p0, err);
}

static void print_steady_state(const gain_request *r)
{
    const double ratio = r->q / r->v, k_inf = gain_steady(ratio);
    const double prior_inf = gain_steady_prior_variance(r->q, r->v);
    const double sigma_inf = sqrt(prior_inf + r->v);
    printf("random-walk Kalman filter: Q = %g, V = %g (q = Q/V = %g), P0 = %g, kappa = %g\n",
           r->q, r->v, ratio, r->p0, r->kappa);
    printf("steady state:\n");
    printf("  K_inf                      %.6g  (%.3f%%)\n", k_inf, 100 * k_inf);
    if (k_inf > 0)
        printf("  memory 1/K_inf             %.4g tokens\n", 1 / k_inf);
    else
        printf("  memory 1/K_inf             infinite (Q = 0: the filter stops learning)\n");
    printf("  prior variance M = P_pred  %.6g\n", prior_inf);
    printf("  posterior variance K_inf V %.6g\n", k_inf * r->v);
    printf("  innovation sigma sqrt(M+V) %.6g\n", sigma_inf);
    printf("  threshold, mode sigma      %.6g  (kappa * sigma_inf)\n", r->kappa * sigma_inf);
    printf("  threshold, mode sqrtv      %.6g  (kappa * sqrt(V))\n", r->kappa * sqrt(r->v));
    if (r->official)
        print_official_summary(r->official, r->length);
}

/* One row of the transient table: token t's gain, sigma and thresholds. */
static void print_transient_row(const gain_request *r, int64_t t, double gain, double sigma,
                                double data_weight)
{
    if (r->csv)
        printf("%lld,%.17g,%.17g,%.17g,%.17g,%.17g", (long long)t, gain, sigma, r->kappa * sigma,
               r->kappa * sqrt(r->v), data_weight);
    else
        printf("%8lld %12.6g %10.6g %12.6g %12.6g", (long long)t, gain, sigma, r->kappa * sigma,
               data_weight);
    if (r->official && t <= r->length && isnan(r->official[t - 1]))
        printf(r->csv ? ",nan" : "  %12s", "NaN"); /* not glibc's sign-carrying "-nan" */
    else if (r->official && t <= r->length)
        printf(r->csv ? ",%.9g" : "  %12.6g", (double)r->official[t - 1]);
    else if (r->official)
        printf(r->csv ? "," : "  %12s", "");
    printf("\n");
}

/* One pass of the recursion to the largest requested position, printing
 * the requested ones as it goes. */
static void print_transient(const gain_request *r)
{
    if (!r->csv) {
        printf("transient from P0 (sigma_t = sqrt(P_{t-1} + Q + V); data weight = "
               "1 - prod(1 - K_j)):\n");
        printf("%8s %12s %10s %12s %12s%s\n", "token", "K_t", "sigma_t", "threshold",
               "data_weight", r->official ? "  K_t_official" : "");
    } else {
        printf("token,gain,sigma,threshold_sigma,threshold_sqrtv,data_weight%s\n",
               r->official ? ",gain_official" : "");
    }
    const double ratio = r->q / r->v;
    double k_prev = r->p0 / r->v, remaining = 1.0;
    for (int64_t t = 1; t <= r->horizon; t++) {
        double prior = k_prev + ratio;
        double gain = prior / (prior + 1.0), sigma = sqrt(r->v * (prior + 1.0));
        remaining *= 1.0 - gain;
        k_prev = gain;
        for (size_t k = 0; k < r->n_tokens; k++)
            if (r->tokens[k] == t) {
                print_transient_row(r, t, gain, sigma, 1 - remaining);
                break;
            }
    }
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
    cli_command_spec spec = {"gain",
                             "--q Q --v V [--p0 P0] [--kappa K] [--tokens LIST] [--csv] "
                             "[--mode official]",
                             "Kalman gain K_t of the random-walk filter over the first tokens, "
                             "its steady state, memory, innovation sigma and saturation "
                             "thresholds.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    gain_request r;
    status = read_request(&spec, &r, &err);
    if (status == KPO_OK) {
        if (!r.csv)
            print_steady_state(&r);
        print_transient(&r);
    }
    free(r.tokens);
    free(r.official);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
