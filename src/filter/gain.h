/* Closed forms of the scalar random-walk Kalman filter, for `kpo gain` and
 * the tests. Everything depends on q = Q/V and P0/V only (algorithms.md §5). */
#ifndef KPO_FILTER_GAIN_H
#define KPO_FILTER_GAIN_H

#include <stdint.h>

/* Steady-state gain K_inf = (sqrt(q^2 + 4q) - q) / 2, the positive root of
 * K^2 + qK - q = 0, evaluated without cancellation. */
double gain_steady(double q);

/* Steady-state prior variance M = P_pred = (Q + sqrt(Q^2 + 4QV)) / 2. */
double gain_steady_prior_variance(double q_process, double v_measure);

/* K_1..K_n from P0: K_t = (k + q) / (k + q + 1) with k = P_{t-1}/V,
 * k_0 = P0/V. out[t-1] = K_t. */
void gain_sequence(double q, double p0_over_v, int64_t n, double *out);

/* Weight of the data in rho_t after t tokens, 1 - prod_{j<=t} (1 - K_j); the
 * rest stays on the prior rho0. out[t-1] for t = 1..n. */
void gain_data_weight(double q, double p0_over_v, int64_t n, double *out);

#endif
