/* The KPO gradient through the model equals exp(rho_t) * grad log pi_t:
 * central finite differences of the surrogate with rho held fixed, on a
 * tiny Qwen3, for several parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "learner/advantage.h"
#include "learner/learner_step.h"
#include "learner_fixture.h"

/* S(theta) = sum_t w_t (-A) exp(rho_t) exp(logp_t(theta) - logp_t(theta0)),
 * the surrogate whose gradient KPO's stop-gradient construction takes. */
static double surrogate(const model *m, const rl_batch *b, const double *logp0,
                        const double *rho, const double *weight)
{
    int64_t R = rl_batch_response_tokens(b);
    double *logp = malloc((size_t)R * sizeof *logp);
    model_backend cpu = model_backend_cpu_eval(m);
    assert_int_equal(learner_response_logprobs(&cpu, b, 0, logp, NULL, NULL), KPO_OK);
    model_backend_free(&cpu);
    double total = 0;
    int64_t k = 0;
    for (int64_t i = 0; i < b->n; i++) {
        int64_t r = b->seq_offsets[i + 1] - b->seq_offsets[i] - b->prompt_len[i];
        for (int64_t t = 0; t < r; t++, k++)
            total += weight[k] * -b->advantage[i] * exp(rho[k]) * exp(logp[k] - logp0[k]);
    }
    free(logp);
    return total;
}

static void test_gradient_is_exp_rho_times_grad_logp(void **state)
{
    (void)state;
    model m;
    rl_batch b;
    assert_int_equal(fixture_model(&m, 4), 0);
    assert_int_equal(fixture_batch(&b, 2, 4, 8), 0);
    assert_int_equal(advantage_grpo(b.reward, 2, 4, 1, 1e-6, b.advantage, NULL), KPO_OK);

    learner_config cfg = {.minibatches = 1, .group_size = 4, .norm_adv_by_std = 1,
                          .adv_eps = 1e-6};
    objective_config_default(&cfg.objective);
    cfg.objective.clip = 0; /* every token differentiable */
    cfg.objective.filter.q = 0.05;
    cfg.objective.filter.v = 0.5;
    cfg.objective.aggregation = LOSS_AGG_SEQ_MEAN_TOKEN_MEAN;

    /* Old log-probs shifted by a known drift, so rho is far from 0. */
    int64_t R = rl_batch_response_tokens(&b);
    double *logp0 = malloc((size_t)R * sizeof *logp0), *old = malloc((size_t)R * sizeof *old);
    double *rho = malloc((size_t)R * sizeof *rho), *weight = malloc((size_t)R * sizeof *weight);
    model_backend cpu = model_backend_cpu_eval(&m);
    assert_int_equal(learner_response_logprobs(&cpu, &b, 0, logp0, NULL, NULL), KPO_OK);
    model_backend_free(&cpu);
    int64_t k = 0;
    objective_normalizer norm = {(double)b.n, (double)R};
    for (int64_t i = 0; i < b.n; i++) {
        int64_t r = b.seq_offsets[i + 1] - b.seq_offsets[i] - b.prompt_len[i];
        int64_t offsets[2] = {0, r};
        for (int64_t t = 0; t < r; t++) {
            old[k + t] = logp0[k + t] - 0.3 * sin((double)(k + t));
            weight[k + t] = 1.0 / (norm.responses * (double)r);
        }
        double z[16];
        for (int64_t t = 0; t < r; t++)
            z[t] = logp0[k + t] - old[k + t];
        filter_outputs out = {.rho = rho + k};
        assert_int_equal(filter_apply(&cfg.objective.filter, z, offsets, 1, &out, NULL, NULL),
                         KPO_OK);
        k += r;
    }

    model_weights grads;
    assert_int_equal(model_weights_init(&m, &grads, NULL), KPO_OK);
    objective_metrics om;
    objective_metrics_init(&om);
    double entropy = 0;
    cpu = model_backend_cpu(&m, NULL, &grads);
    assert_int_equal(learner_gradients(&cpu, &cfg, &b, old, norm, &om, &entropy, NULL, NULL),
                     KPO_OK);
    model_backend_free(&cpu);
    /* The objective's loss is S(theta0). */
    assert_true(fabs(om.loss - surrogate(&m, &b, logp0, rho, weight)) < 1e-6);

    const char *names[] = {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
                           "model.layers.0.self_attn.k_norm.weight"};
    double worst = 0;
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        const model_param *p = model_find_param(&m, names[n]);
        assert_non_null(p);
        for (int probe = 0; probe < 3; probe++) {
            int64_t at = p->offset + (probe * 7919) % p->numel;
            float saved = m.weights.data[at];
            const double h = 1e-2;
            m.weights.data[at] = saved + (float)h;
            double plus = surrogate(&m, &b, logp0, rho, weight);
            m.weights.data[at] = saved - (float)h;
            double minus = surrogate(&m, &b, logp0, rho, weight);
            m.weights.data[at] = saved;
            double fd = (plus - minus) / (2 * h), analytic = grads.data[at];
            double error = fabs(fd - analytic) / fmax(fabs(fd), 1e-3);
            worst = fmax(worst, error);
            if (error > 2e-2)
                fail_msg("%s[%lld]: finite difference %.6g vs gradient %.6g", names[n],
                         (long long)(at - p->offset), fd, analytic);
        }
    }
    print_message("kpo gradient vs finite differences: worst relative error %.3g\n", worst);
    model_weights_free(&grads);
    free(logp0);
    free(old);
    free(rho);
    free(weight);
    rl_batch_free(&b);
    model_free(&m);
}

/* Micro-batches change only the float arithmetic's order (the CPU's
 * products block differently for fewer rows): gradients, loss, filter
 * statistics, entropies, kept samples and old log-probs all match the
 * one-pass result to float rounding, for budgets from one sequence per
 * micro-batch up. */
static void test_micro_batches_add_up_to_one_pass(void **state)
{
    (void)state;
    model m;
    rl_batch b;
    assert_int_equal(fixture_model(&m, 4), 0);
    assert_int_equal(fixture_batch(&b, 3, 4, 8), 0);
    assert_int_equal(advantage_grpo(b.reward, 3, 4, 1, 1e-6, b.advantage, NULL), KPO_OK);
    learner_config cfg = {.minibatches = 1, .group_size = 4, .norm_adv_by_std = 1,
                          .adv_eps = 1e-6, .log_samples = 5};
    objective_config_default(&cfg.objective);
    cfg.objective.filter.q = 0.05;

    const int64_t R = rl_batch_response_tokens(&b);
    double *old = malloc((size_t)R * sizeof *old), *old_mb = malloc((size_t)R * sizeof *old_mb);
    model_backend cpu = model_backend_cpu_eval(&m);
    assert_int_equal(learner_response_logprobs(&cpu, &b, 0, old, NULL, NULL), KPO_OK);
    assert_int_equal(learner_response_logprobs(&cpu, &b, 1, old_mb, NULL, NULL), KPO_OK);
    model_backend_free(&cpu);
    for (int64_t k = 0; k < R; k++) {
        assert_true(fabs(old[k] - old_mb[k]) <= 1e-5);
        old[k] -= 0.2 * sin((double)k); /* off-policy, so the filter has work */
    }
    objective_normalizer norm = {(double)b.n, (double)R};

    const int64_t longest = b.seq_offsets[1] - b.seq_offsets[0];
    const int64_t budgets[] = {0, 1, 2 * longest, b.seq_offsets[b.n] - 1};
    model_weights grads[4];
    objective_metrics om[4];
    learner_metrics kept[4];
    double entropy[4];
    for (int v = 0; v < 4; v++) {
        cfg.micro_batch_tokens = budgets[v];
        assert_int_equal(model_weights_init(&m, &grads[v], NULL), KPO_OK);
        objective_metrics_init(&om[v]);
        memset(&kept[v], 0, sizeof kept[v]);
        entropy[v] = 0;
        cpu = model_backend_cpu(&m, NULL, &grads[v]);
        assert_int_equal(learner_gradients(&cpu, &cfg, &b, old, norm, &om[v], &entropy[v],
                                           &kept[v], NULL),
                         KPO_OK);
        model_backend_free(&cpu);
    }
    for (int v = 1; v < 4; v++) {
        double worst = 0, scale = 0;
        for (int64_t i = 0; i < grads[0].n_params; i++) {
            worst = fmax(worst, fabs((double)grads[v].data[i] - grads[0].data[i]));
            scale = fmax(scale, fabs((double)grads[0].data[i]));
        }
        print_message("micro_batch_tokens %lld: worst gradient difference %.3g of max %.3g\n",
                      (long long)budgets[v], worst, scale);
        assert_true(scale > 0 && worst <= 1e-5 * scale);
        assert_true(fabs(om[v].loss - om[0].loss) <= 1e-5 * fmax(1e-3, fabs(om[0].loss)));
        assert_true(fabs(entropy[v] - entropy[0]) <= 1e-6 * entropy[0]);
        assert_int_equal((int)om[v].innovation.count, (int)om[0].innovation.count);
        assert_true(fabs(om[v].innovation.m2 - om[0].innovation.m2) <=
                    1e-4 * om[0].innovation.m2);
        assert_int_equal((int)kept[v].n_samples, (int)kept[0].n_samples);
        assert_int_equal((int)kept[0].n_samples, 5);
        for (int64_t r = 0; r <= kept[0].n_samples; r++)
            assert_int_equal((int)kept[v].sample_offsets[r], (int)kept[0].sample_offsets[r]);
        for (int64_t k = 0; k < kept[0].sample_offsets[kept[0].n_samples]; k++)
            assert_true(fabs(kept[v].sample_values[k] - kept[0].sample_values[k]) <= 1e-5);
    }
    for (int v = 0; v < 4; v++) {
        model_weights_free(&grads[v]);
        learner_metrics_free(&kept[v]);
    }
    free(old);
    free(old_mb);
    rl_batch_free(&b);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_is_exp_rho_times_grad_logp),
        cmocka_unit_test(test_micro_batches_add_up_to_one_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
