/* The KPO Kalman filter over token log-ratios with innovation saturation
 * (filter.h): the exact double-precision recursion and its modes. */
#include "filter/filter.h"

#include <math.h>

#include "filter/filter_step.h"

int filter_validate_input(const double *values, const int64_t *offsets, int64_t n_responses,
                          kpo_error *err)
{
    if (n_responses < 0 || (n_responses > 0 && (!offsets || offsets[0] != 0)))
        return error_set(err, "offsets: must start at 0 and hold n_responses + 1 entries");
    for (int64_t r = 0; r < n_responses; r++) {
        if (offsets[r + 1] < offsets[r])
            return error_set(err, "offsets: entry %lld (%lld) is below entry %lld (%lld)",
                             (long long)(r + 1), (long long)offsets[r + 1], (long long)r,
                             (long long)offsets[r]);
    }
    /* Check every value before writing any output: bad input leaves nothing
     * half-filtered. */
    for (int64_t r = 0; r < n_responses; r++) {
        for (int64_t i = offsets[r]; i < offsets[r + 1]; i++) {
            if (!isfinite(values[i]))
                return error_set(err, "log-ratio of response %lld, token %lld is %g: "
                                      "values must be finite",
                                 (long long)r, (long long)(i - offsets[r]), values[i]);
        }
    }
    return KPO_OK;
}

int filter_apply(const filter_config *cfg, const double *values, const int64_t *offsets,
                 int64_t n_responses, filter_outputs *out, innov_stats *stats, kpo_error *err)
{
    if (filter_config_validate(cfg, err) != KPO_OK)
        return KPO_ERR;
    if (filter_validate_input(values, offsets, n_responses, err) != KPO_OK)
        return KPO_ERR;

    for (int64_t r = 0; r < n_responses; r++) {
        response_state st = filter_state_initial(cfg);
        for (int64_t i = offsets[r]; i < offsets[r + 1]; i++) {
            token_result t = filter_step(cfg, &st, values[i]);
            filter_store_token(out, i, st.rho, &t);
            if (stats)
                innov_stats_add(stats, t.delta, t.sigma, t.gain, t.threshold, t.clipped);
        }
    }
    return KPO_OK;
}
