/* learner_comm's three reductions over an MPI communicator of learners
 * (comm_learner.h). */
#include "comm/comm_learner.h"

#include <limits.h>

#include "comm/comm_innov_stats.h"

/* MPI counts are int: reduce large buffers in pieces. */
enum { PIECE = INT_MAX / 2 };

static int allreduce(void *context, void *data, int64_t n, MPI_Datatype type, size_t size,
                     MPI_Op op, kpo_error *err)
{
    MPI_Comm comm = *(MPI_Comm *)context;
    for (int64_t first = 0; first < n; first += PIECE) {
        int count = (int)(n - first < PIECE ? n - first : PIECE);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)data + (size_t)first * size, count, type, op,
                               comm);
        if (rc != MPI_SUCCESS)
            return error_set(err, "learner all-reduce failed (MPI error %d)", rc);
    }
    return KPO_OK;
}

static int sum_floats(void *context, float *data, int64_t n, kpo_error *err)
{
    return allreduce(context, data, n, MPI_FLOAT, sizeof *data, MPI_SUM, err);
}

static int sum_doubles(void *context, double *data, int64_t n, kpo_error *err)
{
    return allreduce(context, data, n, MPI_DOUBLE, sizeof *data, MPI_SUM, err);
}

static int max_doubles(void *context, double *data, int64_t n, kpo_error *err)
{
    return allreduce(context, data, n, MPI_DOUBLE, sizeof *data, MPI_MAX, err);
}

static int merge_stats(void *context, innov_stats *stats, int n, kpo_error *err)
{
    return comm_allreduce_innov_stats(*(MPI_Comm *)context, stats, n, err);
}

learner_comm comm_learner_mpi(MPI_Comm *learners)
{
    learner_comm c = {learners, 0, 1, sum_floats, sum_doubles, max_doubles, merge_stats};
    MPI_Comm_rank(*learners, &c.rank);
    MPI_Comm_size(*learners, &c.size);
    return c;
}
