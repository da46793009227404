/* filter_config: defaults from the filter's table, validation, mode names,
 * and the one place where c_state defaults to kappa. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "filter/filter.h"
#include "filter/filter_params.h"

/* The defaults are FILTER_PARAMS' (filter_params.c). */
void filter_config_default(filter_config *cfg)
{
    *cfg = (filter_config){0};
    param_table_defaults(FILTER_PARAMS, FILTER_PARAMS_LEN, cfg);
    filter_config_resolve(cfg);
}

const char *filter_mode_name(filter_mode mode)
{
    return (mode >= 0 && mode < FILTER_MODE_COUNT) ? FILTER_MODE_NAMES[mode] : "?";
}

int filter_mode_parse(const char *name, filter_mode *mode, kpo_error *err)
{
    for (int m = 0; m < FILTER_MODE_COUNT; m++) {
        if (strcmp(name, FILTER_MODE_NAMES[m]) == 0) {
            *mode = (filter_mode)m;
            return KPO_OK;
        }
    }
    char valid[128];
    size_t used = 0;
    for (int m = 0; m < FILTER_MODE_COUNT && used < sizeof valid; m++)
        used += (size_t)snprintf(valid + used, sizeof valid - used, "%s%s", m ? ", " : "",
                                 FILTER_MODE_NAMES[m]);
    return error_set(err, "mode: unknown saturation mode '%s' (valid: %s)", name, valid);
}

int filter_config_validate(const filter_config *cfg, kpo_error *err)
{
    if (!(isfinite(cfg->q) && cfg->q >= 0))
        return error_set(err, "q: process noise Q must be finite and >= 0, got %g", cfg->q);
    if (!(isfinite(cfg->v) && cfg->v > 0))
        return error_set(err, "v: measurement noise V must be finite and > 0, got %g", cfg->v);
    if (!isfinite(cfg->rho0))
        return error_set(err, "rho0: initial state must be finite, got %g", cfg->rho0);
    if (!(isfinite(cfg->p0) && cfg->p0 >= 0))
        return error_set(err, "p0: initial variance P0 must be finite and >= 0, got %g", cfg->p0);
    if (cfg->mode < 0 || cfg->mode >= FILTER_MODE_COUNT)
        return error_set(err, "mode: unknown saturation mode %d", (int)cfg->mode);
    if (cfg->mode != FILTER_MODE_NONE && !(isfinite(cfg->kappa) && cfg->kappa > 0))
        return error_set(err, "kappa: saturation threshold must be finite and > 0, got %g",
                         cfg->kappa);
    if (cfg->mode == FILTER_MODE_ITERATED) {
        if (cfg->iterations < 1 || cfg->iterations > 1000)
            return error_set(err, "iterations: must be in [1, 1000], got %d", cfg->iterations);
        if (!(cfg->c_state > 0)) /* +inf is allowed: no state-residual saturation */
            return error_set(err, "c_state: must be > 0, got %g", cfg->c_state);
        if (!(cfg->step_size > 0 && cfg->step_size < 2))
            return error_set(err, "step_size: must be in (0, 2), got %g", cfg->step_size);
    }
    if (cfg->mode == FILTER_MODE_ADAPTIVE) {
        if (!(cfg->lambda_bound >= 0 && cfg->lambda_bound < 1))
            return error_set(err, "lambda_bound: must be in [0, 1), got %g", cfg->lambda_bound);
        if (!(cfg->lambda_energy >= 0 && cfg->lambda_energy < 1))
            return error_set(err, "lambda_energy: must be in [0, 1), got %g",
                             cfg->lambda_energy);
    }
    return KPO_OK;
}
