/* src/stats: comparing evaluations.
 * defines:
 *   eval_stats                 avg@k, pass@k, paired comparisons over problems (this header)
 *   proportion_test            two-sample tests on accuracies
 *   count_file                 per-problem counts as plain text */
/* Evaluation statistics over problems: avg@k, unbiased pass@k, and the
 * paired comparisons of two (or three) runs on the same problems that the
 * correlated samples of one problem call for (algorithms.md §6). */
#ifndef KPO_STATS_EVAL_STATS_H
#define KPO_STATS_EVAL_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct problem_count {
    long correct; /* samples judged correct */
    long samples; /* samples drawn for the problem */
} problem_count;

/* Mean over problems of correct / samples (avg@k with k = samples). */
double eval_avg_at_k(const problem_count *counts, size_t n);

/* The most samples per problem pass@k accepts (as many as a count file
 * may hold): far beyond any evaluation, and it bounds the work for one
 * problem to about sqrt(38 n) terms, some 2e5, whatever the counts. */
#define EVAL_PASS_AT_K_MAX_SAMPLES (1L << 30)

/* 1 - C(n - c, k) / C(n, k) for one problem: the chance that k of its n
 * samples drawn without replacement hold a correct one (Chen et al. 2021).
 * O(min(c, k)), and stops once the result rounds to 1; NAN unless
 * 0 <= c <= n, k >= 1 and n <= EVAL_PASS_AT_K_MAX_SAMPLES. */
double eval_pass_at_k_one(long n, long c, long k);

/* Mean over problems; every problem needs k <= samples <=
 * EVAL_PASS_AT_K_MAX_SAMPLES and 0 <= correct <= samples (else KPO_ERR,
 * naming the problem). */
int eval_pass_at_k(const problem_count *counts, size_t n, long k, double *out, kpo_error *err);

/* Paired t-test on per-problem accuracy differences a_i - b_i. */
typedef struct paired_test {
    double mean_diff; /* mean of a_i - b_i */
    double std_error; /* sd(d) / sqrt(n) */
    double t;
    double p_value;   /* two-sided, Student t with n - 1 degrees of freedom */
    long df;
} paired_test;

int eval_paired_test(const problem_count *a, const problem_count *b, size_t n, paired_test *out,
                     kpo_error *err);

/* Percentile bootstrap over problems (resampled with replacement, the same
 * problems for every arm, Philox stream from seed). */
typedef struct bootstrap_ci {
    double estimate;  /* on the original problems */
    double low, high; /* the central `level` interval */
    double frac_le_zero; /* share of resamples <= 0 (for the difference) */
} bootstrap_ci;

/* Difference of avg accuracies a - b. */
int eval_bootstrap_diff(const problem_count *a, const problem_count *b, size_t n,
                        long resamples, uint64_t seed, double level, bootstrap_ci *out,
                        kpo_error *err);

/* Gap recovered, 100 (a - b) / (ref - b) in percent: how much of the
 * distance from baseline b to reference ref arm a covers. */
int eval_bootstrap_gap(const problem_count *a, const problem_count *b, const problem_count *ref,
                       size_t n, long resamples, uint64_t seed, double level, bootstrap_ci *out,
                       kpo_error *err);

/* Two-sided p-value of Student's t with df degrees of freedom. */
double eval_student_t_p(double t, double df);

#endif
