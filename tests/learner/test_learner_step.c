/* learner_step on one process: updates happen, and a diverged model's
 * mini-batches are skipped and counted instead of ending the run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#include <cmocka.h>

#include "learner/learner_step.h"
#include "learner_fixture.h"

static learner_config config(void)
{
    learner_config cfg = {.minibatches = 2, .group_size = 4, .norm_adv_by_std = 1,
                          .adv_eps = 1e-6, .log_samples = 3};
    objective_config_default(&cfg.objective);
    cfg.objective.filter.q = 0.01;
    return cfg;
}

static int run(model *m, learner_metrics *lm, kpo_error *err)
{
    rl_batch b;
    fixture_batch(&b, 4, 4, 21);
    learner_config cfg = config();
    adamw_config ac = adamw_config_default();
    ac.lr = 1e-2;
    adamw_state opt;
    model_weights grads;
    adamw_init(&opt, m, &ac, NULL);
    model_weights_init(m, &grads, NULL);
    learner_comm single = learner_comm_single();
    model_backend cpu = model_backend_cpu(m, &opt, &grads);
    int status = learner_step(&cpu, &cfg, &b, &single, lm, err);
    model_backend_free(&cpu);
    model_weights_free(&grads);
    adamw_free(&opt);
    rl_batch_free(&b);
    return status;
}

static void test_updates_and_records(void **state)
{
    (void)state;
    model m, before;
    fixture_model(&m, 5);
    fixture_model(&before, 5);
    learner_metrics lm = {0};
    kpo_error err;
    assert_int_equal(run(&m, &lm, &err), KPO_OK);
    assert_int_equal(lm.updates, 2);
    assert_int_equal(lm.skipped, 0);
    assert_true(lm.objective.tokens > 0 && lm.objective.innovation.count == lm.objective.tokens);
    assert_int_equal(lm.n_samples, 3); /* log_samples, from the last mini-batch */
    assert_true(lm.sample_offsets[3] > 0);
    double moved = 0;
    for (int64_t i = 0; i < m.weights.n_params; i++)
        moved = fmax(moved, fabs(m.weights.data[i] - before.weights.data[i]));
    assert_true(moved > 1e-4);
    learner_metrics_free(&lm);
    model_free(&m);
    model_free(&before);
}

static void test_diverged_model_skips_updates(void **state)
{
    (void)state;
    model m;
    fixture_model(&m, 5);
    m.weights.data[m.weights.n_params / 2] = NAN; /* poisons every log-prob */
    float *copy = malloc((size_t)m.weights.n_params * sizeof *copy);
    memcpy(copy, m.weights.data, (size_t)m.weights.n_params * sizeof *copy);
    learner_metrics lm = {0};
    kpo_error err;
    assert_int_equal(run(&m, &lm, &err), KPO_OK);
    assert_int_equal(lm.updates, 0);
    assert_int_equal(lm.skipped, 2);
    /* No update was applied: the weights are bit-identical (NaN included). */
    assert_memory_equal(copy, m.weights.data, (size_t)m.weights.n_params * sizeof *copy);
    free(copy);
    learner_metrics_free(&lm);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_updates_and_records),
        cmocka_unit_test(test_diverged_model_skips_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
