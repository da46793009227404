#include "train/train_device.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "comm/comm_batch.h"
#include "comm/comm_learner.h"
#include "cuda/cuda_probe.h"

int train_first_failure(MPI_Comm world, int status)
{
    int rank, first;
    MPI_Comm_rank(world, &rank);
    int mine = status == KPO_OK ? INT_MAX : rank;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world);
    return first;
}

/* The probe's "no usable GPU (why)" as just "why". */
static const char *probe_reason(char *why)
{
    const char *prefix = "no usable GPU (";
    size_t n = strlen(why), p = strlen(prefix);
    if (n > p && strncmp(why, prefix, p) == 0 && why[n - 1] == ')') {
        why[n - 1] = '\0';
        return why + p;
    }
    return why;
}

/* This rank's GPU, by local rank. */
static int select_gpu(MPI_Comm world, int *gpu, kpo_error *err)
{
    char why[512];
    int usable = cuda_probe_devices(why, sizeof why) > 0;
    /* Called whatever the probe said: finding the local rank is collective. */
    int status = comm_nccl_select_device(world, gpu, err);
    if (!usable)
        return error_set(err, "no usable GPU: %s", probe_reason(why));
    return status;
}

/* The largest packed batch this rank runs a forward on: a learner's
 * micro-batch (learner.micro_batch_tokens, but never less than one
 * sequence: the longest prompt plus max_new_tokens), or without
 * micro-batches its whole share of a mini-batch (for the old log-probs and
 * the update alike); a rollout rank's prefill of its KV-cache slots. */
static int64_t forward_tokens_bound(const train_settings *s, const comm_roles *r,
                                    int64_t longest_prompt)
{
    const int64_t G = s->learner.group_size, M = s->learner.minibatches;
    int64_t bound = 0;
    if (r->is_learner) {
        int64_t minibatch = s->prompts_per_step / M * G;
        int64_t share = (minibatch + r->learner_size - 1) / r->learner_size;
        int64_t longest_sequence = longest_prompt + s->max_new_tokens;
        int64_t budget = s->learner.micro_batch_tokens;
        bound = budget <= 0 ? share * longest_sequence
                            : budget > longest_sequence ? budget : longest_sequence;
    }
    if (r->is_rollout) {
        int64_t responses = s->prompts_per_step / r->rollout_size * G;
        int64_t prefill = (responses < s->max_batch ? responses : s->max_batch) * longest_prompt;
        bound = prefill > bound ? prefill : bound;
    }
    return bound;
}

static gpu_model_options gpu_options(const train_settings *s, const comm_roles *r,
                                     int64_t longest_prompt)
{
    gpu_model_options o;
    memset(&o, 0, sizeof o);
    o.train = r->is_learner;
    o.recompute = s->recompute;
    o.max_tokens = forward_tokens_bound(s, r, longest_prompt);
    o.logprob_chunk = 0; /* the model's default */
    o.optim = s->optim;
    return o;
}

static int open_cpu(train_device *d, comm_roles *roles, model *m, adamw_state *opt,
                    model_weights *grads)
{
    d->backend = model_backend_cpu(m, opt, grads);
    if (roles->is_learner)
        d->lcomm = comm_learner_mpi(&roles->learners);
    return KPO_OK;
}

/* Each stage runs only if every rank passed the one before. Returns this
 * rank's own verdict (KPO_ERR only where the reason is); *failed says
 * whether all are ready. */
static int open_cuda(train_device *d, const train_settings *s, comm_roles *roles,
                     MPI_Comm world, model *m, adamw_state *opt, int64_t longest_prompt,
                     int *failed, kpo_error *err)
{
    int status = select_gpu(world, &d->gpu, err);
    *failed = train_first_failure(world, status);
    /* The learners' communicator first, then weight_sync, on every rank:
     * NCCL needs communicators that share ranks made in the same order. */
    if (*failed == INT_MAX) {
        if (roles->is_learner)
            status = comm_nccl_init(&d->learner_nccl, roles->learners, 0, err);
        *failed = train_first_failure(world, status);
    }
    if (*failed == INT_MAX) {
        if (roles->weight_sync != MPI_COMM_NULL)
            status = comm_nccl_init(&d->sync_nccl, roles->weight_sync, 0, err);
        *failed = train_first_failure(world, status);
    }
    gpu_model_options o = gpu_options(s, roles, longest_prompt);
    if (*failed == INT_MAX) {
        status = model_backend_cuda_create(&d->backend, m, roles->is_learner ? opt : NULL, &o,
                                           err);
        *failed = train_first_failure(world, status);
    }
    if (*failed != INT_MAX)
        return status != KPO_OK ? error_prefix(err, "run.device = cuda: ") : KPO_OK;
    if (roles->is_learner)
        d->lcomm = comm_learner_nccl(d->learner_nccl);
    const gpu_memory_plan *plan = gpu_model_memory_plan(d->backend.gpu);
    if (roles->learner_rank == 0 && plan) {
        printf("GPU %d (learner rank 0): memory plan\n", d->gpu);
        gpu_memory_plan_print(plan, &m->config, &o, stdout);
        fflush(stdout);
    }
    return KPO_OK;
}

int train_device_open(train_device *d, const train_settings *s, comm_roles *roles,
                      MPI_Comm world, model *m, adamw_state *opt, model_weights *grads,
                      int64_t longest_prompt, int *failed, kpo_error *err)
{
    memset(d, 0, sizeof *d);
    d->gpu = -1;
    int status;
    if (s->device == MODEL_DEVICE_CPU) {
        status = open_cpu(d, roles, m, opt, grads);
        *failed = train_first_failure(world, status);
    } else {
        status = open_cuda(d, s, roles, world, m, opt, longest_prompt, failed, err);
    }
    if (*failed != INT_MAX && status == KPO_OK)
        return error_set(err, "rank %d failed to set up run.device = %s", *failed,
                         model_device_name(s->device));
    return *failed == INT_MAX ? KPO_OK : KPO_ERR;
}

int train_device_sync_weights(train_device *d, const comm_roles *roles, kpo_error *err)
{
    if (roles->weight_sync == MPI_COMM_NULL)
        return KPO_OK; /* colocated: every rank updated its own weights */
    if (d->backend.device == MODEL_DEVICE_CPU)
        return comm_broadcast_weights(roles->weight_sync, &d->backend.m->weights, err);
    /* The bf16 copy is what both sides compute with; the learner's fp32
     * master weights stay on the learner. */
    int64_t n;
    uint16_t *weights = gpu_model_bf16_weights(d->backend.gpu, &n);
    if (comm_nccl_broadcast_bf16(d->sync_nccl, weights, n, 0, err) != KPO_OK)
        return error_prefix(err, "weight sync: ");
    if (!roles->is_learner)
        d->backend.host_stale = 1;
    return KPO_OK;
}

void train_device_abort(train_device *d)
{
    if (d->learner_nccl)
        comm_nccl_abort(d->learner_nccl);
    if (d->sync_nccl)
        comm_nccl_abort(d->sync_nccl);
}

void train_device_close(train_device *d)
{
    model_backend_free(&d->backend);
    comm_nccl_free(d->learner_nccl);
    comm_nccl_free(d->sync_nccl);
    memset(d, 0, sizeof *d);
}
