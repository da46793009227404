/* Role assignment and the communicators built from it, on the ranks
 * mpirun gives (1, 2 or 3); argv[1] is rollout.ranks. Rank 0 reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpi_test.h"

#include "comm/comm_roles.h"

static int rollout_ranks, rank;

static void test_roles_partition_the_world(void **state)
{
    (void)state;
    comm_roles roles;
    kpo_error err;
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    assert_int_equal(comm_roles_init(&roles, MPI_COMM_WORLD, rollout_ranks, &err), KPO_OK);
    int counts[2] = {roles.is_learner, roles.is_rollout}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rollout_ranks == 0) {
        assert_true(roles.colocated && totals[0] == size && totals[1] == size);
        assert_true(roles.weight_sync == MPI_COMM_NULL);
    } else {
        assert_int_equal(totals[1], rollout_ranks);
        assert_int_equal(totals[0], size - rollout_ranks);
        assert_true(roles.is_learner != roles.is_rollout);
    }
    if (roles.world_rank == 0)
        assert_true(roles.is_learner && roles.learner_rank == 0);
    /* Gradient all-reduce among learners: the sum of learner ranks. */
    if (roles.is_learner) {
        double mine = roles.learner_rank + 1, sum = 0;
        MPI_Allreduce(&mine, &sum, 1, MPI_DOUBLE, MPI_SUM, roles.learners);
        assert_true(sum == roles.learner_size * (roles.learner_size + 1) / 2.0);
    }
    /* Weight broadcast from learner rank 0 reaches every rollout rank. */
    if (roles.weight_sync != MPI_COMM_NULL) {
        double weights[4] = {0};
        if (roles.world_rank == 0)
            for (int k = 0; k < 4; k++)
                weights[k] = 1.5 * k;
        MPI_Bcast(weights, 4, MPI_DOUBLE, 0, roles.weight_sync);
        for (int k = 0; k < 4; k++)
            assert_true(weights[k] == 1.5 * k);
    }
    comm_roles_free(&roles);
}

static void test_too_many_rollout_ranks_is_refused(void **state)
{
    (void)state;
    int size;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    comm_roles roles;
    kpo_error err;
    assert_int_equal(comm_roles_init(&roles, MPI_COMM_WORLD, size, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "rollout.ranks"));
    assert_int_equal(comm_roles_init(&roles, MPI_COMM_WORLD, -1, &err), KPO_ERR);
}

int main(int argc, char **argv)
{
    rank = mpi_test_begin(&argc, &argv);
    if (rank < 0)
        return 1;
    rollout_ranks = argc > 1 ? atoi(argv[1]) : 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles_partition_the_world),
        cmocka_unit_test(test_too_many_rollout_ranks_is_refused),
    };
    return mpi_test_end(cmocka_run_group_tests(tests, NULL, NULL));
}
