/* Where a rank's GPU is and who else is on it, for run.device = cuda:
 * selecting the device (several ranks may share one), naming it the way
 * NCCL does (host and PCI bus id), gathering every rank's name, and the
 * run.gpu_comm decision for one communicator (comm_gpu_transport.h).
 * Without CUDA the selection fails with "no usable GPU: ..." and the rest
 * still works (it is MPI and strings). */
#ifndef KPO_COMM_COMM_GPU_DEVICE_H
#define KPO_COMM_COMM_GPU_DEVICE_H

#include <mpi.h>

#include "comm/comm_gpu_transport.h"
#include "core/error.h"

/* Makes GPU (local rank mod visible GPUs) this process's device, so ranks
 * beyond the node's GPU count share them (run.gpu_comm then decides the
 * transport), and a launcher that shows each rank only its own GPU
 * (CUDA_VISIBLE_DEVICES per rank) gets that one. Fails only when no GPU
 * is usable. Collective over world (finding the local rank is). */
int comm_gpu_select_device(MPI_Comm world, int *device, kpo_error *err);

/* "<hostname>/<PCI bus id>" of GPU `device`, into id[COMM_GPU_ID_MAX]. */
int comm_gpu_device_id(int device, char *id, kpo_error *err);

/* Every world rank's device id, indexed by world rank. */
typedef struct comm_gpu_ids {
    int n;
    char (*text)[COMM_GPU_ID_MAX];
    const char **ids; /* ids[r] = text[r], the form comm_gpu_transport.h takes */
} comm_gpu_ids;

/* MPI_Allgather of mine (this rank's id; "" where it is unknown).
 * Collective over world. */
int comm_gpu_ids_gather(MPI_Comm world, const char *mine, comm_gpu_ids *out, kpo_error *err);
void comm_gpu_ids_free(comm_gpu_ids *ids);

/* Collective over world: mine summed over the world ranks on this rank's
 * GPU (those with ids->ids[rank]: comm_gpu_share_first), so a shared GPU's
 * ranks can check their memory together; *index is this rank's place among
 * them (by world rank), *n how many they are. */
double comm_gpu_share_sum(MPI_Comm world, const comm_gpu_ids *ids, int rank, double mine,
                          int *index, int *n);

/* comm_gpu_choose_transport for the communicator comm (its members' world
 * ranks gathered over it): every member reaches the same choice.
 * Collective over comm. */
int comm_gpu_choose_for(MPI_Comm comm, MPI_Comm world, const comm_gpu_ids *ids,
                        comm_gpu_mode mode, const char *what, comm_gpu_choice *out,
                        kpo_error *err);

#endif
