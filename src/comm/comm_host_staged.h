/* GPU collectives through host memory: the device data is copied to a
 * pinned host buffer a bucket at a time, reduced or broadcast with MPI,
 * and copied back. What run.gpu_comm picks where ranks share a GPU (NCCL
 * refuses two ranks on one device) or where it is asked for (host); the
 * same operations as comm_nccl.h, so the learner and the weight sync
 * cannot tell which one they got.
 *
 * Slower than NCCL (two PCIe copies and the MPI transport per bucket) but
 * needs nothing from the placement. A failure returns KPO_ERR; the caller
 * ends the job with comm_abort_all (MPI_Abort), which also ends a peer
 * blocked in an MPI collective here, so nothing hangs. Without CUDA every
 * call fails with "no usable GPU: ..." (comm_host_staged_none.c). */
#ifndef KPO_COMM_COMM_HOST_STAGED_H
#define KPO_COMM_COMM_HOST_STAGED_H

#include <stdint.h>

#include <mpi.h>

#include "core/error.h"
#include "learner/learner_comm.h"

/* Bytes copied and reduced per step: the pinned buffer's size. */
#define COMM_HOST_STAGED_DEFAULT_BUCKET_BYTES (64 << 20)

typedef struct comm_host_staged comm_host_staged;

/* Over the ranks of comm, on the current device; allocates the pinned
 * bucket. Collective over comm: every rank returns KPO_ERR alike when any
 * rank cannot (its message names the rank). comm must outlive *out. */
int comm_host_staged_init(comm_host_staged **out, MPI_Comm comm, kpo_error *err);
void comm_host_staged_free(comm_host_staged *c);

/* Re-sizes the bucket (tests: several buckets on small data). */
int comm_host_staged_set_bucket_bytes(comm_host_staged *c, int64_t bytes, kpo_error *err);

/* In-place sum across ranks of d_data [n] floats on the device; returns
 * when the result is in place. Waits for the device's queued work first. */
int comm_host_staged_sum_floats(comm_host_staged *c, float *d_data, int64_t n, kpo_error *err);

/* In-place broadcast from rank root of d_data [n] bf16 values (uint16
 * bits) on the device. */
int comm_host_staged_broadcast_bf16(comm_host_staged *c, uint16_t *d_data, int64_t n, int root,
                                    kpo_error *err);

/* comm_learner_mpi with sum_floats taking a device pointer through the
 * host; sum_doubles, max_doubles and merge_stats as there (host buffers).
 * c must outlive the result. */
learner_comm comm_learner_host_staged(comm_host_staged *c);

#endif
