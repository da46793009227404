/* The device a `kpo train` rank computes on (run.device) and what goes with
 * it: the model backend, the learners' reductions and the weight sync.
 *
 *   cpu:  the CPU model; gradients summed and weights broadcast over MPI.
 *   cuda: GPU (local rank mod the node's GPUs); over the learners and
 *         over weight_sync either an NCCL communicator (bootstrapped over
 *         MPI) or, where ranks share a GPU or run.gpu_comm = host, the
 *         host-staged MPI transport; learners hold a training GPU model,
 *         rollout-only ranks an inference one, created one rank at a time
 *         on a shared GPU; the bf16 weights are broadcast after each step.
 *
 * Setting up is collective over the world: every stage ends with the ranks
 * agreeing, so a rank without a GPU never leaves the others waiting. */
#ifndef KPO_TRAIN_TRAIN_DEVICE_H
#define KPO_TRAIN_TRAIN_DEVICE_H

#include <mpi.h>

#include "comm/comm_host_staged.h"
#include "comm/comm_nccl.h"
#include "comm/comm_roles.h"
#include "core/error.h"
#include "learner/learner_comm.h"
#include "model/model_backend.h"
#include "train/train_config.h"

typedef struct train_device {
    model_backend backend;
    learner_comm lcomm;      /* learners only */
    /* cuda: each communicator has one of the two transports (run.gpu_comm) */
    comm_nccl *learner_nccl;        /* over roles.learners */
    comm_nccl *sync_nccl;           /* over roles.weight_sync (none when colocated) */
    comm_host_staged *learner_host; /* over roles.learners */
    comm_host_staged *sync_host;    /* over roles.weight_sync (none when colocated) */
    int gpu;                 /* cuda: this rank's device index; -1 otherwise */
} train_device;

/* Sets up d for s->device over the host model m (opt and grads: a
 * learner's, else NULL; grads NULL on cuda). longest_prompt bounds the
 * GPU model's forward batches. Collective over world; *failed receives
 * comm_first_failure's verdict over world (COMM_NO_FAILURE: every rank is
 * ready) and err, on the rank that failed, the reason ("run.device =
 * cuda: ..."). Learner
 * rank 0 prints the GPU memory plan and each communicator's transport. */
int train_device_open(train_device *d, const train_settings *s, comm_roles *roles,
                      MPI_Comm world, model *m, adamw_state *opt, model_weights *grads,
                      int64_t longest_prompt, int *failed, kpo_error *err);

/* After a learner step: learner rank 0's weights to the rollout ranks
 * (fp32 over MPI on the cpu, bf16 over NCCL or through host memory on
 * cuda). */
int train_device_sync_weights(train_device *d, const comm_roles *roles, kpo_error *err);

/* A fatal error is about to end the job: abort the NCCL communicators so
 * this rank's GPU stops waiting on its peers (nothing to do on the cpu). */
void train_device_abort(train_device *d);

void train_device_close(train_device *d);

#endif
