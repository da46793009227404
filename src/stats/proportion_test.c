/* Two-sample tests on accuracies (proportion_test.h; algorithms.md
 * section 6): the pooled z-test behind kpo stats. */
#include "stats/proportion_test.h"

#include <math.h>

int proportion_test_pooled(double p1, double n1, double p2, double n2, proportion_test *out,
                           kpo_error *err)
{
    if (!(p1 >= 0 && p1 <= 1))
        return error_set(err, "p1: a proportion must lie in [0, 1], got %g", p1);
    if (!(p2 >= 0 && p2 <= 1))
        return error_set(err, "p2: a proportion must lie in [0, 1], got %g", p2);
    if (!(n1 > 0 && isfinite(n1)))
        return error_set(err, "n1: sample size must be > 0, got %g", n1);
    if (!(n2 > 0 && isfinite(n2)))
        return error_set(err, "n2: sample size must be > 0, got %g", n2);
    double pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
    double se = sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2));
    out->pooled = pooled;
    out->std_error = se;
    out->difference = p1 - p2;
    if (se == 0.0) {
        /* Both arms all-correct or all-wrong: no evidence of a difference. */
        out->z = 0.0;
        out->p_value = 1.0;
        return KPO_OK;
    }
    out->z = (p1 - p2) / se;
    out->p_value = erfc(fabs(out->z) / sqrt(2.0));
    return KPO_OK;
}
