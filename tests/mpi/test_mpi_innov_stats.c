/* Innovation statistics reduced across ranks equal one pass over all the
 * tokens. Every rank runs the same collective tests; rank 0 reports. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <mpi.h>

#include "mpi_test.h"

#include "comm/comm_innov_stats.h"
#include "core/rng.h"

enum { TOKENS_PER_RANK = 20011, RECORDS = 3 };

static int rank, size;

static double token_value(int record, int global_index)
{
    rng_stream rng;
    rng_stream_init(&rng, 5, rng_stream_id((uint64_t)record, (uint64_t)global_index, 0));
    return 0.3 * rng_student_t(&rng, 4) + 0.1 * record;
}

static void add_token(innov_stats *s, int record, int i)
{
    double x = token_value(record, i);
    innov_stats_add(s, x, 1.0 + 0.1 * record, 0.01 * (i % 7), 2.0, fabs(x) > 0.9);
}

static void test_reduce_equals_one_pass(void **state)
{
    (void)state;
    innov_stats local[RECORDS], reduced[RECORDS], whole[RECORDS];
    for (int r = 0; r < RECORDS; r++) {
        innov_stats_init(&local[r]);
        innov_stats_init(&whole[r]);
        /* Uneven shares: rank k holds (k + 1) blocks. */
        int first = 0;
        for (int k = 0; k < rank; k++)
            first += (k + 1) * TOKENS_PER_RANK / 4;
        int count = (rank + 1) * TOKENS_PER_RANK / 4;
        for (int i = first; i < first + count; i++)
            add_token(&local[r], r, i);
        int total = 0;
        for (int k = 0; k < size; k++)
            total += (k + 1) * TOKENS_PER_RANK / 4;
        for (int i = 0; i < total; i++)
            add_token(&whole[r], r, i);
    }
    kpo_error err;
    assert_int_equal(comm_reduce_innov_stats(MPI_COMM_WORLD, 0, local, reduced, RECORDS, &err),
                     KPO_OK);
    if (rank != 0)
        return;
    for (int r = 0; r < RECORDS; r++) {
        assert_true(reduced[r].count == whole[r].count);
        assert_true(fabs(reduced[r].mean - whole[r].mean) < 1e-13);
        assert_true(fabs(reduced[r].m2 - whole[r].m2) < 1e-11 * whole[r].m2);
        assert_true(fabs(reduced[r].m4 - whole[r].m4) < 1e-11 * whole[r].m4);
        assert_true(fabs(innov_stats_kurtosis(&reduced[r]) - innov_stats_kurtosis(&whole[r])) <
                    1e-10);
        assert_true(reduced[r].max_abs == whole[r].max_abs);
        assert_true(reduced[r].clip_count == whole[r].clip_count);
        assert_memory_equal(reduced[r].hist, whole[r].hist, sizeof whole[r].hist);
    }
    print_message("%d rank(s): reduced kurtosis %.6f equals one pass %.6f\n", size,
                  innov_stats_kurtosis(&reduced[0]), innov_stats_kurtosis(&whole[0]));
}

/* The same reduction run twice gives the same bits (fixed order). */
static void test_reduction_is_reproducible(void **state)
{
    (void)state;
    innov_stats local, first, second;
    innov_stats_init(&local);
    for (int i = 0; i < 1000; i++)
        add_token(&local, 0, rank * 1000 + i);
    kpo_error err;
    assert_int_equal(comm_reduce_innov_stats(MPI_COMM_WORLD, 0, &local, &first, 1, &err), KPO_OK);
    assert_int_equal(comm_reduce_innov_stats(MPI_COMM_WORLD, 0, &local, &second, 1, &err),
                     KPO_OK);
    if (rank == 0)
        assert_memory_equal(&first, &second, sizeof first);
}

int main(int argc, char **argv)
{
    rank = mpi_test_begin(&argc, &argv);
    if (rank < 0)
        return 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_equals_one_pass),
        cmocka_unit_test(test_reduction_is_reproducible),
    };
    return mpi_test_end(cmocka_run_group_tests(tests, NULL, NULL));
}
