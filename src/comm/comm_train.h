/* The small collectives of `kpo train`'s loop and start-up (MPI's start
 * and end are comm_world.h's): a rank or size, a value from rank 0,
 * element-wise sums and maxima, and the stop flag every rank must agree on. */
#ifndef KPO_COMM_COMM_TRAIN_H
#define KPO_COMM_COMM_TRAIN_H

#include <stdint.h>

#include <mpi.h>

/* This process's rank in comm, and how many ranks comm has. */
int comm_rank(MPI_Comm comm);
int comm_size(MPI_Comm comm);

/* Collective over comm: rank 0's value, on every rank. */
int64_t comm_broadcast_int64(MPI_Comm comm, int64_t value);

/* Collective over comm: values[n] replaced by their element-wise sum
 * (comm_sum_doubles) or maximum (comm_max_doubles) over every rank. */
void comm_sum_doubles(MPI_Comm comm, double *values, int n);
void comm_max_doubles(MPI_Comm comm, double *values, int n);

/* Collective over comm: the largest flag of any rank, so nonzero on every
 * rank when any rank's flag is. */
int comm_any_flag(MPI_Comm comm, int flag);

#endif
