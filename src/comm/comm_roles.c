/* Ranks into roles (learner, rollout, weight sync communicators), and the
 * job-wide agreement and abort every rank relies on. */
#include "comm/comm_roles.h"

#include <stdio.h>
#include <stdlib.h>

int comm_roles_init(comm_roles *roles, MPI_Comm world, int rollout_ranks, kpo_error *err)
{
    *roles = (comm_roles){.learners = MPI_COMM_NULL,
                          .rollouts = MPI_COMM_NULL,
                          .weight_sync = MPI_COMM_NULL,
                          .learner_rank = -1,
                          .rollout_rank = -1};
    MPI_Comm_rank(world, &roles->world_rank);
    MPI_Comm_size(world, &roles->world_size);
    if (rollout_ranks < 0)
        return error_set(err, "rollout.ranks: must be >= 0, got %d", rollout_ranks);
    if (rollout_ranks >= roles->world_size && rollout_ranks > 0)
        return error_set(err, "rollout.ranks = %d leaves no learner among %d rank(s); use at "
                              "most %d, or 0 to colocate both roles on every rank",
                         rollout_ranks, roles->world_size, roles->world_size - 1);
    roles->colocated = rollout_ranks == 0;
    int first_rollout = roles->world_size - rollout_ranks;
    roles->is_learner = roles->colocated || roles->world_rank < first_rollout;
    roles->is_rollout = roles->colocated || roles->world_rank >= first_rollout;

    MPI_Comm_split(world, roles->is_learner ? 0 : MPI_UNDEFINED, roles->world_rank,
                   &roles->learners);
    MPI_Comm_split(world, roles->is_rollout ? 0 : MPI_UNDEFINED, roles->world_rank,
                   &roles->rollouts);
    int in_sync = !roles->colocated && (roles->world_rank == 0 || roles->is_rollout);
    MPI_Comm_split(world, in_sync ? 0 : MPI_UNDEFINED, roles->world_rank, &roles->weight_sync);
    if (roles->learners != MPI_COMM_NULL) {
        MPI_Comm_rank(roles->learners, &roles->learner_rank);
        MPI_Comm_size(roles->learners, &roles->learner_size);
    }
    if (roles->rollouts != MPI_COMM_NULL) {
        MPI_Comm_rank(roles->rollouts, &roles->rollout_rank);
        MPI_Comm_size(roles->rollouts, &roles->rollout_size);
    }
    return KPO_OK;
}

void comm_roles_free(comm_roles *roles)
{
    MPI_Comm *comms[] = {&roles->learners, &roles->rollouts, &roles->weight_sync};
    for (int k = 0; k < 3; k++)
        if (*comms[k] != MPI_COMM_NULL)
            MPI_Comm_free(comms[k]);
}

_Noreturn void comm_abort_all(const char *message)
{
    int rank = -1, initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    fprintf(stderr, "kpo: rank %d: %s\n", rank, message);
    fflush(stderr);
    if (initialized && !finalized)
        MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

int comm_first_failure(MPI_Comm comm, int status)
{
    int rank, first;
    MPI_Comm_rank(comm, &rank);
    int mine = status == KPO_OK ? COMM_NO_FAILURE : rank;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    return first;
}

int comm_agree(MPI_Comm comm, int status, const char *what, kpo_error *err)
{
    const int first = comm_first_failure(comm, status);
    if (first == COMM_NO_FAILURE)
        return KPO_OK;
    if (status == KPO_OK)
        return error_set(err, "%s: rank %d could not join (see its message)", what, first);
    return KPO_ERR;
}
