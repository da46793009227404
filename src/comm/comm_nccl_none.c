/* Builds without NCCL: the calls exist and say why they cannot work, so
 * callers need no #if. */
#include "comm/comm_nccl.h"

#include "comm/comm_learner.h"
#include "comm/comm_roles.h"

static int unavailable(kpo_error *err)
{
    return error_set(err, "no usable GPU: kpo was built without NCCL (the CUDA backend's "
                          "collectives are not compiled in)");
}

int comm_nccl_select_device(MPI_Comm world, int *device, kpo_error *err)
{
    (void)comm_local_rank(world); /* collective: keep the ranks in step */
    *device = -1;
    return unavailable(err);
}

int comm_nccl_init(comm_nccl **out, MPI_Comm comm, double timeout_s, kpo_error *err)
{
    (void)comm, (void)timeout_s;
    *out = NULL;
    return unavailable(err);
}

void comm_nccl_free(comm_nccl *c)
{
    (void)c;
}

int comm_nccl_rank(const comm_nccl *c)
{
    (void)c;
    return -1;
}

int comm_nccl_size(const comm_nccl *c)
{
    (void)c;
    return 0;
}

void comm_nccl_set_stream(comm_nccl *c, void *stream)
{
    (void)c, (void)stream;
}

void comm_nccl_set_bucket_bytes(comm_nccl *c, int64_t bytes)
{
    (void)c, (void)bytes;
}

int comm_nccl_sum_floats(comm_nccl *c, float *d_data, int64_t n, kpo_error *err)
{
    (void)c, (void)d_data, (void)n;
    return unavailable(err);
}

int comm_nccl_sum_floats_start(comm_nccl *c, float *d_data, int64_t n, kpo_error *err)
{
    return comm_nccl_sum_floats(c, d_data, n, err);
}

int comm_nccl_wait(comm_nccl *c, kpo_error *err)
{
    (void)c;
    return unavailable(err);
}

int comm_nccl_broadcast_bf16(comm_nccl *c, uint16_t *d_data, int64_t n, int root, kpo_error *err)
{
    (void)c, (void)d_data, (void)n, (void)root;
    return unavailable(err);
}

learner_comm comm_learner_nccl(comm_nccl *c)
{
    (void)c;
    return learner_comm_single(); /* unreachable: no comm_nccl can exist */
}

void comm_nccl_abort(comm_nccl *c)
{
    (void)c;
}

_Noreturn void comm_nccl_abort_all(comm_nccl *c, const char *message)
{
    (void)c;
    comm_abort_all(message);
}
