/* Group-relative advantages (advantage.h; algorithms.md section 2). */
#include "learner/advantage.h"

#include <math.h>

int advantage_grpo(const double *rewards, int64_t n_groups, int group_size, int normalize_std,
                   double eps, double *advantages, kpo_error *err)
{
    if (group_size < 1)
        return error_set(err, "advantage: group size must be >= 1, got %d", group_size);
    if (!(eps >= 0))
        return error_set(err, "advantage: eps must be >= 0, got %g", eps);
    for (int64_t g = 0; g < n_groups; g++) {
        const double *r = rewards + g * group_size;
        double *a = advantages + g * group_size;
        for (int i = 0; i < group_size; i++)
            if (!isfinite(r[i]))
                return error_set(err, "advantage: reward %d of group %lld is not finite", i,
                                 (long long)g);
        int all_equal = 1;
        for (int i = 1; i < group_size; i++)
            all_equal &= r[i] == r[0];
        if (all_equal && group_size > 1) {
            /* Nothing to learn from; exactly zero, not rounding noise / eps. */
            for (int i = 0; i < group_size; i++)
                a[i] = 0.0;
            continue;
        }
        double mean = 0.0, std = 1.0;
        if (group_size > 1) {
            for (int i = 0; i < group_size; i++)
                mean += r[i];
            mean /= group_size;
            double ss = 0.0;
            for (int i = 0; i < group_size; i++)
                ss += (r[i] - mean) * (r[i] - mean);
            std = sqrt(ss / (group_size - 1));
        }
        for (int i = 0; i < group_size; i++)
            a[i] = normalize_std ? (r[i] - mean) / (std + eps) : r[i] - mean;
    }
    return KPO_OK;
}
