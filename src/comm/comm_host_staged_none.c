/* Builds without CUDA: the host-staged GPU collectives exist and say why
 * they cannot work, so callers need no #if. */
#include "comm/comm_host_staged.h"

#include "comm/comm_learner.h"
#include "comm/comm_roles.h"

static int unavailable(kpo_error *err)
{
    return error_set(err, "no usable GPU: kpo was built without CUDA (the host-staged GPU "
                          "collectives are not compiled in)");
}

int comm_host_staged_init(comm_host_staged **out, MPI_Comm comm, kpo_error *err)
{
    *out = NULL;
    /* Collective like the real one: every rank fails alike. */
    return comm_agree(comm, unavailable(err), "host-staged GPU communicator", err);
}

void comm_host_staged_free(comm_host_staged *c)
{
    (void)c;
}

int comm_host_staged_set_bucket_bytes(comm_host_staged *c, int64_t bytes, kpo_error *err)
{
    (void)c, (void)bytes;
    return unavailable(err);
}

int comm_host_staged_sum_floats(comm_host_staged *c, float *d_data, int64_t n, kpo_error *err)
{
    (void)c, (void)d_data, (void)n;
    return unavailable(err);
}

int comm_host_staged_broadcast_bf16(comm_host_staged *c, uint16_t *d_data, int64_t n, int root,
                                    kpo_error *err)
{
    (void)c, (void)d_data, (void)n, (void)root;
    return unavailable(err);
}

learner_comm comm_learner_host_staged(comm_host_staged *c)
{
    (void)c;
    return learner_comm_single(); /* unreachable: no comm_host_staged can exist */
}
