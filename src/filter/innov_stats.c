#include "filter/innov_stats.h"

#include <math.h>
#include <string.h>

void innov_stats_init(innov_stats *s)
{
    memset(s, 0, sizeof *s);
}

static int histogram_slot(double normalised)
{
    if (normalised < INNOV_HIST_LOW)
        return 0;
    if (!(normalised < INNOV_HIST_HIGH))
        return INNOV_HIST_BINS + 1;
    const double width = (INNOV_HIST_HIGH - INNOV_HIST_LOW) / INNOV_HIST_BINS;
    int bin = (int)floor((normalised - INNOV_HIST_LOW) / width);
    if (bin >= INNOV_HIST_BINS) /* rounding just below the top edge */
        bin = INNOV_HIST_BINS - 1;
    return 1 + bin;
}

double innov_stats_bin_low(int slot)
{
    if (slot <= 0)
        return -INFINITY;
    const double width = (INNOV_HIST_HIGH - INNOV_HIST_LOW) / INNOV_HIST_BINS;
    return INNOV_HIST_LOW + (slot - 1) * width;
}

void innov_stats_add(innov_stats *s, double delta, double sigma, double gain, double threshold,
                     int clipped)
{
    /* Welford/Terriberry single-value update of the central sums. */
    double n1 = s->count;
    double n = n1 + 1.0;
    double d = delta - s->mean;
    double d_n = d / n;
    double d_n2 = d_n * d_n;
    double term1 = d * d_n * n1;
    s->mean += d_n;
    s->m4 += term1 * d_n2 * (n * n - 3.0 * n + 3.0) + 6.0 * d_n2 * s->m2 - 4.0 * d_n * s->m3;
    s->m3 += term1 * d_n * (n - 2.0) - 3.0 * d_n * s->m2;
    s->m2 += term1;
    s->count = n;

    double magnitude = fabs(delta);
    if (magnitude > s->max_abs)
        s->max_abs = magnitude;
    s->clip_count += clipped ? 1.0 : 0.0;
    s->gain_sum += gain;
    s->sigma_sum += sigma;
    if (isfinite(threshold)) {
        s->threshold_sum += threshold;
        s->threshold_count += 1.0;
    }
    s->hist[histogram_slot(delta / sigma)] += 1.0;
}

void innov_stats_merge(innov_stats *into, const innov_stats *other)
{
    double na = into->count, nb = other->count;
    if (nb == 0.0)
        return;
    if (na == 0.0) {
        *into = *other;
        return;
    }
    /* Pebay (2008), eqs. 3.1-3.3: combine two sets' central sums. */
    double n = na + nb;
    double d = other->mean - into->mean;
    double d_n = d / n;
    double d_n2 = d_n * d_n;
    double m2a = into->m2, m3a = into->m3;
    double m2b = other->m2, m3b = other->m3;
    double m4 = into->m4 + other->m4
        + d * d_n * d_n2 * na * nb * (na * na - na * nb + nb * nb)
        + 6.0 * d_n2 * (na * na * m2b + nb * nb * m2a)
        + 4.0 * d_n * (na * m3b - nb * m3a);
    double m3 = m3a + m3b + d * d_n2 * na * nb * (na - nb) + 3.0 * d_n * (na * m2b - nb * m2a);
    double m2 = m2a + m2b + d * d_n * na * nb;

    into->mean += d_n * nb;
    into->m2 = m2;
    into->m3 = m3;
    into->m4 = m4;
    into->count = n;
    if (other->max_abs > into->max_abs)
        into->max_abs = other->max_abs;
    into->clip_count += other->clip_count;
    into->gain_sum += other->gain_sum;
    into->sigma_sum += other->sigma_sum;
    into->threshold_sum += other->threshold_sum;
    into->threshold_count += other->threshold_count;
    for (int k = 0; k < INNOV_HIST_SLOTS; k++)
        into->hist[k] += other->hist[k];
}

void innov_stats_to_flat(const innov_stats *s, double flat[INNOV_STATS_FLAT_LEN])
{
    double head[11] = {s->count,      s->mean,     s->m2,        s->m3,
                       s->m4,         s->max_abs,  s->clip_count, s->gain_sum,
                       s->sigma_sum,  s->threshold_sum, s->threshold_count};
    memcpy(flat, head, sizeof head);
    memcpy(flat + 11, s->hist, sizeof s->hist);
}

void innov_stats_from_flat(innov_stats *s, const double flat[INNOV_STATS_FLAT_LEN])
{
    s->count = flat[0];
    s->mean = flat[1];
    s->m2 = flat[2];
    s->m3 = flat[3];
    s->m4 = flat[4];
    s->max_abs = flat[5];
    s->clip_count = flat[6];
    s->gain_sum = flat[7];
    s->sigma_sum = flat[8];
    s->threshold_sum = flat[9];
    s->threshold_count = flat[10];
    memcpy(s->hist, flat + 11, sizeof s->hist);
}

void innov_stats_merge_flat(double *inout, const double *in, size_t n_records)
{
    for (size_t r = 0; r < n_records; r++) {
        innov_stats a, b;
        innov_stats_from_flat(&a, inout + r * INNOV_STATS_FLAT_LEN);
        innov_stats_from_flat(&b, in + r * INNOV_STATS_FLAT_LEN);
        innov_stats_merge(&a, &b);
        innov_stats_to_flat(&a, inout + r * INNOV_STATS_FLAT_LEN);
    }
}

double innov_stats_variance(const innov_stats *s)
{
    return s->count > 0 ? s->m2 / s->count : NAN;
}

double innov_stats_kurtosis(const innov_stats *s)
{
    if (s->count == 0 || s->m2 == 0)
        return NAN;
    return s->count * s->m4 / (s->m2 * s->m2);
}

double innov_stats_clip_fraction(const innov_stats *s)
{
    return s->count > 0 ? s->clip_count / s->count : NAN;
}

double innov_stats_mean_gain(const innov_stats *s)
{
    return s->count > 0 ? s->gain_sum / s->count : NAN;
}

double innov_stats_mean_sigma(const innov_stats *s)
{
    return s->count > 0 ? s->sigma_sum / s->count : NAN;
}

double innov_stats_mean_threshold(const innov_stats *s)
{
    return s->threshold_count > 0 ? s->threshold_sum / s->threshold_count : NAN;
}
