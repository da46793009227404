/* NCCL collectives for the CUDA backend: one GPU per rank, communicators
 * bootstrapped over MPI, the learners' gradient all-reduce on device
 * buffers and the bf16 weight broadcast from learner rank 0.
 *
 * Nothing here may hang a job: communicators are non-blocking (NCCL
 * config blocking = 0) and every wait polls ncclCommGetAsyncError against
 * a deadline. On an error or a timeout the NCCL communicator is aborted
 * (so no kernel keeps spinning on a dead peer) and the call returns
 * KPO_ERR; the caller ends the job with comm_abort_all, or directly with
 * comm_nccl_abort_all. Without NCCL (KPO_HAVE_NCCL 0) every call fails
 * with a message saying so (comm_nccl_none.c). docs/cuda.md has the
 * design. */
#ifndef KPO_COMM_COMM_NCCL_H
#define KPO_COMM_COMM_NCCL_H

#include <stdint.h>

#include <mpi.h>

#include "core/error.h"
#include "learner/learner_comm.h"

/* Collectives that take longer than this end the job (seconds); the first
 * collective on a communicator also sets up its connections. */
#define COMM_NCCL_DEFAULT_TIMEOUT_S 600.0
/* Gradient all-reduce bucket: large enough to run at bus bandwidth, small
 * enough that a later backward can start a bucket as its gradients land. */
#define COMM_NCCL_DEFAULT_BUCKET_BYTES (64 << 20)

typedef struct comm_nccl comm_nccl;

/* This rank's index among the ranks on its node: OMPI_COMM_WORLD_LOCAL_RANK,
 * else SLURM_LOCALID, else its rank in MPI_Comm_split_type(world,
 * MPI_COMM_TYPE_SHARED). Collective over world (every rank must call it)
 * because the last fallback is. */
int comm_local_rank(MPI_Comm world);

/* Makes GPU `local rank` this process's device (cudaSetDevice), so each
 * rank owns one GPU: NCCL refuses two ranks on one device. Fails when the
 * node has fewer GPUs than ranks, or none. Collective over world. */
int comm_nccl_select_device(MPI_Comm world, int *device, kpo_error *err);

/* An NCCL communicator over the ranks of comm, on the current device.
 * Collective over comm: rank 0 makes the ncclUniqueId and MPI_Bcast()s it.
 * Every rank returns KPO_ERR alike when any rank cannot join (no GPU, NCCL
 * failure), so no rank proceeds to wait for a peer that gave up.
 * timeout_s <= 0 means COMM_NCCL_DEFAULT_TIMEOUT_S. comm must outlive *out
 * (the MPI fallbacks use it). Communicators that share ranks (learners and
 * weight_sync) must be made in the same order on every rank. */
int comm_nccl_init(comm_nccl **out, MPI_Comm comm, double timeout_s, kpo_error *err);

/* Finalizes and destroys (aborts, when broken) and frees; NULL is fine. */
void comm_nccl_free(comm_nccl *c);

int comm_nccl_rank(const comm_nccl *c);
int comm_nccl_size(const comm_nccl *c);

/* The cudaStream_t collectives run on (default NULL: the legacy default
 * stream, which orders them after work the caller queued on it). */
void comm_nccl_set_stream(comm_nccl *c, void *stream);
void comm_nccl_set_bucket_bytes(comm_nccl *c, int64_t bytes);

/* In-place sum across ranks of d_data [n] floats on the device, bucket by
 * bucket; returns when the result is in place (or the deadline passed). */
int comm_nccl_sum_floats(comm_nccl *c, float *d_data, int64_t n, kpo_error *err);

/* The two halves of comm_nccl_sum_floats, for overlapping the all-reduce
 * with other work: start enqueues, wait polls for completion. */
int comm_nccl_sum_floats_start(comm_nccl *c, float *d_data, int64_t n, kpo_error *err);
int comm_nccl_wait(comm_nccl *c, kpo_error *err);

/* In-place broadcast from rank root of d_data [n] bf16 values on the
 * device (the weights, learner rank 0 -> rollout ranks). */
int comm_nccl_broadcast_bf16(comm_nccl *c, uint16_t *d_data, int64_t n, int root, kpo_error *err);

/* The learner's reductions with sum_floats on NCCL over device buffers (the
 * gradients of the GPU model: data is a device pointer); sum_doubles,
 * max_doubles and merge_stats stay on MPI over host buffers (a few scalars
 * and accumulators per step). c must outlive the result. */
learner_comm comm_learner_nccl(comm_nccl *c);

/* Aborts this rank's NCCL communicator now (what a timeout does); later
 * calls on c fail. For tests and for tearing down after a peer died. */
void comm_nccl_abort(comm_nccl *c);

/* ncclCommAbort (so this rank's GPU stops waiting), then comm_abort_all:
 * the whole job ends with the message. c may be NULL. */
_Noreturn void comm_nccl_abort_all(comm_nccl *c, const char *message);

#endif
