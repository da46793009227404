/* What the learner needs from its peers, as three reductions. MPI provides
 * them across learner ranks (src/comm/comm_learner.c); a single process
 * uses learner_comm_single(), where each is the identity. Keeping MPI out
 * of the learner lets it build and be tested without MPI. */
#ifndef KPO_LEARNER_LEARNER_COMM_H
#define KPO_LEARNER_LEARNER_COMM_H

#include <stdint.h>

#include "core/error.h"
#include "filter/innov_stats.h"

typedef struct learner_comm {
    void *context;
    int rank, size;
    /* In-place sums across learners (every learner gets the result). */
    int (*sum_floats)(void *context, float *data, int64_t n, kpo_error *err);
    int (*sum_doubles)(void *context, double *data, int64_t n, kpo_error *err);
    int (*max_doubles)(void *context, double *data, int64_t n, kpo_error *err);
    /* In-place merge of accumulators across learners. */
    int (*merge_stats)(void *context, innov_stats *stats, int n, kpo_error *err);
} learner_comm;

learner_comm learner_comm_single(void);

#endif
