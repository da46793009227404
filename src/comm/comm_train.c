/* comm_train.h: the collectives kpo train's loop and start-up use, so the
 * loop and the command keep no MPI call of their own. */
#include "comm/comm_train.h"

int comm_rank(MPI_Comm comm)
{
    int rank; /* which rank reports and writes (rank 0 of world) */
    MPI_Comm_rank(comm, &rank);
    return rank;
}

int comm_size(MPI_Comm comm)
{
    int n; /* how many ranks a communicator spans, for the transport lines */
    MPI_Comm_size(comm, &n);
    return n;
}

int64_t comm_broadcast_int64(MPI_Comm comm, int64_t value)
{
    /* Rank 0 decides (the resume step); the others learn its answer. */
    long long v = value;
    MPI_Bcast(&v, 1, MPI_LONG_LONG, 0, comm);
    return v;
}

void comm_sum_doubles(MPI_Comm comm, double *values, int n)
{
    /* Per-rank counters into job totals, the same on every rank. */
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, comm);
}

void comm_max_doubles(MPI_Comm comm, double *values, int n)
{
    /* The slowest rank's time and the longest response set the step's. */
    MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_MAX, comm);
}

int comm_any_flag(MPI_Comm comm, int flag)
{
    /* One rank's signal stops every rank at the same step. */
    MPI_Allreduce(MPI_IN_PLACE, &flag, 1, MPI_INT, MPI_MAX, comm);
    return flag;
}
