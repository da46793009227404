/* cmocka under MPI: every rank runs the same (collective) tests; only rank
 * 0 prints, and the job fails when any rank failed. */
#ifndef KPO_TESTS_MPI_TEST_H
#define KPO_TESTS_MPI_TEST_H

#include <mpi.h>
#include <stdio.h>

/* MPI_Init, then silence stdout on ranks other than 0. Returns the rank,
 * or -1 when stdout could not be redirected. */
static inline int mpi_test_begin(int *argc, char ***argv)
{
    int rank;
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank != 0 && !freopen("/dev/null", "w", stdout))
        return -1;
    return rank;
}

/* The job's verdict from every rank's cmocka result; finalizes MPI. */
static inline int mpi_test_end(int failed)
{
    int any = 0;
    MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
