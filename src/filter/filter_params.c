/* The filter's one table of keys (filter_params.h): mode names, defaults,
 * bounds and help for the [filter] section and the filter CLI options. */
#include "filter/filter_params.h"

const char *const FILTER_MODE_NAMES[FILTER_MODE_COUNT] = {
    [FILTER_MODE_NONE] = "none",
    [FILTER_MODE_SIGMA] = "sigma",
    [FILTER_MODE_SQRTV] = "sqrtv",
    [FILTER_MODE_ITERATED] = "iterated",
    [FILTER_MODE_ADAPTIVE] = "adaptive",
};

#define AT(member) PARAM_AT(filter_config, member)

/* INI order (the [filter] section of --help-config and run files); cli_rank: the
 * order of the options in kpo filter / simulate --help. */
const param_def FILTER_PARAMS[] = {
    {.name = "q", .type = CONFIG_DOUBLE, .default_value = "1e-6", .min = 0, .max = PARAM_BIG,
     .help = "process noise Q", AT(q), .cli = "q", .cli_rank = 1, .metavar = "Q",
     .cli_help = "process noise variance Q >= 0"},
    {.name = "v", .type = CONFIG_DOUBLE, .default_value = "1", .min = 1e-300, .max = PARAM_BIG,
     .help = "measurement noise V", AT(v), .cli = "v", .cli_rank = 2, .metavar = "V",
     .cli_help = "measurement noise variance V > 0"},
    {.name = "rho0", .type = CONFIG_DOUBLE, .default_value = "0", .min = -PARAM_BIG,
     .max = PARAM_BIG, .help = "initial state", AT(rho0), .cli = "rho0", .cli_rank = 5, .metavar = "X",
     .cli_help = "initial state of each response"},
    {.name = "p0", .type = CONFIG_DOUBLE, .default_value = "0", .min = 0, .max = PARAM_BIG,
     .help = "initial variance", AT(p0), .cli = "p0", .cli_rank = 6, .metavar = "P",
     .cli_help = "initial variance of each response"},
    {.name = "implementation", .type = CONFIG_CHOICE, .default_value = "exact",
     .choices = "exact|official",
     .help = "exact recursion, or the official KPO code's float32 parallel filter over responses "
             "padded to official_width (docs/filter.md; kpo, mode none)",
     PARAM_NOWHERE},
    {.name = "official_width", .type = CONFIG_INT, .default_value = "0", .min = 0,
     .max = 1 << 24,
     .help = "implementation = official: the padded width (verl's response_length); 0: "
             "rollout.max_new_tokens",
     PARAM_NOWHERE},
    {.name = "mode", .type = CONFIG_CHOICE, .default_value = "none", .names = FILTER_MODE_NAMES,
     .n_names = FILTER_MODE_COUNT, .help = "innovation saturation", AT(mode), .cli = "mode", .cli_rank = 3,
     .metavar = "MODE", .cli_help = "saturation"},
    {.name = "kappa", .type = CONFIG_DOUBLE, .default_value = "3", .min = 1e-300,
     .max = PARAM_BIG, .help = "saturation multiplier", AT(kappa), .cli = "kappa", .cli_rank = 4,
     .metavar = "K", .cli_help = "saturation threshold multiplier > 0"},
    {.name = "iterations", .type = CONFIG_INT, .default_value = "3", .min = 1, .max = 1000,
     .help = "iterated: iterations", AT(iterations), .cli = "iterations", .cli_rank = 7, .metavar = "N",
     .cli_help = "iterated: scaled-gradient iterations"},
    {.name = "c_state", .type = CONFIG_DOUBLE, .default_value = "0", .min = 0, .max = PARAM_BIG,
     .help = "iterated: state threshold (0: same as kappa)", AT(c_state), .cli = "c-state", .cli_rank = 8,
     .metavar = "C", .cli_help = "iterated: state-residual threshold c_s (default: kappa)"},
    {.name = "step_size", .type = CONFIG_DOUBLE, .default_value = "1", .min = 1e-9,
     .max = 1.999999, .help = "iterated: step size", AT(step_size), .cli = "step-size", .cli_rank = 9,
     .metavar = "ETA", .cli_help = "iterated: step size in (0, 2)"},
    {.name = "scale_covariance", .type = CONFIG_BOOL, .default_value = "true",
     .help = "iterated: scaled P update", AT(scale_covariance), .cli = "no-scale-covariance", .cli_rank = 10,
     .cli_help = "iterated: plain (1-K) P covariance update"},
    {.name = "lambda_bound", .type = CONFIG_DOUBLE, .default_value = "0.9", .min = 0,
     .max = 0.999999, .help = "adaptive: bound factor", AT(lambda_bound), .cli = "lambda-bound", .cli_rank = 11,
     .metavar = "L", .cli_help = "adaptive: forgetting factor of the bound"},
    {.name = "lambda_energy", .type = CONFIG_DOUBLE, .default_value = "0.9", .min = 0,
     .max = 0.999999, .help = "adaptive: energy factor", AT(lambda_energy),
     .cli = "lambda-energy", .cli_rank = 12, .metavar = "L", .cli_help = "adaptive: forgetting factor of the energy"},
};
const size_t FILTER_PARAMS_LEN = sizeof FILTER_PARAMS / sizeof FILTER_PARAMS[0];

void filter_config_resolve(filter_config *cfg)
{
    if (cfg->c_state == 0)
        cfg->c_state = cfg->kappa;
}
