/* GPU placement for run.device = cuda: which device a rank takes, its
 * NCCL-style name, every rank's name, and the per-communicator transport
 * choice. See comm_gpu_device.h. The two cudart calls are behind
 * KPO_HAVE_CUDA; the rest is MPI and strings. */
#include "comm/comm_gpu_device.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_nccl.h"
#include "kpo_config.h"

#if KPO_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"

int comm_gpu_select_device(MPI_Comm world, int *device, kpo_error *err)
{
    int local = comm_local_rank(world), count = 0;
    *device = -1;
    cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess || count == 0)
        return error_set(err, "no usable GPU: %s",
                         status != cudaSuccess ? cudaGetErrorString(status) : "no devices");
    if (cuda_check(cudaSetDevice(local % count), "selecting the rank's GPU", err))
        return KPO_ERR;
    *device = local % count;
    return KPO_OK;
}

int comm_gpu_device_id(int device, char *id, kpo_error *err)
{
    char bus[64] = "", host[COMM_GPU_ID_MAX] = "";
    if (cuda_check(cudaDeviceGetPCIBusId(bus, (int)sizeof bus, device),
                   "reading the GPU's PCI bus id", err))
        return KPO_ERR;
    /* Bus ids repeat across nodes: the host name tells them apart, as
     * NCCL's duplicate-GPU check does. */
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "?");
    snprintf(id, COMM_GPU_ID_MAX, "%.*s/%s", (int)(COMM_GPU_ID_MAX - sizeof bus - 2), host, bus);
    return KPO_OK;
}
#else
int comm_gpu_select_device(MPI_Comm world, int *device, kpo_error *err)
{
    (void)comm_local_rank(world); /* collective: keep the ranks in step */
    *device = -1;
    return error_set(err, "no usable GPU: kpo was built without CUDA");
}

int comm_gpu_device_id(int device, char *id, kpo_error *err)
{
    (void)device;
    id[0] = '\0';
    return error_set(err, "no usable GPU: kpo was built without CUDA");
}
#endif

int comm_gpu_ids_gather(MPI_Comm world, const char *mine, comm_gpu_ids *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    MPI_Comm_size(world, &out->n);
    char own[COMM_GPU_ID_MAX] = "";
    snprintf(own, sizeof own, "%s", mine ? mine : "");
    out->text = calloc((size_t)out->n, sizeof *out->text);
    out->ids = calloc((size_t)out->n, sizeof *out->ids);
    /* Every rank joins the gather even when short of memory, so none waits. */
    int ok = out->text && out->ids, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, world);
    if (!all_ok) {
        comm_gpu_ids_free(out);
        return error_set(err, "out of memory for the ranks' GPU ids");
    }
    MPI_Allgather(own, COMM_GPU_ID_MAX, MPI_CHAR, out->text, COMM_GPU_ID_MAX, MPI_CHAR, world);
    for (int r = 0; r < out->n; r++) {
        out->text[r][COMM_GPU_ID_MAX - 1] = '\0';
        out->ids[r] = out->text[r];
    }
    return KPO_OK;
}

void comm_gpu_ids_free(comm_gpu_ids *ids)
{
    free(ids->text);
    free(ids->ids);
    memset(ids, 0, sizeof *ids);
}

double comm_gpu_share_sum(MPI_Comm world, const comm_gpu_ids *ids, int rank, double mine,
                          int *index, int *n)
{
    /* The ranks on one GPU, as a communicator only for this one total. */
    MPI_Comm device;
    MPI_Comm_split(world, comm_gpu_share_first(ids->ids, rank), rank, &device);
    MPI_Comm_rank(device, index);
    MPI_Comm_size(device, n);
    double all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_DOUBLE, MPI_SUM, device);
    MPI_Comm_free(&device);
    return all;
}

int comm_gpu_choose_for(MPI_Comm comm, MPI_Comm world, const comm_gpu_ids *ids,
                        comm_gpu_mode mode, const char *what, comm_gpu_choice *out,
                        kpo_error *err)
{
    int world_rank, n;
    MPI_Comm_rank(world, &world_rank);
    MPI_Comm_size(comm, &n);
    int *members = malloc((size_t)n * sizeof *members);
    int ok = members != NULL, all_ok = 0;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    if (!all_ok) {
        free(members);
        return error_set(err, "out of memory for the %s communicator's ranks", what);
    }
    MPI_Allgather(&world_rank, 1, MPI_INT, members, 1, MPI_INT, comm);
    int status = comm_gpu_choose_transport(ids->ids, members, n, mode, KPO_HAVE_NCCL, what,
                                           out, err);
    free(members);
    return status;
}
