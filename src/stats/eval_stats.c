/* Evaluation statistics over problems (eval_stats.h): avg@k, unbiased
 * pass@k, paired comparisons of runs on the same problems. */
#include "stats/eval_stats.h"

#include <math.h>
#include <stdlib.h>

#include "core/rng.h"

static double accuracy(const problem_count *c)
{
    return c->samples > 0 ? (double)c->correct / (double)c->samples : 0.0;
}

double eval_avg_at_k(const problem_count *counts, size_t n)
{
    double sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += accuracy(&counts[k]);
    return n ? sum / (double)n : 0.0;
}

double eval_pass_at_k_one(long n, long c, long k)
{
    if (c < 0 || c > n || k < 1 || n > EVAL_PASS_AT_K_MAX_SAMPLES)
        return NAN;
    if (n - c < k)
        return 1.0;
    /* C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (1 - c / (n - i))
     *                     = prod_{i=0}^{c-1} (1 - k / (n - i)):
     * the shorter product, m = min(c, k) factors, summed as logarithms so a
     * pass@k near 0 keeps its digits (1 - product would not). Each term is at
     * most -max(c, k) / n, so the sum is at most -m^2 / n; once it is below
     * -38 the result rounds to 1 and the loop stops, which caps it near
     * sqrt(38 n) iterations whatever c and k are. */
    long m = c < k ? c : k, other = c < k ? k : c;
    double log_none = 0.0;
    for (long i = 0; i < m && log_none > -38.0; i++)
        log_none += log1p(-(double)other / (double)(n - i));
    return log_none > -38.0 ? -expm1(log_none) : 1.0;
}

int eval_pass_at_k(const problem_count *counts, size_t n, long k, double *out, kpo_error *err)
{
    if (k < 1)
        return error_set(err, "pass@k needs k >= 1, not %ld", k);
    double sum = 0;
    for (size_t j = 0; j < n; j++) {
        if (counts[j].samples < k)
            return error_set(err, "pass@%ld: problem %zu has only %ld samples", k, j + 1,
                             counts[j].samples);
        if (counts[j].samples > EVAL_PASS_AT_K_MAX_SAMPLES)
            return error_set(err, "pass@%ld: problem %zu has %ld samples, more than the %ld "
                             "pass@k supports", k, j + 1, counts[j].samples,
                             EVAL_PASS_AT_K_MAX_SAMPLES);
        if (counts[j].correct < 0 || counts[j].correct > counts[j].samples)
            return error_set(err, "pass@%ld: problem %zu has %ld correct of %ld samples", k,
                             j + 1, counts[j].correct, counts[j].samples);
        sum += eval_pass_at_k_one(counts[j].samples, counts[j].correct, k);
    }
    *out = n ? sum / (double)n : 0.0;
    return KPO_OK;
}

/* Continued fraction of the regularised incomplete beta (modified Lentz). */
static double beta_fraction(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 300; m++) {
        for (int pass = 0; pass < 2; pass++) {
            double num = pass == 0 ? m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
                                   : -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
            d = 1 + num * d;
            d = 1 / (fabs(d) < tiny ? tiny : d);
            c = 1 + num / c;
            c = fabs(c) < tiny ? tiny : c;
            h *= d * c;
            if (pass == 1 && fabs(d * c - 1) < 1e-15)
                return h;
        }
    }
    return h;
}

static double incomplete_beta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2))
        return front * beta_fraction(a, b, x) / a;
    return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

double eval_student_t_p(double t, double df)
{
    if (!isfinite(t))
        return isnan(t) ? NAN : 0.0;
    return incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

int eval_paired_test(const problem_count *a, const problem_count *b, size_t n, paired_test *out,
                     kpo_error *err)
{
    if (n < 2)
        return error_set(err, "a paired test needs at least 2 problems, got %zu", n);
    double mean = 0, m2 = 0;
    for (size_t k = 0; k < n; k++) { /* Welford: one pass, no cancellation */
        double d = accuracy(&a[k]) - accuracy(&b[k]), delta = d - mean;
        mean += delta / (double)(k + 1);
        m2 += delta * (d - mean);
    }
    out->mean_diff = mean;
    out->std_error = sqrt(m2 / (double)(n - 1) / (double)n);
    out->df = (long)n - 1;
    if (out->std_error > 0) {
        out->t = mean / out->std_error;
        out->p_value = eval_student_t_p(out->t, (double)out->df);
    } else { /* identical differences everywhere */
        out->t = mean == 0 ? 0 : copysign(INFINITY, mean);
        out->p_value = mean == 0 ? 1.0 : 0.0;
    }
    return KPO_OK;
}

static int compare_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* Statistic of the arms' mean accuracies: a - b, or the gap share with ref. */
static double arm_statistic(double a, double b, const double *ref)
{
    return ref ? 100.0 * (a - b) / (*ref - b) : a - b;
}

static const uint64_t BOOTSTRAP_STREAM = 0x424f4f54ull; /* "BOOT" */

static int bootstrap(const problem_count *a, const problem_count *b, const problem_count *ref,
                     size_t n, long resamples, uint64_t seed, double level, bootstrap_ci *out,
                     kpo_error *err)
{
    if (n < 1 || n > UINT32_MAX)
        return error_set(err, "bootstrap needs between 1 and 2^32 problems, got %zu", n);
    if (resamples < 100 || resamples > 10000000)
        return error_set(err, "bootstrap resamples must be in [100, 1e7], not %ld", resamples);
    if (!(level > 0 && level < 1))
        return error_set(err, "confidence level must be in (0, 1), not %g", level);
    double ref_mean = ref ? eval_avg_at_k(ref, n) : 0;
    if (ref && ref_mean == eval_avg_at_k(b, n))
        return error_set(err, "the reference arm equals the baseline: there is no gap");
    out->estimate = arm_statistic(eval_avg_at_k(a, n), eval_avg_at_k(b, n), ref ? &ref_mean : NULL);
    double *values = malloc((size_t)resamples * sizeof *values);
    if (!values)
        return error_set(err, "out of memory for %ld bootstrap resamples", resamples);
    rng_stream rng;
    rng_stream_init(&rng, seed, rng_stream_id(BOOTSTRAP_STREAM, 0, 0));
    long le_zero = 0, kept = 0;
    for (long r = 0; r < resamples; r++) {
        double sa = 0, sb = 0, sr = 0;
        for (size_t k = 0; k < n; k++) {
            size_t j = (size_t)(rng_uniform(&rng) * (double)n);
            j = j < n ? j : n - 1;
            sa += accuracy(&a[j]);
            sb += accuracy(&b[j]);
            if (ref)
                sr += accuracy(&ref[j]);
        }
        double mean_ref = sr / (double)n;
        if (ref && mean_ref == sb / (double)n)
            continue; /* no gap in this resample: the ratio is undefined */
        values[kept] = arm_statistic(sa / (double)n, sb / (double)n, ref ? &mean_ref : NULL);
        le_zero += values[kept] <= 0;
        kept++;
    }
    if (kept == 0) {
        free(values);
        return error_set(err, "no bootstrap resample had a gap between reference and baseline");
    }
    qsort(values, (size_t)kept, sizeof *values, compare_double);
    double tail = (1 - level) / 2;
    long lo = (long)floor(tail * (double)(kept - 1)), hi = (long)ceil((1 - tail) * (double)(kept - 1));
    out->low = values[lo];
    out->high = values[hi];
    out->frac_le_zero = (double)le_zero / (double)kept;
    free(values);
    return KPO_OK;
}

int eval_bootstrap_diff(const problem_count *a, const problem_count *b, size_t n,
                        long resamples, uint64_t seed, double level, bootstrap_ci *out,
                        kpo_error *err)
{
    return bootstrap(a, b, NULL, n, resamples, seed, level, out, err);
}

int eval_bootstrap_gap(const problem_count *a, const problem_count *b, const problem_count *ref,
                       size_t n, long resamples, uint64_t seed, double level, bootstrap_ci *out,
                       kpo_error *err)
{
    return bootstrap(a, b, ref, n, resamples, seed, level, out, err);
}
