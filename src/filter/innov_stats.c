/* Innovation statistics (innov_stats.h): Welford/Pebay central moments,
 * maxima and clip counts that merge exactly across mini-batches and ranks. */
#include "filter/innov_stats.h"

#include <math.h>
#include <string.h>

#include "filter/innov_stats_update.h"

void innov_stats_init(innov_stats *s)
{
    memset(s, 0, sizeof *s);
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
    innov_stats_add_scalars(s, delta, sigma, gain, threshold, clipped);
    s->hist[innov_hist_slot(delta / sigma)] += 1.0;
}

void innov_stats_merge(innov_stats *into, const innov_stats *other)
{
    if (other->count == 0.0)
        return;
    if (into->count == 0.0) {
        *into = *other;
        return;
    }
    innov_stats_merge_scalars(into, other);
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
