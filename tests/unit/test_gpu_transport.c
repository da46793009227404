/* run.gpu_comm's decision (src/comm/comm_gpu_transport.c) on made-up
 * placements: which communicators get NCCL, which the host-staged
 * transport, what nccl refuses, and the order ranks on one GPU create
 * their models in. No MPI, no GPU. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "comm/comm_gpu_transport.h"

#define GPU_A "node1/0000:19:00.0"
#define GPU_B "node1/0000:3B:00.0"
#define GPU_A_ELSEWHERE "node2/0000:19:00.0"

static const int ALL4[] = {0, 1, 2, 3};

static comm_gpu_choice choose_ok(const char *const *ids, const int *members, int n,
                                 comm_gpu_mode mode, int nccl_built)
{
    comm_gpu_choice c = {COMM_GPU_TRANSPORT_NCCL, 7, 7}; /* the call must overwrite all */
    kpo_error err = {{0}};
    assert_int_equal(comm_gpu_choose_transport(ids, members, n, mode, nccl_built, "learner", &c,
                                               &err), KPO_OK);
    return c;
}

static void test_mode_names_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"auto", "nccl", "host"};
    for (int i = 0; i < 3; i++) {
        comm_gpu_mode mode = COMM_GPU_AUTO;
        kpo_error err;
        assert_int_equal(comm_gpu_mode_parse(names[i], &mode, &err), KPO_OK);
        assert_int_equal(mode, i);
        assert_string_equal(comm_gpu_mode_name(mode), names[i]);
    }
    kpo_error err;
    comm_gpu_mode mode;
    assert_int_equal(comm_gpu_mode_parse("mpi", &mode, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "'mpi'"));
    assert_non_null(strstr(err.message, "auto, nccl or host"));
}

static void test_auto_uses_nccl_with_one_gpu_per_rank(void **state)
{
    (void)state;
    /* Two hosts may have GPUs at the same bus id: still different GPUs. */
    const char *ids[] = {GPU_A, GPU_B, GPU_A_ELSEWHERE};
    comm_gpu_choice c = choose_ok(ids, ALL4, 3, COMM_GPU_AUTO, 1);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_NCCL);
    assert_int_equal(c.shared_a, -1);
    assert_int_equal(c.shared_b, -1);
}

static void test_auto_uses_host_when_ranks_share_a_gpu(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_A};
    comm_gpu_choice c = choose_ok(ids, ALL4, 2, COMM_GPU_AUTO, 1);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_HOST);
    assert_int_equal(c.shared_a, 0);
    assert_int_equal(c.shared_b, 1);
}

/* Three ranks on two GPUs, the rollout rank (2) back on GPU A: the
 * learners {0, 1} keep NCCL, the weight sync {0, 2} goes through the
 * host. A single-rank communicator never shares. */
static void test_each_communicator_is_decided_on_its_own_members(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_B, GPU_A};
    const int learners[] = {0, 1}, sync[] = {0, 2}, alone[] = {2};
    assert_int_equal(choose_ok(ids, learners, 2, COMM_GPU_AUTO, 1).transport,
                     COMM_GPU_TRANSPORT_NCCL);
    comm_gpu_choice c = choose_ok(ids, sync, 2, COMM_GPU_AUTO, 1);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_HOST);
    assert_int_equal(c.shared_a, 0);
    assert_int_equal(c.shared_b, 2);
    assert_int_equal(choose_ok(ids, alone, 1, COMM_GPU_AUTO, 1).transport,
                     COMM_GPU_TRANSPORT_NCCL);
}

/* The pair reported is the one with the lowest rank, whatever the order
 * members come in. */
static void test_reported_pair_is_the_lowest(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_B, GPU_B, GPU_A};
    const int shuffled[] = {2, 3, 1, 0};
    comm_gpu_choice c = choose_ok(ids, shuffled, 4, COMM_GPU_AUTO, 1);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_HOST);
    assert_int_equal(c.shared_a, 0);
    assert_int_equal(c.shared_b, 3);
    const int without0[] = {3, 2, 1};
    c = choose_ok(ids, without0, 3, COMM_GPU_AUTO, 1);
    assert_int_equal(c.shared_a, 1);
    assert_int_equal(c.shared_b, 2);
}

static void test_host_is_always_host(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_B};
    comm_gpu_choice c = choose_ok(ids, ALL4, 2, COMM_GPU_HOST, 1);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_HOST);
    assert_int_equal(c.shared_a, -1);
}

static void test_nccl_refuses_a_shared_gpu_naming_it(void **state)
{
    (void)state;
    const char *ids[] = {GPU_B, GPU_A, GPU_A};
    comm_gpu_choice c;
    kpo_error err;
    assert_int_equal(comm_gpu_choose_transport(ids, ALL4, 3, COMM_GPU_NCCL, 1, "learner", &c,
                                               &err), KPO_ERR);
    assert_non_null(strstr(err.message, "run.gpu_comm = nccl"));
    assert_non_null(strstr(err.message, "learner ranks 1 and 2 share GPU " GPU_A));
    assert_non_null(strstr(err.message, "auto or host"));
    /* Without sharing nccl is NCCL. */
    assert_int_equal(choose_ok(ids, ALL4, 2, COMM_GPU_NCCL, 1).transport,
                     COMM_GPU_TRANSPORT_NCCL);
}

static void test_without_nccl_auto_falls_back_and_nccl_fails(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_B};
    comm_gpu_choice c = choose_ok(ids, ALL4, 2, COMM_GPU_AUTO, 0);
    assert_int_equal(c.transport, COMM_GPU_TRANSPORT_HOST);
    assert_int_equal(c.shared_a, -1);
    kpo_error err;
    assert_int_equal(comm_gpu_choose_transport(ids, ALL4, 2, COMM_GPU_NCCL, 0, "learner", &c,
                                               &err), KPO_ERR);
    assert_non_null(strstr(err.message, "built without NCCL"));
}

/* Ranks 0, 1 and 3 on GPU A, rank 2 alone on B: A's ranks create their
 * models in three turns, in rank order; B's in the first. */
static void test_share_turns_follow_rank_order(void **state)
{
    (void)state;
    const char *ids[] = {GPU_A, GPU_A, GPU_B, GPU_A};
    const int turns[] = {0, 1, 0, 2}, first[] = {0, 0, 2, 0};
    for (int r = 0; r < 4; r++) {
        assert_int_equal(comm_gpu_share_turn(ids, r), turns[r]);
        assert_int_equal(comm_gpu_share_first(ids, r), first[r]);
    }
    assert_int_equal(comm_gpu_share_rounds(ids, 4), 3);
    const char *own[] = {GPU_A, GPU_B, GPU_A_ELSEWHERE};
    assert_int_equal(comm_gpu_share_rounds(own, 3), 1);
    assert_int_equal(comm_gpu_share_rounds(own, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_names_round_trip),
        cmocka_unit_test(test_auto_uses_nccl_with_one_gpu_per_rank),
        cmocka_unit_test(test_auto_uses_host_when_ranks_share_a_gpu),
        cmocka_unit_test(test_each_communicator_is_decided_on_its_own_members),
        cmocka_unit_test(test_reported_pair_is_the_lowest),
        cmocka_unit_test(test_host_is_always_host),
        cmocka_unit_test(test_nccl_refuses_a_shared_gpu_naming_it),
        cmocka_unit_test(test_without_nccl_auto_falls_back_and_nccl_fails),
        cmocka_unit_test(test_share_turns_follow_rank_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
