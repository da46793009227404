/* The host-staged GPU collectives (src/comm/comm_host_staged.c) under
 * mpirun, any number of ranks on however many GPUs (several ranks on one
 * GPU is the case they exist for): device placement and ids, bucketed
 * all-reduce against exact sums, the bf16 broadcast from every root, the
 * learner_comm. Without a usable GPU every rank must fail init alike
 * (checked), then the suite skips. Rank 0 reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "comm/comm_gpu_device.h"
#include "comm/comm_host_staged.h"
#include "kpo_config.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#include "mpi_gpu_test.h"

static int rank, size, usable, device = -1;
static comm_host_staged *staged;

static void test_init_agrees(void **state)
{
    (void)state;
    kpo_error err;
    int status = comm_gpu_select_device(MPI_COMM_WORLD, &device, &err);
    if (status == KPO_OK)
        status = comm_host_staged_init(&staged, MPI_COMM_WORLD, &err);
    else
        assert_int_equal(comm_host_staged_init(&staged, MPI_COMM_WORLD, &err), KPO_ERR);
    mpi_gpu_init_agreed(status, &usable, staged, err.message);
    print_message("host-staged communicator over %d rank(s), rank 0 on GPU %d\n", size, device);
}

#if KPO_HAVE_CUDA
/* Ranks on one node take GPU (local rank mod GPUs): the ids say exactly
 * which share, and the model-creation rounds are ranks per GPU. */
static void test_device_ids_show_sharing(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    kpo_error err;
    char mine[COMM_GPU_ID_MAX];
    if (comm_gpu_device_id(device, mine, &err))
        fail_msg("%s", err.message);
    assert_non_null(strchr(mine, '/'));
    comm_gpu_ids ids;
    assert_int_equal(comm_gpu_ids_gather(MPI_COMM_WORLD, mine, &ids, &err), KPO_OK);
    assert_int_equal(ids.n, size);
    assert_string_equal(ids.ids[rank], mine);
    int count = 0;
    assert_int_equal(cudaGetDeviceCount(&count), 0);
    int node_size = 0;
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_size);
    MPI_Comm_free(&node);
    if (node_size == size) /* one node: ranks per GPU is ceil(size / count) */
        assert_int_equal(comm_gpu_share_rounds(ids.ids, size), (size + count - 1) / count);
    print_message("%d rank(s) on %d GPU(s): rank 0 on %s, %d model-creation round(s)\n", size,
                  count, ids.ids[0], comm_gpu_share_rounds(ids.ids, size));
    comm_gpu_ids_free(&ids);
}

/* Small integers: every float sum is exact in any order. A 1000-float
 * bucket makes n span several buckets, the last one partial. */
static void test_sum_floats_bucketed(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    enum { N = 2500 + 7 };
    static float host[N];
    float *dev;
    for (int i = 0; i < N; i++)
        host[i] = (float)(rank * 10 + i % 97);
    assert_int_equal(cudaMalloc((void **)&dev, sizeof host), 0);
    assert_int_equal(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice), 0);
    kpo_error err;
    assert_int_equal(comm_host_staged_set_bucket_bytes(staged, 1000 * sizeof(float), &err), 0);
    if (comm_host_staged_sum_floats(staged, dev, N, &err))
        fail_msg("%s", err.message);
    assert_int_equal(cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost), 0);
    double rank_sum = 10.0 * size * (size - 1) / 2;
    for (int i = 0; i < N; i++)
        if (host[i] != (float)(rank_sum + size * (i % 97)))
            fail_msg("element %d: %g, expected %g", i, host[i], rank_sum + size * (i % 97));
    assert_int_equal(comm_host_staged_sum_floats(staged, dev, 0, &err), KPO_OK);
    assert_int_equal(comm_host_staged_set_bucket_bytes(staged,
                                                       COMM_HOST_STAGED_DEFAULT_BUCKET_BYTES,
                                                       &err), 0);
    cudaFree(dev);
}

/* From the first and the last rank, over several buckets (1000 bytes:
 * 500 values each): receivers end with the root's bits, the root keeps
 * its own. */
static void test_broadcast_bf16(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    enum { N = 4099 };
    static uint16_t host[N];
    uint16_t *dev;
    kpo_error err;
    assert_int_equal(cudaMalloc((void **)&dev, sizeof host), 0);
    assert_int_equal(comm_host_staged_set_bucket_bytes(staged, 1000, &err), 0);
    for (int root = 0; root < size; root += size > 1 ? size - 1 : 1) {
        for (int i = 0; i < N; i++)
            host[i] = (uint16_t)(rank == root ? (i * 31 + root) & 0xffff : 0xdead);
        assert_int_equal(cudaMemcpy(dev, host, sizeof host, cudaMemcpyHostToDevice), 0);
        if (comm_host_staged_broadcast_bf16(staged, dev, N, root, &err))
            fail_msg("%s", err.message);
        assert_int_equal(cudaMemcpy(host, dev, sizeof host, cudaMemcpyDeviceToHost), 0);
        for (int i = 0; i < N; i++)
            assert_int_equal(host[i], (uint16_t)((i * 31 + root) & 0xffff));
    }
    assert_int_equal(comm_host_staged_broadcast_bf16(staged, dev, N, size, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "root"));
    assert_int_equal(comm_host_staged_set_bucket_bytes(staged,
                                                       COMM_HOST_STAGED_DEFAULT_BUCKET_BYTES,
                                                       &err), 0);
    cudaFree(dev);
}

/* sum_floats on device memory through the host; the rest on host memory
 * through MPI, from the same context pointer. */
static void test_learner_comm(void **state)
{
    (void)state;
    SKIP_UNLESS_USABLE();
    check_learner_comm(comm_learner_host_staged(staged), rank, size);
}
#endif

int main(int argc, char **argv)
{
    if (mpi_gpu_test_start(&argc, &argv, &rank, &size))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_agrees),
#if KPO_HAVE_CUDA
        cmocka_unit_test(test_device_ids_show_sharing),
        cmocka_unit_test(test_sum_floats_bucketed),
        cmocka_unit_test(test_broadcast_bf16),
        cmocka_unit_test(test_learner_comm),
#endif
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    comm_host_staged_free(staged);
    return mpi_gpu_test_finish(failed, usable);
}
