/* Closed forms of the scalar random-walk Kalman filter (gain.h): K_t, K_inf,
 * memory and thresholds for kpo gain and the tests. */
#include "filter/gain.h"

#include <math.h>

double gain_steady(double q)
{
    if (q <= 0)
        return 0.0;
    /* (sqrt(q^2+4q) - q)/2 == 2q / (q + sqrt(q^2+4q)); the second has no
     * subtraction, so it keeps full precision at q = 1e-12. */
    return 2.0 * q / (q + sqrt(q * q + 4.0 * q));
}

double gain_steady_prior_variance(double q_process, double v_measure)
{
    return 0.5 * (q_process + sqrt(q_process * q_process + 4.0 * q_process * v_measure));
}

void gain_sequence(double q, double p0_over_v, int64_t n, double *out)
{
    double k = p0_over_v;
    for (int64_t t = 0; t < n; t++) {
        double prior = k + q;
        k = prior / (prior + 1.0);
        out[t] = k;
    }
}

void gain_data_weight(double q, double p0_over_v, int64_t n, double *out)
{
    double k = p0_over_v, remaining = 1.0;
    for (int64_t t = 0; t < n; t++) {
        double prior = k + q;
        k = prior / (prior + 1.0);
        remaining *= 1.0 - k;
        out[t] = 1.0 - remaining;
    }
}
