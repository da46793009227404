/* Which transport a GPU communicator uses (run.gpu_comm), decided from
 * which ranks share a physical GPU. NCCL needs one GPU per rank (it stops
 * with "Duplicate GPU detected" otherwise); the host-staged transport
 * (comm_host_staged.h) moves the same data through host memory over MPI
 * and works whatever the placement.
 *
 * Pure functions over the ranks' device ids: no MPI, no CUDA, so the
 * decision is unit-tested on any machine (tests/unit/test_gpu_transport.c).
 * docs/cuda.md (NCCL section) says when each path is taken. */
#ifndef KPO_COMM_COMM_GPU_TRANSPORT_H
#define KPO_COMM_COMM_GPU_TRANSPORT_H

#include "core/error.h"

/* A device id: "<hostname>/<PCI bus id>", what NCCL compares to find two
 * ranks on one GPU (host hash and bus id). Longer names are cut. */
#define COMM_GPU_ID_MAX 128

typedef enum comm_gpu_mode {
    COMM_GPU_AUTO, /* NCCL where no two ranks of a communicator share a GPU, else host */
    COMM_GPU_NCCL, /* NCCL always; shared GPUs are an error */
    COMM_GPU_HOST, /* host memory over MPI always */
} comm_gpu_mode;

typedef enum comm_gpu_transport {
    COMM_GPU_TRANSPORT_NCCL,
    COMM_GPU_TRANSPORT_HOST,
} comm_gpu_transport;

/* "auto", "nccl" or "host". */
int comm_gpu_mode_parse(const char *text, comm_gpu_mode *out, kpo_error *err);
const char *comm_gpu_mode_name(comm_gpu_mode mode);
/* "NCCL" or "host memory over MPI". */
const char *comm_gpu_transport_name(comm_gpu_transport transport);

typedef struct comm_gpu_choice {
    comm_gpu_transport transport;
    /* The first two members (world ranks, lower first) found on one GPU;
     * -1 when every member has its own. */
    int shared_a, shared_b;
} comm_gpu_choice;

/* The transport of one communicator. ids[r] is world rank r's device id;
 * members[0..n) are the communicator's world ranks. nccl_built: whether
 * this kpo has NCCL (auto then falls back to host without it). `what`
 * names the communicator in messages ("learners"). Fails when mode is
 * nccl and two members share a GPU, or NCCL is not built in. */
int comm_gpu_choose_transport(const char *const *ids, const int *members, int n,
                              comm_gpu_mode mode, int nccl_built, const char *what,
                              comm_gpu_choice *out, kpo_error *err);

/* How many lower world ranks share rank's GPU: its turn when the ranks on
 * one GPU create their models one after another (0 for the first). */
int comm_gpu_share_turn(const char *const *ids, int rank);

/* The lowest world rank on rank's GPU (rank itself when it is alone):
 * names the group of ranks on one GPU (an MPI_Comm_split colour). */
int comm_gpu_share_first(const char *const *ids, int rank);

/* The turns needed for every rank: the most ranks on any one GPU (1 when
 * each rank has its own; 0 for no ranks). */
int comm_gpu_share_rounds(const char *const *ids, int n_ranks);

#endif
