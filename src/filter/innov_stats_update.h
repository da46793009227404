/* The per-token update and the pairwise merge of innov_stats, shared by
 * innov_stats.c (CPU) and filter_cuda.cu, where each GPU thread keeps the
 * scalar part of an accumulator in registers and the block keeps one
 * histogram in shared memory. Hence the split: "scalars" are every field
 * but hist[], which each caller bins itself with innov_hist_slot(). */
#ifndef KPO_FILTER_INNOV_STATS_UPDATE_H
#define KPO_FILTER_INNOV_STATS_UPDATE_H

#include <math.h>

#include "core/hostdev.h"
#include "filter/innov_stats.h"

/* Histogram slot of a normalised innovation delta / sigma. */
KPO_HOSTDEV static inline int innov_hist_slot(double normalised)
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

KPO_HOSTDEV static inline void innov_stats_clear_scalars(innov_stats *s)
{
    s->count = s->mean = s->m2 = s->m3 = s->m4 = 0.0;
    s->max_abs = s->clip_count = s->gain_sum = s->sigma_sum = 0.0;
    s->threshold_sum = s->threshold_count = 0.0;
}

/* innov_stats_add without the histogram. */
KPO_HOSTDEV static inline void innov_stats_add_scalars(innov_stats *s, double delta, double sigma,
                                                       double gain, double threshold, int clipped)
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
}

/* innov_stats_merge without the histogram. */
KPO_HOSTDEV static inline void innov_stats_merge_scalars(innov_stats *into, const innov_stats *other)
{
    double na = into->count, nb = other->count;
    if (nb == 0.0)
        return;
    if (na == 0.0) {
        into->count = other->count;
        into->mean = other->mean;
        into->m2 = other->m2;
        into->m3 = other->m3;
        into->m4 = other->m4;
        into->max_abs = other->max_abs;
        into->clip_count = other->clip_count;
        into->gain_sum = other->gain_sum;
        into->sigma_sum = other->sigma_sum;
        into->threshold_sum = other->threshold_sum;
        into->threshold_count = other->threshold_count;
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
}

#endif
