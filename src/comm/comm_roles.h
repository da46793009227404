/* src/comm: every MPI (and NCCL) call of kpo.
 * defines:
 *   comm_roles                 ranks into roles, comm_first_failure, comm_agree, comm_abort_all
 *                              (this header)
 *   comm_world                 kpo eval's world-level MPI, with a one-process fallback
 *   comm_train                 kpo train's MPI start and end, resume-step broadcast,
 *                              counter sums and maxima, stop flag
 *   comm_batch                 the rollout batch to every rank, weights to the rollout ranks
 *   comm_learner               the learner's reductions over MPI
 *   comm_innov_stats           innovation statistics merged across ranks
 *   comm_gpu_device, comm_local_rank.c
 *       a rank's GPU and who shares it (and their memory total)
 *   comm_gpu_transport         NCCL or host-staged, decided from GPU sharing
 *   comm_nccl, comm_nccl_none.c
 *       NCCL collectives and their bootstrap
 *   comm_host_staged, comm_host_staged_none.c
 *       GPU collectives through host memory */
/* Ranks and roles. Rollout ranks sample; learner ranks compute gradients;
 * a colocated rank does both (how a single process runs). Learner rank 0 is
 * world rank 0: it writes the run file and prints progress. Rollout ranks
 * are the last `rollout_ranks` world ranks, so a launcher that fills nodes
 * in order puts them on the last nodes. */
#ifndef KPO_COMM_COMM_ROLES_H
#define KPO_COMM_COMM_ROLES_H

#include <limits.h>
#include <mpi.h>

#include "core/error.h"

typedef struct comm_roles {
    int world_rank, world_size;
    int colocated;           /* every rank holds both roles */
    int is_learner, is_rollout;
    int learner_rank, learner_size; /* -1 / 0 when not a learner */
    int rollout_rank, rollout_size; /* -1 / 0 when not a rollout rank */
    MPI_Comm learners;       /* gradient all-reduce; MPI_COMM_NULL if not a learner */
    MPI_Comm rollouts;       /* MPI_COMM_NULL if not a rollout rank */
    /* Weight broadcast: learner rank 0 (rank 0 here) and every rollout rank;
     * MPI_COMM_NULL elsewhere, and when colocated (nothing moves). */
    MPI_Comm weight_sync;
} comm_roles;

/* rollout_ranks = 0 means colocated. Fails (on every rank alike, before any
 * communicator is made) when no learner would remain. */
int comm_roles_init(comm_roles *roles, MPI_Comm world, int rollout_ranks, kpo_error *err);
void comm_roles_free(comm_roles *roles);

/* Ends the whole job from any rank: prints "kpo: rank R: message" and
 * calls MPI_Abort, so a fatal error on one rank never leaves the others
 * waiting in a collective. */
_Noreturn void comm_abort_all(const char *message);

/* comm_first_failure's answer when every rank succeeded. */
enum { COMM_NO_FAILURE = INT_MAX };

/* The lowest rank of comm whose status is not KPO_OK, COMM_NO_FAILURE when
 * none: "agree on the first failure", so exactly one rank reports a
 * failure several may share. Collective over comm; the one definition
 * kpo train, kpo eval (comm_world_first_failure) and comm_agree use. */
int comm_first_failure(MPI_Comm comm, int status);

/* Every rank of comm learns whether all succeeded (status KPO_OK); on a
 * peer's failure the others' err says "<what>: rank R could not join (see
 * its message)", R the first rank that failed. Collective over comm. */
int comm_agree(MPI_Comm comm, int status, const char *what, kpo_error *err);

#endif
