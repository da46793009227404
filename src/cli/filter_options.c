#include "cli/filter_options.h"

#include <stdio.h>
#include <string.h>

int filter_options_read(const cli_command_spec *spec, filter_config *cfg, int *official,
                        kpo_error *err)
{
    filter_config_default(cfg);
    long long iterations = cfg->iterations;
    const char *mode = cli_get(spec, "mode");
    if (official) {
        /* The official code's filter has no saturation: its exact twin is
         * mode none with the same q, v, p0 and x0. */
        *official = mode && strcmp(mode, "official") == 0;
        if (*official)
            mode = NULL;
    }
    if (cli_get_double(spec, "q", cfg->q, &cfg->q, err) != KPO_OK ||
        cli_get_double(spec, "v", cfg->v, &cfg->v, err) != KPO_OK ||
        cli_get_double(spec, "kappa", cfg->kappa, &cfg->kappa, err) != KPO_OK ||
        cli_get_double(spec, "rho0", cfg->rho0, &cfg->rho0, err) != KPO_OK ||
        cli_get_double(spec, "p0", cfg->p0, &cfg->p0, err) != KPO_OK ||
        cli_get_int64(spec, "iterations", iterations, &iterations, err) != KPO_OK ||
        cli_get_double(spec, "c-state", cfg->kappa, &cfg->c_state, err) != KPO_OK ||
        cli_get_double(spec, "step-size", cfg->step_size, &cfg->step_size, err) != KPO_OK ||
        cli_get_double(spec, "lambda-bound", cfg->lambda_bound, &cfg->lambda_bound, err) != KPO_OK ||
        cli_get_double(spec, "lambda-energy", cfg->lambda_energy, &cfg->lambda_energy, err) != KPO_OK)
        return KPO_ERR;
    if (mode && filter_mode_parse(mode, &cfg->mode, err) != KPO_OK)
        return error_prefix(err, "--");
    if (iterations < 1 || iterations > 1000)
        return error_set(err, "--iterations: must be in [1, 1000], got %lld", iterations);
    cfg->iterations = (int)iterations;
    cfg->scale_covariance = cli_get(spec, "no-scale-covariance") ? 0 : 1;
    if (filter_config_validate(cfg, err) != KPO_OK)
        return error_prefix(err, "--");
    return KPO_OK;
}

void filter_options_describe(const filter_config *cfg, char *out, size_t size)
{
    int used = snprintf(out, size, "q=%g v=%g mode=%s", cfg->q, cfg->v, filter_mode_name(cfg->mode));
    if (used < 0 || (size_t)used >= size)
        return;
    if (cfg->mode != FILTER_MODE_NONE)
        used += snprintf(out + used, size - (size_t)used, " kappa=%g", cfg->kappa);
    if (cfg->rho0 != 0 || cfg->p0 != 0)
        used += snprintf(out + used, size - (size_t)used, " rho0=%g p0=%g", cfg->rho0, cfg->p0);
    if (cfg->mode == FILTER_MODE_ITERATED)
        snprintf(out + used, size - (size_t)used, " iterations=%d c_state=%g step_size=%g%s",
                 cfg->iterations, cfg->c_state, cfg->step_size,
                 cfg->scale_covariance ? "" : " no_scale_covariance");
    else if (cfg->mode == FILTER_MODE_ADAPTIVE)
        snprintf(out + used, size - (size_t)used, " lambda_bound=%g lambda_energy=%g",
                 cfg->lambda_bound, cfg->lambda_energy);
}
