/* What the gpu suite's two MPI collective tests (test_gpu_nccl.c,
 * test_gpu_host_staged.c) share: MPI start-up with rank 0 reporting, the
 * check that every rank's communicator init agreed, the skip of a test
 * without a usable GPU, the learner_comm check, and the exit code (77,
 * meson's SKIP, when no rank had a GPU). Include it after <cmocka.h>,
 * <mpi.h> and the communicator's header (learner_comm, innov_stats); the
 * learner_comm check needs <cuda_runtime_api.h> before it. Everything is
 * static inline. The including file defines `usable`. */
#ifndef KPO_TESTS_GPU_MPI_GPU_TEST_H
#define KPO_TESTS_GPU_MPI_GPU_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

/* MPI_Init, this rank and the world's size; ranks other than 0 print
 * nothing. Returns 0, or 1 if stdout could not be redirected. */
static inline int mpi_gpu_test_start(int *argc, char ***argv, int *rank, int *size)
{
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, rank);
    MPI_Comm_size(MPI_COMM_WORLD, size);
    return *rank != 0 && !freopen("/dev/null", "w", stdout);
}

/* Every rank's init status must be alike (no rank may proceed alone).
 * Sets *usable to whether init succeeded; if not, checks the communicator
 * is NULL, prints the reason ("no usable GPU: ..." whether or not the
 * library's message already starts so) and skips the test. */
static inline void mpi_gpu_init_agreed(int status, int *usable, const void *communicator,
                                       const char *message)
{
    int lo = 0, hi = 0;
    MPI_Allreduce(&status, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&status, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    assert_int_equal(lo, hi); /* every rank alike */
    *usable = status == KPO_OK;
    if (!*usable) {
        assert_null(communicator);
        print_message("%s%s\n", strncmp(message, "no usable GPU", 13) ? "no usable GPU: " : "",
                      message);
        skip();
    }
}

#define SKIP_UNLESS_USABLE()                                                   \
    do {                                                                       \
        if (!usable) {                                                         \
            print_message("no usable GPU: see test_init_agrees\n");            \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* After the tests: MPI_Finalize, then the exit code: 1 if any rank
 * failed, else 0 if every rank was usable, else 77 (meson's SKIP, so a run
 * without GPUs says so in its summary). */
static inline int mpi_gpu_test_finish(int failed, int usable_here)
{
    int any_failed = 0, all_usable = 0;
    MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&usable_here, &all_usable, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Finalize();
    return any_failed ? 1 : all_usable ? 0 : 77;
}

#ifdef CUDART_VERSION
/* lc's sum_floats on device memory; its doubles, maximum and statistics
 * merge on host memory, from the same context pointer. */
static inline void check_learner_comm(learner_comm lc, int rank, int size)
{
    assert_int_equal(lc.rank, rank);
    assert_int_equal(lc.size, size);
    kpo_error err;
    float one = 1.0f, *dev;
    assert_int_equal(cudaMalloc((void **)&dev, sizeof one), 0);
    assert_int_equal(cudaMemcpy(dev, &one, sizeof one, cudaMemcpyHostToDevice), 0);
    assert_int_equal(lc.sum_floats(lc.context, dev, 1, &err), KPO_OK);
    assert_int_equal(cudaMemcpy(&one, dev, sizeof one, cudaMemcpyDeviceToHost), 0);
    assert_true(one == (float)size);
    cudaFree(dev);
    double d[2] = {rank + 0.5, -rank};
    assert_int_equal(lc.sum_doubles(lc.context, d, 2, &err), KPO_OK);
    assert_true(d[0] == size * (size - 1) / 2.0 + 0.5 * size);
    double m = rank;
    assert_int_equal(lc.max_doubles(lc.context, &m, 1, &err), KPO_OK);
    assert_true(m == size - 1);
    innov_stats s;
    innov_stats_init(&s);
    innov_stats_add(&s, rank, 1.0, 0.5, INFINITY, 0);
    assert_int_equal(lc.merge_stats(lc.context, &s, 1, &err), KPO_OK);
    assert_true(s.count == size);
}
#endif

#endif
