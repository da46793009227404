/* Moving a step's data between roles: the rollout batch from rollout ranks
 * to everyone, and the weights from learner rank 0 to the rollout ranks. */
#ifndef KPO_COMM_COMM_BATCH_H
#define KPO_COMM_COMM_BATCH_H

#include <mpi.h>

#include "core/error.h"
#include "learner/rl_batch.h"
#include "model/model.h"

/* Every rank passes its local responses (none on a learner-only rank) and
 * receives all of them, concatenated in rank order. */
int comm_allgather_batch(MPI_Comm comm, const rl_batch *local, rl_batch *full, kpo_error *err);

/* Broadcasts the weights from rank 0 of comm, in pieces MPI's int counts
 * can carry. */
int comm_broadcast_weights(MPI_Comm comm, model_weights *weights, kpo_error *err);

#endif
