/* NCCL collectives under mpirun, with as many ranks as the node has GPUs
 * (NCCL refuses two ranks on one GPU). Bootstrap agreement, bucketed
 * all-reduce against exact sums, the bf16 broadcast, the learner_comm
 * (NCCL floats, MPI doubles and statistics), and with two GPUs or more a
 * dead peer: the survivor's collective ends within its timeout.
 * Without a usable GPU per rank every rank must still fail init alike
 * (checked), then the suite skips. Rank 0 reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <mpi.h>

#include "comm/comm_nccl.h"
#include "kpo_config.h"

#if KPO_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif
#include "mpi_gpu_test.h"

static int rank, size, usable; /* usable: every rank has a GPU and a communicator */
static comm_nccl *world_nccl;

/* Every rank tries; all must agree on the outcome (no rank may proceed
 * alone). Without GPUs that agreement is the whole test. */
static void test_init_agrees(void **state)
{
    (void)state;
    kpo_error err;
    int device = -1;
    int status = comm_nccl_select_device(MPI_COMM_WORLD, &device, &err);
    if (status == KPO_OK)
        status = comm_nccl_init(&world_nccl, MPI_COMM_WORLD, 60.0, &err);
    else
        assert_int_equal(comm_nccl_init(&world_nccl, MPI_COMM_WORLD, 60.0, &err), KPO_ERR);
    mpi_gpu_init_agreed(status, &usable, world_nccl, err.message);
    print_message("NCCL communicator over %d rank(s), rank 0 on GPU %d\n", size, device);
}

#if KPO_HAVE_NCCL
/* Values are small integers, so every float sum is exact whatever the
 * order NCCL adds in. A 1000-float bucket makes n span several buckets. */
static void test_sum_floats_bucketed(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    const int64_t n = 2500 + 7;
    float host[2507], *dev;
    for (int64_t i = 0; i < n; i++)
        host[i] = (float)(rank * 10 + i % 97);
    assert_int_equal(cudaMalloc((void **)&dev, sizeof host), 0);
    assert_int_equal(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice), 0);
    comm_nccl_set_bucket_bytes(world_nccl, 1000 * sizeof(float));
    kpo_error err;
    if (comm_nccl_sum_floats(world_nccl, dev, n, &err))
        fail_msg("%s", err.message);
    assert_int_equal(cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost), 0);
    double rank_sum = 10.0 * size * (size - 1) / 2;
    for (int64_t i = 0; i < n; i++)
        if (host[i] != (float)(rank_sum + size * (i % 97)))
            fail_msg("element %lld: %g, expected %g", (long long)i, host[i],
                     rank_sum + size * (i % 97));
    comm_nccl_set_bucket_bytes(world_nccl, COMM_NCCL_DEFAULT_BUCKET_BYTES);
    cudaFree(dev);
}

static void test_broadcast_bf16(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    enum { N = 4099 };
    static uint16_t host[N];
    uint16_t *dev;
    assert_int_equal(cudaMalloc((void **)&dev, sizeof host), 0);
    for (int root = 0; root < size; root += size > 1 ? size - 1 : 1) {
        for (int i = 0; i < N; i++)
            host[i] = (uint16_t)(rank == root ? (i * 31 + root) & 0xffff : 0xdead);
        assert_int_equal(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice), 0);
        kpo_error err;
        if (comm_nccl_broadcast_bf16(world_nccl, dev, N, root, &err))
            fail_msg("%s", err.message);
        assert_int_equal(cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(host[i], (uint16_t)((i * 31 + root) & 0xffff));
    }
    cudaFree(dev);
}

/* sum_floats on device memory through NCCL; the rest on host memory
 * through MPI, from the same context pointer. */
static void test_learner_comm(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    check_learner_comm(comm_learner_nccl(world_nccl), rank, size);
}

/* Rank 1 "dies" (aborts its communicator and never joins the collective):
 * rank 0's all-reduce must come back with an error within its timeout
 * instead of hanging. Needs two GPUs. Runs last: it breaks the comm. */
static void test_dead_peer_times_out(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    if (size < 2) {
        print_message("dead-peer timeout needs 2 ranks on 2 GPUs; this run has %d\n", size);
        skip();
    }
    comm_nccl *c;
    kpo_error err;
    assert_int_equal(comm_nccl_init(&c, MPI_COMM_WORLD, 5.0, &err), KPO_OK);
    float *dev;
    assert_int_equal(cudaMalloc((void **)&dev, 1024 * sizeof(float)), 0);
    int status = KPO_OK;
    double elapsed = 0;
    if (rank == 1) {
        comm_nccl_abort(c);
    } else {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        status = comm_nccl_sum_floats(c, dev, 1024, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        elapsed = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    comm_nccl_free(c);
    cudaFree(dev);
    int bad = rank != 1 && status == KPO_OK, any_bad = 0;
    MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        print_message("survivor's all-reduce returned after %.1f s: %s\n", elapsed,
                      status == KPO_OK ? "success?!" : err.message);
    assert_int_equal(any_bad, 0);
    assert_true(elapsed < 5.0 + 10.0);
}
#endif

int main(int argc, char **argv)
{
    if (mpi_gpu_test_start(&argc, &argv, &rank, &size))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_agrees),
#if KPO_HAVE_NCCL
        cmocka_unit_test(test_sum_floats_bucketed),
        cmocka_unit_test(test_broadcast_bf16),
        cmocka_unit_test(test_learner_comm),
        cmocka_unit_test(test_dead_peer_times_out),
#endif
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    comm_nccl_free(world_nccl);
    return mpi_gpu_test_finish(failed, usable);
}
