/* Rank 1 hits a fatal error while the other ranks wait in a barrier. */
#include <mpi.h>
#include <time.h>

#include "comm/comm_roles.h"

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank == 1) {
        struct timespec pause = {0, 200000000L};
        nanosleep(&pause, NULL);
        comm_abort_all("injected failure");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    MPI_Finalize();
    return 0;
}
