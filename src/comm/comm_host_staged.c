/* GPU collectives staged through pinned host memory and MPI, for ranks
 * that share a GPU (NCCL refuses them) or run.gpu_comm = host. See
 * comm_host_staged.h for the contract, docs/cuda.md for when it is used. */
#include "comm/comm_host_staged.h"

#include <limits.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "comm/comm_learner.h"
#include "comm/comm_roles.h"
#include "core/cuda_check.h"

struct comm_host_staged {
    /* First member: comm_learner_host_staged hands c to the MPI fallbacks
     * of comm_learner_mpi as their context, which they read as an
     * MPI_Comm *. */
    MPI_Comm mpi;
    int rank, size;
    size_t bucket_bytes;
    void *host; /* pinned, bucket_bytes: copies at full PCIe speed, no staging copy */
};

static int fail_cuda(const comm_host_staged *c, cudaError_t status, const char *op,
                     const char *step, kpo_error *err)
{
    return error_set(err, "host-staged %s on rank %d of %d: %s: CUDA error %d (%s)", op, c->rank,
                     c->size, step, (int)status, cudaGetErrorString(status));
}

static int fail_mpi(const comm_host_staged *c, int rc, const char *op, kpo_error *err)
{
    return error_set(err, "host-staged %s on rank %d of %d: MPI error %d", op, c->rank, c->size,
                     rc);
}

/* A bucket's size in bytes: at least one float, and few enough elements of
 * any type used here that an MPI count (int) holds them. */
static size_t clamp_bucket(int64_t bytes)
{
    if (bytes < (int64_t)sizeof(float))
        return sizeof(float);
    return bytes > (int64_t)INT_MAX ? (size_t)INT_MAX / sizeof(float) * sizeof(float)
                                    : (size_t)bytes / sizeof(float) * sizeof(float);
}

static int alloc_bucket(comm_host_staged *c, size_t bytes, kpo_error *err)
{
    if (c->host)
        cudaFreeHost(c->host);
    c->host = NULL;
    c->bucket_bytes = bytes;
    cudaError_t status = cudaMallocHost(&c->host, bytes);
    if (status != cudaSuccess) {
        c->host = NULL;
        return fail_cuda(c, status, "setup", "allocating the pinned host bucket", err);
    }
    return KPO_OK;
}

int comm_host_staged_init(comm_host_staged **out, MPI_Comm comm, kpo_error *err)
{
    *out = NULL;
    comm_host_staged *c = calloc(1, sizeof *c);
    int status = c ? KPO_OK : error_set(err, "out of memory for a host-staged communicator");
    if (c) {
        c->mpi = comm;
        MPI_Comm_rank(comm, &c->rank);
        MPI_Comm_size(comm, &c->size);
        status = cuda_require_device(err);
        if (status == KPO_OK)
            status = alloc_bucket(c, clamp_bucket(COMM_HOST_STAGED_DEFAULT_BUCKET_BYTES), err);
    }
    if (comm_agree(comm, status, "host-staged GPU communicator", err) != KPO_OK) {
        comm_host_staged_free(c);
        return KPO_ERR;
    }
    *out = c;
    return KPO_OK;
}

void comm_host_staged_free(comm_host_staged *c)
{
    if (!c)
        return;
    if (c->host)
        cudaFreeHost(c->host);
    free(c);
}

int comm_host_staged_set_bucket_bytes(comm_host_staged *c, int64_t bytes, kpo_error *err)
{
    return alloc_bucket(c, clamp_bucket(bytes), err);
}

/* The device data come from kernels on the model's own stream, and a
 * rollout rank's weights may still be read by queued work: finish all of
 * this rank's device work before copying either way. */
static int drain_device(const comm_host_staged *c, const char *op, kpo_error *err)
{
    if (!c->host)
        return error_set(err, "host-staged %s on rank %d of %d: no host bucket (its allocation "
                              "failed)", op, c->rank, c->size);
    cudaError_t status = cudaDeviceSynchronize();
    return status == cudaSuccess ? KPO_OK
                                 : fail_cuda(c, status, op, "waiting for the device", err);
}

int comm_host_staged_sum_floats(comm_host_staged *c, float *d_data, int64_t n, kpo_error *err)
{
    const char *op = "all-reduce";
    if (n < 0 || (n > 0 && !d_data))
        return error_set(err, "host-staged all-reduce: no data (n = %lld)", (long long)n);
    if (drain_device(c, op, err) != KPO_OK)
        return KPO_ERR;
    float *host = c->host;
    const int64_t per = (int64_t)(c->bucket_bytes / sizeof(float));
    for (int64_t first = 0; first < n; first += per) {
        const int count = (int)(n - first < per ? n - first : per);
        const size_t bytes = (size_t)count * sizeof(float);
        cudaError_t status = cudaMemcpy(host, d_data + first, bytes, cudaMemcpyDeviceToHost);
        if (status != cudaSuccess)
            return fail_cuda(c, status, op, "copying a bucket to the host", err);
        int rc = MPI_Allreduce(MPI_IN_PLACE, host, count, MPI_FLOAT, MPI_SUM, c->mpi);
        if (rc != MPI_SUCCESS)
            return fail_mpi(c, rc, op, err);
        /* From pinned memory this copy has finished when it returns, so the
         * next bucket may overwrite the buffer. */
        status = cudaMemcpy(d_data + first, host, bytes, cudaMemcpyHostToDevice);
        if (status != cudaSuccess)
            return fail_cuda(c, status, op, "copying a bucket back to the device", err);
    }
    return KPO_OK;
}

int comm_host_staged_broadcast_bf16(comm_host_staged *c, uint16_t *d_data, int64_t n, int root,
                                    kpo_error *err)
{
    const char *op = "broadcast";
    if (root < 0 || root >= c->size)
        return error_set(err, "host-staged broadcast: root %d outside 0..%d", root, c->size - 1);
    if (n < 0 || (n > 0 && !d_data))
        return error_set(err, "host-staged broadcast: no data (n = %lld)", (long long)n);
    if (drain_device(c, op, err) != KPO_OK)
        return KPO_ERR;
    uint16_t *host = c->host;
    const int64_t per = (int64_t)(c->bucket_bytes / sizeof(uint16_t));
    for (int64_t first = 0; first < n; first += per) {
        const int count = (int)(n - first < per ? n - first : per);
        const size_t bytes = (size_t)count * sizeof(uint16_t);
        cudaError_t status = cudaSuccess;
        if (c->rank == root)
            status = cudaMemcpy(host, d_data + first, bytes, cudaMemcpyDeviceToHost);
        if (status != cudaSuccess)
            return fail_cuda(c, status, op, "copying a bucket to the host", err);
        int rc = MPI_Bcast(host, count, MPI_UINT16_T, root, c->mpi);
        if (rc != MPI_SUCCESS)
            return fail_mpi(c, rc, op, err);
        if (c->rank != root)
            status = cudaMemcpy(d_data + first, host, bytes, cudaMemcpyHostToDevice);
        if (status != cudaSuccess)
            return fail_cuda(c, status, op, "copying a bucket to the device", err);
    }
    return KPO_OK;
}

static int learner_sum_floats(void *context, float *d_data, int64_t n, kpo_error *err)
{
    return comm_host_staged_sum_floats((comm_host_staged *)context, d_data, n, err);
}

learner_comm comm_learner_host_staged(comm_host_staged *c)
{
    learner_comm l = comm_learner_mpi(&c->mpi);
    /* &c->mpi == (void *)c: the MPI fallbacks read the MPI_Comm, the staged
     * sum reads the whole struct. */
    l.context = c;
    l.sum_floats = learner_sum_floats;
    return l;
}
