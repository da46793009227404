/* Two-sample tests on accuracies (algorithms.md §6). */
#ifndef KPO_STATS_PROPORTION_TEST_H
#define KPO_STATS_PROPORTION_TEST_H

#include "core/error.h"

typedef struct proportion_test {
    double z;          /* (p1 - p2) / SE */
    double p_value;    /* two-sided, erfc(|z| / sqrt 2) */
    double pooled;     /* pooled proportion (x1 + x2) / (n1 + n2) */
    double std_error;  /* sqrt(pooled (1 - pooled) (1/n1 + 1/n2)) */
    double difference; /* p1 - p2 */
} proportion_test;

/* Pooled two-proportion z-test. p in [0, 1]; n > 0 (counts of trials, which
 * need not be integers when they come from averaged samples). */
int proportion_test_pooled(double p1, double n1, double p2, double n2, proportion_test *out,
                           kpo_error *err);

#endif
