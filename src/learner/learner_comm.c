/* The single-process learner_comm (learner_comm.h): each reduction the
 * identity, so the learner builds and is tested without MPI. */
#include "learner/learner_comm.h"

static int keep_floats(void *context, float *data, int64_t n, kpo_error *err)
{
    (void)context, (void)data, (void)n, (void)err;
    return KPO_OK;
}

static int keep_doubles(void *context, double *data, int64_t n, kpo_error *err)
{
    (void)context, (void)data, (void)n, (void)err;
    return KPO_OK;
}

static int keep_stats(void *context, innov_stats *stats, int n, kpo_error *err)
{
    (void)context, (void)stats, (void)n, (void)err;
    return KPO_OK;
}

learner_comm learner_comm_single(void)
{
    return (learner_comm){NULL, 0, 1, keep_floats, keep_doubles, keep_doubles, keep_stats};
}
