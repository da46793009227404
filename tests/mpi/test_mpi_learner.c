/* The all-reduced learner update over 1-3 ranks equals the single-process
 * update on the same batch (to float summation order). Rank 0 reports. */
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

#include "../learner/learner_fixture.h"
#include "comm/comm_learner.h"
#include "learner/learner_step.h"

static int rank, size;

static void run_update(model *m, const learner_comm *comm, objective_kind kind,
                       learner_metrics *lm)
{
    rl_batch b;
    assert_int_equal(fixture_model(m, 12), 0);
    assert_int_equal(fixture_batch(&b, 4, 4, 13), 0);
    learner_config cfg = {.minibatches = 2, .group_size = 4, .norm_adv_by_std = 1,
                          .adv_eps = 1e-6, .log_samples = 2};
    objective_config_default(&cfg.objective);
    cfg.objective.kind = kind;
    cfg.objective.clip_low = cfg.objective.clip_high = 0.2;
    cfg.objective.filter.q = 0.01;
    adamw_config ac = adamw_config_default();
    ac.lr = 1e-2;
    ac.warmup_steps = 0;
    adamw_state opt;
    model_weights grads;
    assert_int_equal(adamw_init(&opt, m, &ac, NULL), KPO_OK);
    assert_int_equal(model_weights_init(m, &grads, NULL), KPO_OK);
    kpo_error err;
    model_backend cpu = model_backend_cpu(m, &opt, &grads);
    if (learner_step(&cpu, &cfg, &b, comm, lm, &err) != KPO_OK)
        fail_msg("%s", err.message);
    model_backend_free(&cpu);
    model_weights_free(&grads);
    adamw_free(&opt);
    rl_batch_free(&b);
}

static void check_kind(objective_kind kind)
{
    MPI_Comm world = MPI_COMM_WORLD;
    learner_comm mpi = comm_learner_mpi(&world), single = learner_comm_single();
    model distributed, alone;
    learner_metrics lm_d = {0}, lm_a = {0};
    run_update(&distributed, &mpi, kind, &lm_d);
    run_update(&alone, &single, kind, &lm_a);
    double worst = 0, scale = 0, moved = 0;
    model ref;
    assert_int_equal(fixture_model(&ref, 12), 0);
    for (int64_t i = 0; i < alone.weights.n_params; i++) {
        worst = fmax(worst, fabs(distributed.weights.data[i] - alone.weights.data[i]));
        scale = fmax(scale, fabs(alone.weights.data[i]));
        moved = fmax(moved, fabs(alone.weights.data[i] - ref.weights.data[i]));
    }
    if (rank == 0)
        print_message("%s on %d rank(s): max weight difference %.3g (update size %.3g); "
                      "loss %.9g vs %.9g\n", objective_kind_name(kind), size, worst, moved,
                      lm_d.objective.loss, lm_a.objective.loss);
    assert_true(moved > 1e-3);          /* the update did something */
    /* ... and the same thing. Adam divides each gradient by its own scale, so
     * an entry whose gradient is rounding noise can move by up to lr either
     * way; 1e-3 of the largest update bounds that comfortably. */
    assert_true(worst <= 1e-3 * moved);
    assert_int_equal(lm_d.updates, 2);
    /* fp32 forward passes over differently packed shares round differently */
    assert_true(fabs(lm_d.objective.loss - lm_a.objective.loss) <= 1e-4 * fabs(lm_a.objective.loss));
    assert_true(lm_d.objective.tokens == lm_a.objective.tokens);
    assert_true(lm_d.objective.innovation.count == lm_a.objective.innovation.count);
    learner_metrics_free(&lm_d);
    learner_metrics_free(&lm_a);
    model_free(&distributed);
    model_free(&alone);
    model_free(&ref);
}

static void test_kpo_update_matches_single_rank(void **state)
{
    (void)state;
    check_kind(OBJECTIVE_KPO);
}

static void test_grpo_update_matches_single_rank(void **state)
{
    (void)state;
    check_kind(OBJECTIVE_GRPO);
}

int main(int argc, char **argv)
{
    rank = mpi_test_begin(&argc, &argv);
    if (rank < 0)
        return 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kpo_update_matches_single_rank),
        cmocka_unit_test(test_grpo_update_matches_single_rank),
    };
    return mpi_test_end(cmocka_run_group_tests(tests, NULL, NULL));
}
