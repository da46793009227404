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
    assert_int_equal(learner_response_logprobs(&cpu, b, logp, NULL, NULL), KPO_OK);
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
    assert_int_equal(learner_response_logprobs(&cpu, &b, logp0, NULL, NULL), KPO_OK);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_is_exp_rho_times_grad_logp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
