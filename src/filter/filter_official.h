/* The official KPO code's filter, executed as it runs (shuohe1995/verl-kpo,
 * verl/trainer/ppo/core_algos.py: kalman_gains_nonsteady_1d and
 * kalman_filter), in float32 with its clamps, its cumulative sums and its
 * NaN propagation, so kpo can show what the published runs computed
 * beside the exact recursion (filter.h). It is a witness, not a filter to
 * train with by default: at the paper's settings its closed-form gains
 * overflow (sinh((k+1) eta) past float32's range) and every later gain is
 * NaN, from token 872 at Q = 0.01, V = 1 (docs/filter.md).
 *
 * Arithmetic follows PyTorch on the CPU: float32 elementwise operations,
 * cumulative sums accumulated in double and rounded to float32 per output
 * (ATen's CPU cumsum), NaN kept by every clamp. glibc's float32 exp, log
 * and sinh may differ from PyTorch's by an ulp; where values are finite the
 * two agree to float32 rounding, and they turn non-finite at the same
 * tokens (tests/cli/test_filter_official.py holds them together). */
#ifndef KPO_FILTER_FILTER_OFFICIAL_H
#define KPO_FILTER_FILTER_OFFICIAL_H

#include <stdint.h>

/* K_1..K_T [T] as kalman_gains_nonsteady_1d(Q, R, P0, T): the Chebyshev
 * closed form of the Riccati recursion, clamped to [1e-6, 1 - 1e-6]. */
void filter_official_gains(double q_process, double r_measure, double p0, int64_t T, float *K);

/* x_hat [B, T] as kalman_filter(z, mask, Q, R, P0, x0) on a padded batch:
 * z and mask [B, T] row-major (mask 1 for response tokens, 0 for padding).
 * A NaN gain makes x_hat NaN at that position in every row, masked or
 * not (NaN * 0 is NaN), as in the official code. */
void filter_official_apply(double q_process, double r_measure, double p0, double x0,
                           const float *z, const float *mask, int64_t B, int64_t T,
                           float *x_hat);

/* Index of the first value that is not finite, or n when all are. */
int64_t filter_official_first_nonfinite(const float *values, int64_t n);

#endif
