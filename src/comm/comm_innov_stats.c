/* Innovation statistics merged across ranks over MPI, exactly as if one
 * rank had seen every token (comm_innov_stats.h). */
#include "comm/comm_innov_stats.h"

#include <stdlib.h>

/* MPI's contract: inout <- in (op) inout, where `in` comes from the lower
 * ranks. Merging is symmetric in exact arithmetic; the order only decides
 * rounding, which the non-commutative registration pins down. */
static void merge_records(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    double *lower = in, *upper = inout;
    for (int r = 0; r < *len; r++) {
        double merged[INNOV_STATS_FLAT_LEN];
        for (int k = 0; k < INNOV_STATS_FLAT_LEN; k++)
            merged[k] = lower[(size_t)r * INNOV_STATS_FLAT_LEN + k];
        innov_stats_merge_flat(merged, upper + (size_t)r * INNOV_STATS_FLAT_LEN, 1);
        for (int k = 0; k < INNOV_STATS_FLAT_LEN; k++)
            upper[(size_t)r * INNOV_STATS_FLAT_LEN + k] = merged[k];
    }
}

/* root < 0: MPI_Allreduce into `reduced` on every rank. */
static int reduce_records(MPI_Comm comm, int root, const innov_stats *local, innov_stats *reduced,
                          int n, kpo_error *err)
{
    double *send = malloc((size_t)n * INNOV_STATS_FLAT_LEN * sizeof *send);
    double *recv = malloc((size_t)n * INNOV_STATS_FLAT_LEN * sizeof *recv);
    if (!send || !recv) {
        free(send);
        free(recv);
        return error_set(err, "innovation statistics reduction: out of memory");
    }
    for (int r = 0; r < n; r++)
        innov_stats_to_flat(&local[r], send + (size_t)r * INNOV_STATS_FLAT_LEN);
    MPI_Datatype record;
    MPI_Op op;
    MPI_Type_contiguous(INNOV_STATS_FLAT_LEN, MPI_DOUBLE, &record);
    MPI_Type_commit(&record);
    MPI_Op_create(merge_records, 0, &op);
    int rc = root < 0 ? MPI_Allreduce(send, recv, n, record, op, comm)
                      : MPI_Reduce(send, recv, n, record, op, root, comm);
    MPI_Op_free(&op);
    MPI_Type_free(&record);
    int rank;
    MPI_Comm_rank(comm, &rank);
    if (rc == MPI_SUCCESS && (root < 0 || rank == root))
        for (int r = 0; r < n; r++)
            innov_stats_from_flat(&reduced[r], recv + (size_t)r * INNOV_STATS_FLAT_LEN);
    free(send);
    free(recv);
    if (rc != MPI_SUCCESS)
        return error_set(err, "innovation statistics reduction: MPI failed (%d)", rc);
    return KPO_OK;
}

int comm_reduce_innov_stats(MPI_Comm comm, int root, const innov_stats *local,
                            innov_stats *reduced, int n, kpo_error *err)
{
    return reduce_records(comm, root, local, reduced, n, err);
}

int comm_allreduce_innov_stats(MPI_Comm comm, innov_stats *stats, int n, kpo_error *err)
{
    return reduce_records(comm, -1, stats, stats, n, err);
}
