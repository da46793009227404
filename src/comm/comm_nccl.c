/* NCCL communicators over MPI with a deadline on every wait. See
 * comm_nccl.h for the contract and docs/cuda.md for the design. */
#include "comm/comm_nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "comm/comm_learner.h"
#include "comm/comm_roles.h"
#include "core/cuda_check.h"

struct comm_nccl {
    /* First member: comm_learner_nccl hands &c->mpi to the MPI fallbacks as
     * their context, which they read as an MPI_Comm *. */
    MPI_Comm mpi;
    ncclComm_t nccl;
    int rank, size;
    int broken;             /* aborted after an error or timeout: every call fails */
    double timeout_s;
    int64_t bucket_elems;   /* floats per all-reduce bucket */
    cudaStream_t stream;
    cudaEvent_t done;       /* recorded after each collective, polled by waits */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void pause_briefly(void)
{
    struct timespec ts = {0, 100000}; /* 0.1 ms: far below any collective's deadline */
    nanosleep(&ts, NULL);
}

void comm_nccl_abort(comm_nccl *c)
{
    if (!c || c->broken)
        return;
    c->broken = 1;
    if (c->nccl)
        ncclCommAbort(c->nccl); /* frees the communicator: never touch it again */
}

/* Every failure path: abort the communicator so no GPU kernel or proxy
 * thread keeps waiting, and say what failed. */
static int fail(comm_nccl *c, kpo_error *err, const char *what, const char *why)
{
    const char *detail = c->nccl ? ncclGetLastError(c->nccl) : NULL;
    error_set(err, "NCCL %s on rank %d of %d: %s%s%s", what, c->rank, c->size, why,
              detail && *detail ? ": " : "", detail && *detail ? detail : "");
    comm_nccl_abort(c);
    return KPO_ERR;
}

static int fail_timeout(comm_nccl *c, kpo_error *err, const char *what)
{
    char why[160];
    snprintf(why, sizeof why, "did not complete within %.0f s (a peer is dead, hung or "
                              "elsewhere in the program); aborting the communicator",
             c->timeout_s);
    return fail(c, err, what, why);
}

/* The communicator's own state, polled until it leaves ncclInProgress:
 * what a non-blocking init or enqueue returns while NCCL works. */
static int wait_ready(comm_nccl *c, const char *what, kpo_error *err)
{
    const double deadline = now_seconds() + c->timeout_s;
    for (;;) {
        ncclResult_t state = ncclInProgress;
        ncclResult_t rc = ncclCommGetAsyncError(c->nccl, &state);
        if (rc != ncclSuccess)
            return fail(c, err, what, ncclGetErrorString(rc));
        if (state == ncclSuccess)
            return KPO_OK;
        if (state != ncclInProgress)
            return fail(c, err, what, ncclGetErrorString(state));
        if (now_seconds() > deadline)
            return fail_timeout(c, err, what);
        pause_briefly();
    }
}

/* Checks what an NCCL call returned (ncclInProgress: wait until ready). */
static int nccl_result(comm_nccl *c, ncclResult_t rc, const char *what, kpo_error *err)
{
    if (rc == ncclSuccess)
        return KPO_OK;
    if (rc == ncclInProgress)
        return wait_ready(c, what, err);
    return fail(c, err, what, ncclGetErrorString(rc));
}

int comm_nccl_wait(comm_nccl *c, kpo_error *err)
{
    if (c->broken)
        return error_set(err, "NCCL communicator was aborted after an earlier error");
    if (cuda_check(cudaEventRecord(c->done, c->stream), "NCCL wait", err))
        return KPO_ERR;
    const double deadline = now_seconds() + c->timeout_s;
    for (;;) {
        cudaError_t q = cudaEventQuery(c->done);
        if (q == cudaSuccess)
            return KPO_OK;
        if (q != cudaErrorNotReady)
            return fail(c, err, "wait", cudaGetErrorString(q));
        ncclResult_t state = ncclSuccess;
        ncclCommGetAsyncError(c->nccl, &state);
        if (state != ncclSuccess && state != ncclInProgress)
            return fail(c, err, "collective", ncclGetErrorString(state));
        if (now_seconds() > deadline)
            return fail_timeout(c, err, "collective");
        pause_briefly();
    }
}

int comm_nccl_select_device(MPI_Comm world, int *device, kpo_error *err)
{
    int local = comm_local_rank(world), count = 0;
    *device = -1;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0)
        return error_set(err, "no usable GPU: %s",
                         status != cudaSuccess ? cudaGetErrorString(status) : "no devices");
    if (local >= count)
        return error_set(err, "no usable GPU: local rank %d has no GPU of its own (%d on this "
                              "node); run at most %d rank(s) per node", local, count, count);
    if (cuda_check(cudaSetDevice(local), "selecting the rank's GPU", err))
        return KPO_ERR;
    *device = local;
    return KPO_OK;
}

static int local_setup(comm_nccl *c, kpo_error *err)
{
    if (cuda_require_device(err))
        return KPO_ERR;
    return cuda_check(cudaEventCreateWithFlags(&c->done, cudaEventDisableTiming),
                      "NCCL completion event", err);
}

static int nccl_join(comm_nccl *c, kpo_error *err)
{
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    int status = KPO_OK;
    if (c->rank == 0) {
        ncclResult_t rc = ncclGetUniqueId(&id);
        if (rc != ncclSuccess)
            status = error_set(err, "ncclGetUniqueId: %s", ncclGetErrorString(rc));
    }
    if (comm_agree(c->mpi, status, "NCCL bootstrap", err))
        return KPO_ERR;
    MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, c->mpi);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0; /* so init and every collective can be waited on with a deadline */
    return nccl_result(c, ncclCommInitRankConfig(&c->nccl, c->size, id, c->rank, &config),
                       "init", err);
}

int comm_nccl_init(comm_nccl **out, MPI_Comm comm, double timeout_s, kpo_error *err)
{
    *out = NULL;
    comm_nccl *c = calloc(1, sizeof *c);
    if (!c)
        return error_set(err, "out of memory for an NCCL communicator");
    c->mpi = comm;
    c->timeout_s = timeout_s > 0 ? timeout_s : COMM_NCCL_DEFAULT_TIMEOUT_S;
    c->bucket_elems = COMM_NCCL_DEFAULT_BUCKET_BYTES / (int64_t)sizeof(float);
    MPI_Comm_rank(comm, &c->rank);
    MPI_Comm_size(comm, &c->size);
    int status = local_setup(c, err);
    if (comm_agree(comm, status, "NCCL init", err) == KPO_OK)
        status = nccl_join(c, err);
    else
        status = KPO_ERR;
    /* The NCCL init can fail on some ranks only (e.g. a duplicate GPU is
     * seen late): agree again so nobody goes on alone. */
    if (comm_agree(comm, status, "NCCL init", err) != KPO_OK) {
        comm_nccl_abort(c); /* a communicator made here has no peers to finalize with */
        comm_nccl_free(c);
        return KPO_ERR;
    }
    *out = c;
    return KPO_OK;
}

void comm_nccl_free(comm_nccl *c)
{
    if (!c)
        return;
    if (c->nccl && !c->broken) {
        kpo_error ignored;
        /* Finalize flushes outstanding work (non-blocking: wait for it);
         * a finalize that cannot finish is aborted by wait_ready. */
        if (nccl_result(c, ncclCommFinalize(c->nccl), "finalize", &ignored) == KPO_OK)
            ncclCommDestroy(c->nccl);
    } /* else: aborted already, which freed it */
    if (c->done)
        cudaEventDestroy(c->done);
    free(c);
}

int comm_nccl_rank(const comm_nccl *c)
{
    return c->rank;
}

int comm_nccl_size(const comm_nccl *c)
{
    return c->size;
}

void comm_nccl_set_stream(comm_nccl *c, void *stream)
{
    c->stream = (cudaStream_t)stream;
}

void comm_nccl_set_bucket_bytes(comm_nccl *c, int64_t bytes)
{
    int64_t elems = bytes / (int64_t)sizeof(float);
    c->bucket_elems = elems > 0 ? elems : 1;
}

int comm_nccl_sum_floats_start(comm_nccl *c, float *d_data, int64_t n, kpo_error *err)
{
    if (c->broken)
        return error_set(err, "NCCL communicator was aborted after an earlier error");
    for (int64_t first = 0; first < n; first += c->bucket_elems) {
        int64_t count = n - first < c->bucket_elems ? n - first : c->bucket_elems;
        if (nccl_result(c, ncclAllReduce(d_data + first, d_data + first, (size_t)count,
                                         ncclFloat32, ncclSum, c->nccl, c->stream),
                        "all-reduce", err))
            return KPO_ERR;
    }
    return KPO_OK;
}

int comm_nccl_sum_floats(comm_nccl *c, float *d_data, int64_t n, kpo_error *err)
{
    if (comm_nccl_sum_floats_start(c, d_data, n, err))
        return KPO_ERR;
    return comm_nccl_wait(c, err);
}

int comm_nccl_broadcast_bf16(comm_nccl *c, uint16_t *d_data, int64_t n, int root, kpo_error *err)
{
    if (c->broken)
        return error_set(err, "NCCL communicator was aborted after an earlier error");
    if (root < 0 || root >= c->size)
        return error_set(err, "NCCL broadcast: root %d outside 0..%d", root, c->size - 1);
    if (nccl_result(c, ncclBroadcast(d_data, d_data, (size_t)n, ncclBfloat16, root, c->nccl,
                                     c->stream), "broadcast", err))
        return KPO_ERR;
    return comm_nccl_wait(c, err);
}

static int learner_sum_floats(void *context, float *d_data, int64_t n, kpo_error *err)
{
    return comm_nccl_sum_floats((comm_nccl *)context, d_data, n, err);
}

learner_comm comm_learner_nccl(comm_nccl *c)
{
    learner_comm l = comm_learner_mpi(&c->mpi);
    /* &c->mpi == (void *)c: the MPI fallbacks read the MPI_Comm, the NCCL
     * sum reads the whole struct. */
    l.context = c;
    l.sum_floats = learner_sum_floats;
    return l;
}

_Noreturn void comm_nccl_abort_all(comm_nccl *c, const char *message)
{
    comm_nccl_abort(c);
    comm_abort_all(message);
}
