/* Reduction of innovation statistics across ranks: every learner holds the
 * accumulator of its own tokens; rank `root` receives the accumulator of
 * all of them, exactly as if one rank had seen every token. */
#ifndef KPO_COMM_COMM_INNOV_STATS_H
#define KPO_COMM_COMM_INNOV_STATS_H

#include <mpi.h>

#include "core/error.h"
#include "filter/innov_stats.h"

/* Reduces n accumulators element-wise (e.g. one per mini-batch) onto root.
 * The operation is registered as non-commutative, so MPI combines ranks in
 * rank order and the result does not depend on the network's timing. */
int comm_reduce_innov_stats(MPI_Comm comm, int root, const innov_stats *local,
                            innov_stats *reduced, int n, kpo_error *err);

/* As comm_reduce_innov_stats, but every rank receives the result
 * (in place). */
int comm_allreduce_innov_stats(MPI_Comm comm, innov_stats *stats, int n, kpo_error *err);

#endif
