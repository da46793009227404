/* Innovation statistics: what the paper's Table 2 and Figure 2 report, kept
 * so that accumulators from mini-batches and learner ranks merge exactly as
 * if one had seen every token.
 *
 * Moments are central sums (Welford/Pebay): raw power sums would cancel
 * catastrophically when the mean dwarfs the spread. Merging is Pebay's
 * pairwise update, so it is associative up to rounding. */
#ifndef KPO_FILTER_INNOV_STATS_H
#define KPO_FILTER_INNOV_STATS_H

#include <stddef.h>

/* Histogram of the normalised innovation delta_t / sigma_t,
 * sigma_t = sqrt(P_pred + V): INNOV_HIST_BINS equal bins on
 * [INNOV_HIST_LOW, INNOV_HIST_HIGH) plus an underflow and an overflow bin. */
#define INNOV_HIST_BINS 64
#define INNOV_HIST_LOW (-8.0)
#define INNOV_HIST_HIGH 8.0
#define INNOV_HIST_SLOTS (INNOV_HIST_BINS + 2) /* [0] under, [1..BINS], [BINS+1] over */

typedef struct innov_stats {
    double count;          /* tokens seen (exact in double up to 2^53) */
    double mean;           /* mean of delta */
    double m2, m3, m4;     /* sums of (delta - mean)^k */
    double max_abs;        /* max |delta| */
    double clip_count;     /* tokens whose innovation was saturated */
    double gain_sum;       /* sum of K_t */
    double sigma_sum;      /* sum of sigma_t */
    double threshold_sum;  /* sum of finite thresholds */
    double threshold_count;
    double hist[INNOV_HIST_SLOTS];
} innov_stats;

/* Number of doubles in the flat form an MPI reduction carries. */
#define INNOV_STATS_FLAT_LEN (11 + INNOV_HIST_SLOTS)

void innov_stats_init(innov_stats *s);

/* Adds one token: raw innovation, its sigma_t, gain, threshold (may be
 * +inf) and whether it was clipped. */
void innov_stats_add(innov_stats *s, double delta, double sigma, double gain, double threshold,
                     int clipped);

/* into <- into (+) other, as if into had also seen other's tokens. */
void innov_stats_merge(innov_stats *into, const innov_stats *other);

void innov_stats_to_flat(const innov_stats *s, double flat[INNOV_STATS_FLAT_LEN]);
void innov_stats_from_flat(innov_stats *s, const double flat[INNOV_STATS_FLAT_LEN]);

/* Merges n_records flat records of `in` into `inout`, record by record: the
 * body of an MPI_User_function (MPI_Op_create with commute = 0 keeps the
 * reduction order fixed, so results are reproducible). */
void innov_stats_merge_flat(double *inout, const double *in, size_t n_records);

/* Derived quantities; NaN where undefined (no tokens, zero variance, no
 * finite threshold). */
double innov_stats_variance(const innov_stats *s);   /* population variance */
double innov_stats_kurtosis(const innov_stats *s);   /* Pearson: Gaussian = 3 */
double innov_stats_clip_fraction(const innov_stats *s);
double innov_stats_mean_gain(const innov_stats *s);
double innov_stats_mean_sigma(const innov_stats *s);
double innov_stats_mean_threshold(const innov_stats *s);

/* Lower edge of histogram slot k (slot 0 is -inf). */
double innov_stats_bin_low(int slot);

#endif
