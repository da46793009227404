/* comm_world.h over MPI_COMM_WORLD, or for one process when the build has
 * no MPI. */
#include "comm/comm_world.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kpo_config.h"
#if KPO_HAVE_MPI
#include <mpi.h>

#include "comm/comm_nccl.h"
#include "comm/comm_roles.h"

void comm_world_init(int *argc, char ***argv, int *rank, int *size)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
}

void comm_world_finalize(void)
{
    MPI_Finalize();
}

int comm_world_first_failure(int failed)
{
    const int first = comm_first_failure(MPI_COMM_WORLD, failed ? KPO_ERR : KPO_OK);
    return first == COMM_NO_FAILURE ? -1 : first;
}

int comm_world_select_gpu(int *gpu, kpo_error *err)
{
    return comm_nccl_select_device(MPI_COMM_WORLD, gpu, err);
}

void comm_world_sum_to_root(int64_t *values, int64_t n)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    /* Chunks below INT_MAX elements: MPI counts are int. */
    for (int64_t at = 0; at < n; at += 1 << 30) {
        int count = (int)(n - at < (1 << 30) ? n - at : (1 << 30));
        if (rank == 0)
            MPI_Reduce(MPI_IN_PLACE, values + at, count, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
        else
            MPI_Reduce(values + at, NULL, count, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    }
}

/* Rank 0's arrays for size parts, each NUL-terminated, lengths given. */
static int alloc_parts(int size, const int64_t *lens, char ***parts, kpo_error *err)
{
    *parts = calloc((size_t)size, sizeof **parts);
    for (int r = 0; *parts && r < size; r++)
        if (!((*parts)[r] = malloc((size_t)lens[r] + 1)))
            return error_set(err, "out of memory gathering %lld bytes", (long long)lens[r]);
    return *parts ? KPO_OK : error_set(err, "out of memory");
}

int comm_world_gather_bytes(const char *mine, int64_t n, char ***parts, int64_t **lens,
                           kpo_error *err)
{
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int64_t *all = rank == 0 ? malloc((size_t)size * sizeof *all) : NULL;
    if (rank == 0 && !all)
        comm_world_abort("out of memory gathering lengths");
    MPI_Gather(&n, 1, MPI_INT64_T, all, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    /* Chunks below INT_MAX bytes: MPI counts are int. */
    const int64_t step = (int64_t)1 << 30;
    if (rank != 0) {
        for (int64_t at = 0; at < n; at += step)
            MPI_Send(mine + at, (int)(n - at < step ? n - at : step), MPI_CHAR, 0, 7,
                     MPI_COMM_WORLD);
        return KPO_OK;
    }
    *lens = all;
    /* Rank 0 cannot refuse the others' messages without leaving them
     * waiting, so a failure here ends the job. */
    if (alloc_parts(size, all, parts, err) != KPO_OK)
        comm_world_abort(err->message);
    memcpy((*parts)[0], mine, (size_t)n);
    for (int r = 1; r < size; r++)
        for (int64_t at = 0; at < all[r]; at += step)
            MPI_Recv((*parts)[r] + at, (int)(all[r] - at < step ? all[r] - at : step), MPI_CHAR,
                     r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    for (int r = 0; r < size; r++)
        (*parts)[r][all[r]] = '\0';
    return KPO_OK;
}

_Noreturn void comm_world_abort(const char *message)
{
    comm_abort_all(message);
}

#else

void comm_world_init(int *argc, char ***argv, int *rank, int *size)
{
    (void)argc;
    (void)argv;
    *rank = 0;
    *size = 1;
}

void comm_world_finalize(void)
{
}

int comm_world_first_failure(int failed)
{
    return failed ? 0 : -1;
}

int comm_world_select_gpu(int *gpu, kpo_error *err)
{
    (void)err;
    *gpu = 0;
    return KPO_OK;
}

void comm_world_sum_to_root(int64_t *values, int64_t n)
{
    (void)values;
    (void)n;
}

int comm_world_gather_bytes(const char *mine, int64_t n, char ***parts, int64_t **lens,
                           kpo_error *err)
{
    *parts = calloc(1, sizeof **parts);
    *lens = malloc(sizeof **lens);
    if (!*parts || !*lens || !((*parts)[0] = malloc((size_t)n + 1)))
        return error_set(err, "out of memory gathering %lld bytes", (long long)n);
    memcpy((*parts)[0], mine, (size_t)n);
    (*parts)[0][n] = '\0';
    (*lens)[0] = n;
    return KPO_OK;
}

_Noreturn void comm_world_abort(const char *message)
{
    fprintf(stderr, "kpo: %s\n", message);
    exit(1);
}

#endif
