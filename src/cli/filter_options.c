/* The filter's command-line options for kpo filter, simulate and gain,
 * built from and read back through the filter's table (filter_params.h). */
#include "cli/filter_options.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "filter/filter_params.h"

/* An option's help: the row's, with its default. */
static void option_help(const param_def *row, char *out, size_t size)
{
    if (row->type == CONFIG_CHOICE) {
        /* "saturation: none, sigma, ... (default none; ...)" */
        int used = snprintf(out, size, "%s: ", row->cli_help);
        for (int k = 0; k < row->n_names && used > 0 && (size_t)used < size; k++)
            used += snprintf(out + used, size - (size_t)used, "%s%s", k ? ", " : "",
                             row->names[k]);
        if (used > 0 && (size_t)used < size)
            snprintf(out + used, size - (size_t)used,
                     " (default %s; kpo filter also takes official)", row->default_value);
    } else if (!row->metavar || strstr(row->cli_help, "(default"))
        snprintf(out, size, "%s", row->cli_help);
    else
        snprintf(out, size, "%s (default %s)", row->cli_help, row->default_value);
}

size_t filter_cli_options(cli_option *out, size_t max, const cli_option *extra, size_t n_extra)
{
    static char help[FILTER_CLI_OPTIONS_MAX][192];
    size_t n = 0;
    /* Ranked rows in rank order (1, 2, ...), then the unranked in table order. */
    for (int rank = 1; rank <= (int)FILTER_PARAMS_LEN + 1; rank++)
        for (size_t k = 0; k < FILTER_PARAMS_LEN && n < max && n < FILTER_CLI_OPTIONS_MAX; k++) {
            const param_def *row = &FILTER_PARAMS[k];
            const int last = rank == (int)FILTER_PARAMS_LEN + 1;
            if (!row->cli || (last ? row->cli_rank != 0 : row->cli_rank != rank))
                continue;
            option_help(row, help[n], sizeof help[n]);
            out[n] = (cli_option){row->cli, row->metavar, help[n], NULL};
            n++;
        }
    for (size_t k = 0; k < n_extra && n < max; k++)
        out[n++] = extra[k];
    return n;
}

/* One option given on the command line into cfg, as row says. */
static int read_option(const cli_command_spec *spec, const param_def *row, const char *text,
                       filter_config *cfg, kpo_error *err)
{
    char *at = (char *)cfg + row->offset;
    switch (row->type) {
    case CONFIG_DOUBLE:
        return cli_get_double(spec, row->cli, 0, (double *)(void *)at, err);
    case CONFIG_INT: {
        long long value;
        if (cli_get_int64(spec, row->cli, 0, &value, err) != KPO_OK)
            return KPO_ERR;
        if (value < (long long)row->min || value > (long long)row->max)
            return error_set(err, "--%s: must be in [%lld, %lld], got %lld", row->cli,
                             (long long)row->min, (long long)row->max, value);
        *(int *)(void *)at = (int)value;
        return KPO_OK;
    }
    case CONFIG_BOOL: { /* a flag: the opposite of the default */
        int dflt = 0;
        (void)config_parse_bool(row->default_value, &dflt);
        *(int *)(void *)at = !dflt;
        return KPO_OK;
    }
    case CONFIG_CHOICE:
        if (filter_mode_parse(text, (filter_mode *)(void *)at, err) != KPO_OK)
            return error_prefix(err, "--");
        return KPO_OK;
    case CONFIG_STRING:
        break;
    }
    return error_set(err, "--%s: unsupported option type", row->cli);
}

int filter_options_read(const cli_command_spec *spec, filter_config *cfg, int *official,
                        kpo_error *err)
{
    /* The table's defaults, c_state unset until the options are read. */
    *cfg = (filter_config){0};
    param_table_defaults(FILTER_PARAMS, FILTER_PARAMS_LEN, cfg);
    int c_state_given = 0;
    for (size_t k = 0; k < FILTER_PARAMS_LEN; k++) {
        const param_def *row = &FILTER_PARAMS[k];
        const char *text = row->cli ? cli_get(spec, row->cli) : NULL;
        if (!text)
            continue;
        /* The official code's filter has no saturation: its exact twin is
         * mode none with the same q, v, p0 and x0. */
        if (official && row->offset == offsetof(filter_config, mode) &&
            strcmp(text, "official") == 0)
            continue;
        if (read_option(spec, row, text, cfg, err) != KPO_OK)
            return KPO_ERR;
        c_state_given |= row->offset == offsetof(filter_config, c_state);
    }
    if (official) {
        const char *mode = cli_get(spec, "mode");
        *official = mode && strcmp(mode, "official") == 0;
    }
    if (!c_state_given)
        filter_config_resolve(cfg);
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
