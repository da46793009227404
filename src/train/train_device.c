/* run.device for `kpo train`: the CPU model, or the GPU model with its
 * placement, communicators (NCCL or host-staged) and weight sync. See
 * train_device.h. */
#include "train/train_device.h"

#include <stdio.h>
#include <string.h>

#include "comm/comm_batch.h"
#include "comm/comm_gpu_device.h"
#include "comm/comm_learner.h"
#include "comm/comm_train.h"
#include "model/cuda/cuda_probe.h"
#include "train/train_gpu_options.h"

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

/* This rank's GPU: local rank mod the node's GPUs (run.gpu_comm decides
 * later whether ranks on one GPU are allowed). */
static int select_gpu(MPI_Comm world, int *gpu, kpo_error *err)
{
    char why[512];
    int usable = cuda_probe_devices(why, sizeof why) > 0;
    /* Called whatever the probe said: finding the local rank is collective. */
    int status = comm_gpu_select_device(world, gpu, err);
    if (!usable)
        return error_set(err, "no usable GPU: %s", probe_reason(why));
    return status;
}

/* Every rank's device id ("host/PCI bus id"), to find who shares a GPU. */
static int gather_ids(MPI_Comm world, int gpu, comm_gpu_ids *ids, kpo_error *err)
{
    char mine[COMM_GPU_ID_MAX] = "";
    int status = comm_gpu_device_id(gpu, mine, err);
    /* Joined whatever the query said: the gather is collective. */
    if (comm_gpu_ids_gather(world, mine, ids, status == KPO_OK ? err : NULL) != KPO_OK)
        status = KPO_ERR;
    return status;
}

/* One communicator's transport, chosen and then opened; both stages
 * agreed over world. Ranks outside comm (MPI_COMM_NULL) only agree. */
static int open_transport(MPI_Comm comm, MPI_Comm world, const comm_gpu_ids *ids,
                          comm_gpu_mode mode, const char *what, comm_gpu_choice *choice,
                          comm_nccl **nccl, comm_host_staged **host, int *failed,
                          kpo_error *err)
{
    int status = KPO_OK;
    if (comm != MPI_COMM_NULL)
        status = comm_gpu_choose_for(comm, world, ids, mode, what, choice, err);
    *failed = comm_first_failure(world, status);
    if (*failed != COMM_NO_FAILURE)
        return status;
    if (comm != MPI_COMM_NULL)
        status = choice->transport == COMM_GPU_TRANSPORT_NCCL
                     ? comm_nccl_init(nccl, comm, 0, err)
                     : comm_host_staged_init(host, comm, err);
    *failed = comm_first_failure(world, status);
    return status;
}

static int open_cpu(train_device *d, comm_roles *roles, model *m, adamw_state *opt,
                    model_weights *grads)
{
    d->backend = model_backend_cpu(m, opt, grads);
    if (roles->is_learner)
        d->lcomm = comm_learner_mpi(&roles->learners);
    return KPO_OK;
}

static const double GIB = 1024.0 * 1024.0 * 1024.0;

/* The models, one rank at a time on a shared GPU (in world-rank order, a
 * round per turn, each round agreed over world): each gpu_model_create
 * checks its memory plan against what is free once the earlier ranks'
 * weights and optimizer state are there, so a GPU that cannot hold them
 * all fails naming the true shortfall, not with a half-made model. With a
 * GPU per rank there is one round. */
static int create_models(train_device *d, const comm_roles *roles, MPI_Comm world,
                         const comm_gpu_ids *ids, model *m, adamw_state *opt,
                         const gpu_model_options *o, int *failed, kpo_error *err)
{
    const int turn = comm_gpu_share_turn(ids->ids, roles->world_rank);
    const int rounds = comm_gpu_share_rounds(ids->ids, ids->n);
    int status = KPO_OK;
    for (int round = 0; round < rounds && *failed == COMM_NO_FAILURE; round++) {
        if (round == turn)
            status = model_backend_cuda_create(&d->backend, m, roles->is_learner ? opt : NULL,
                                               o, err);
        *failed = comm_first_failure(world, status);
    }
    return status;
}

/* What a GPU model allocates only at its first forward (activations,
 * attention and log-prob workspaces), beyond its weights and optimizer
 * state: the part of its plan the next rank's create cannot see. */
static double later_bytes(const gpu_memory_plan *p)
{
    return p ? (double)(p->total - p->weights_bf16 - p->master_fp32 - p->grads_fp32 -
                        p->adam_fp32)
             : 0;
}

/* On a shared GPU the last rank to create its model checks that the
 * others' later allocations still fit beside its own whole plan (its
 * create measured the free memory after theirs). Approximate: CUDA
 * contexts and the KV cache (sized from what is free at the first rollout)
 * come on top. Collective over world. */
static int check_shared_memory(const train_device *d, const comm_gpu_ids *ids, int rank,
                               MPI_Comm world, kpo_error *err)
{
    int index, n;
    const gpu_memory_plan *p = gpu_model_memory_plan(d->backend.gpu);
    const double mine = later_bytes(p);
    const double all = comm_gpu_share_sum(world, ids, rank, mine, &index, &n);
    if (n == 1 || index != n - 1 || !p)
        return KPO_OK;
    const double others = all - mine, headroom = (double)p->device_free - (double)p->total;
    if (others <= headroom)
        return KPO_OK;
    return error_set(err, "GPU %s is shared by %d ranks, each with its own model: the others' "
                          "activations and workspaces (allocated at their first forward) need "
                          "%.2f GiB, but %.2f GiB are left beside this rank's plan (run fewer "
                          "ranks per GPU, or lower learner.micro_batch_tokens or "
                          "rollout.max_batch)",
                     ids->ids[rank], n, others / GIB, headroom / GIB);
}

/* One line per communicator: its transport and why. */
static void print_transport(const char *label, MPI_Comm comm, const comm_gpu_choice *c,
                            const comm_gpu_ids *ids, comm_gpu_mode mode)
{
    if (comm == MPI_COMM_NULL) {
        printf("  %-12s none (every rank holds both roles)\n", label);
        return;
    }
    const int n = comm_size(comm);
    printf("  %-12s %d rank(s): %s (", label, n, comm_gpu_transport_name(c->transport));
    if (c->shared_a >= 0)
        printf("world ranks %d and %d share GPU %s)\n", c->shared_a, c->shared_b,
               ids->ids[c->shared_a]);
    else if (c->transport == COMM_GPU_TRANSPORT_NCCL)
        printf("one GPU per rank)\n");
    else
        printf("%s)\n", mode == COMM_GPU_HOST ? "run.gpu_comm = host" : "built without NCCL");
}

/* Learner rank 0 (world rank 0: in both communicators when they exist)
 * prints the transports and its plan; the first rollout-only rank its plan. */
static void print_setup(const train_device *d, const train_settings *s, const comm_roles *roles,
                        const comm_gpu_ids *ids, const comm_gpu_choice *learn,
                        const comm_gpu_choice *sync, const model *m, const gpu_model_options *o)
{
    const gpu_memory_plan *plan = gpu_model_memory_plan(d->backend.gpu);
    if (roles->learner_rank == 0) {
        printf("GPU communication (run.gpu_comm = %s):\n", comm_gpu_mode_name(s->gpu_comm));
        print_transport("learners", roles->learners, learn, ids, s->gpu_comm);
        print_transport("weight sync", roles->weight_sync, sync, ids, s->gpu_comm);
    }
    /* Learner rank 0's plan, and with separate rollout ranks the first
     * one's too: its KV cache is what decides the rollout's schedule. */
    const int first_rollout_only = roles->rollout_rank == 0 && !roles->is_learner;
    if (plan && (roles->learner_rank == 0 || first_rollout_only)) {
        printf("GPU %d (%s rank 0): memory plan\n", d->gpu,
               first_rollout_only ? "rollout" : "learner");
        gpu_memory_plan_print(plan, &m->config, o, stdout);
    }
    fflush(stdout);
}

/* Each stage runs only if every rank passed the one before. Returns this
 * rank's own verdict (KPO_ERR only where the reason is); *failed says
 * whether all are ready. */
static int open_cuda(train_device *d, const train_settings *s, comm_roles *roles,
                     MPI_Comm world, model *m, adamw_state *opt, int64_t longest_prompt,
                     int *failed, kpo_error *err)
{
    comm_gpu_ids ids;
    memset(&ids, 0, sizeof ids);
    comm_gpu_choice learn = {COMM_GPU_TRANSPORT_HOST, -1, -1}, sync = learn;
    int status = select_gpu(world, &d->gpu, err);
    *failed = comm_first_failure(world, status);
    if (*failed == COMM_NO_FAILURE) {
        status = gather_ids(world, d->gpu, &ids, err);
        *failed = comm_first_failure(world, status);
    }
    /* The learners' communicator first, then weight_sync, on every rank:
     * NCCL needs communicators that share ranks made in the same order. */
    if (*failed == COMM_NO_FAILURE)
        status = open_transport(roles->learners, world, &ids, s->gpu_comm, "learner", &learn,
                                &d->learner_nccl, &d->learner_host, failed, err);
    if (*failed == COMM_NO_FAILURE)
        status = open_transport(roles->weight_sync, world, &ids, s->gpu_comm, "weight-sync",
                                &sync, &d->sync_nccl, &d->sync_host, failed, err);
    const train_rank_role role = {.learner = roles->is_learner, .rollout = roles->is_rollout,
                                  .learner_size = roles->learner_size,
                                  .rollout_size = roles->rollout_size};
    gpu_model_options o = train_gpu_options(s, &role, longest_prompt);
    if (*failed == COMM_NO_FAILURE)
        status = create_models(d, roles, world, &ids, m, opt, &o, failed, err);
    if (*failed == COMM_NO_FAILURE && comm_gpu_share_rounds(ids.ids, ids.n) > 1) {
        status = check_shared_memory(d, &ids, roles->world_rank, world, err);
        *failed = comm_first_failure(world, status);
    }
    if (*failed == COMM_NO_FAILURE) {
        if (roles->is_learner)
            d->lcomm = d->learner_nccl ? comm_learner_nccl(d->learner_nccl)
                                       : comm_learner_host_staged(d->learner_host);
        print_setup(d, s, roles, &ids, &learn, &sync, m, &o);
    }
    comm_gpu_ids_free(&ids);
    if (*failed != COMM_NO_FAILURE)
        return status != KPO_OK ? error_prefix(err, "run.device = cuda: ") : KPO_OK;
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
        *failed = comm_first_failure(world, status);
    } else {
        status = open_cuda(d, s, roles, world, m, opt, longest_prompt, failed, err);
    }
    if (*failed != COMM_NO_FAILURE && status == KPO_OK)
        return error_set(err, "rank %d failed to set up run.device = %s", *failed,
                         model_device_name(s->device));
    return *failed == COMM_NO_FAILURE ? KPO_OK : KPO_ERR;
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
    int status = d->sync_nccl ? comm_nccl_broadcast_bf16(d->sync_nccl, weights, n, 0, err)
                              : comm_host_staged_broadcast_bf16(d->sync_host, weights, n, 0, err);
    if (status != KPO_OK)
        return error_prefix(err, "weight sync: ");
    if (!roles->is_learner)
        d->backend.host_stale = 1;
    return KPO_OK;
}

/* The host-staged transport has nothing to abort: MPI_Abort, which the
 * caller issues next, ends a peer blocked in its MPI collectives. */
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
    comm_host_staged_free(d->learner_host);
    comm_host_staged_free(d->sync_host);
    memset(d, 0, sizeof *d);
}
