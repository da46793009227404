/* The CPU model's own consistency: KV-cache decode reproduces the training
 * forward's logits, backward agrees with finite differences, results do not
 * depend on the run, bad token ids are refused, and AdamW behaves as
 * specified. The comparison with PyTorch is test_model_reference.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model/cpu/model_compute.h"
#include "model/optimizer_adamw.h"
#include "model_test_util.h"

static const int32_t TOKENS[] = {3, 17, 5, 52, 8, 8, 1, 40, 22, 9, 0, 13, 31, 7, 45, 2, 19};
static const int64_t OFFSETS[] = {0, 6, 7, 17};
#define N_TOKENS 17
#define N_SEQS 3

static model_batch test_batch(void)
{
    model_batch b = {TOKENS, N_TOKENS, OFFSETS, N_SEQS};
    return b;
}

static void forward_logits(const model *m, float *logits)
{
    model_batch b = test_batch();
    model_acts acts;
    kpo_error err;
    assert_int_equal(model_acts_init(&acts, m, N_TOKENS, &err), KPO_OK);
    assert_int_equal(model_forward_train(m, &b, &acts, &err), KPO_OK);
    model_logits(m, &acts, logits);
    model_acts_free(&acts);
}

/* Prefill each sequence's first part in one batched call, then step the
 * rest one token at a time for all sequences together. */
static void test_decode_matches_forward(void **state)
{
    (void)state;
    const int64_t heads[][2] = {{4, 4}, {4, 1}, {6, 2}};
    for (int k = 0; k < 3; k++) {
        model m;
        test_tiny_model(&m, k != 1, heads[k][0], heads[k][1], 21 + k);
        const int64_t V = m.config.vocab_size;
        float *want = malloc(N_TOKENS * V * sizeof *want), *got = malloc(N_SEQS * V * sizeof *got);
        forward_logits(&m, want);
        model_kv_cache cache;
        kpo_error err;
        assert_int_equal(model_kv_cache_init(&cache, &m, 4, 16, &err), KPO_OK);
        const int64_t slots[N_SEQS] = {2, 0, 3}, prefill[N_SEQS] = {3, 1, 4};
        int32_t toks[N_TOKENS];
        int64_t n = 0;
        for (int s = 0; s < N_SEQS; s++)
            for (int64_t j = 0; j < prefill[s]; j++)
                toks[n++] = TOKENS[OFFSETS[s] + j];
        assert_int_equal(model_decode_step(&m, &cache, N_SEQS, slots, prefill, toks, got, &err),
                         KPO_OK);
        double worst = 0;
        for (int s = 0; s < N_SEQS; s++)
            worst = fmax(worst, test_compare("prefill", got + s * V,
                                             want + (OFFSETS[s] + prefill[s] - 1) * V, V));
        for (int64_t step = 0;; step++) {
            int64_t ids[N_SEQS], ones[N_SEQS], map[N_SEQS], live = 0;
            for (int s = 0; s < N_SEQS; s++) {
                const int64_t pos = prefill[s] + step;
                if (OFFSETS[s] + pos >= OFFSETS[s + 1])
                    continue;
                ids[live] = slots[s];
                ones[live] = 1;
                toks[live] = TOKENS[OFFSETS[s] + pos];
                map[live++] = OFFSETS[s] + pos;
            }
            if (!live)
                break;
            assert_int_equal(model_decode_step(&m, &cache, live, ids, ones, toks, got, &err),
                             KPO_OK);
            for (int64_t i = 0; i < live; i++) {
                char name[64];
                snprintf(name, sizeof name, "step %lld token %lld", (long long)step,
                         (long long)map[i]);
                worst = fmax(worst, test_compare(name, got + i * V, want + map[i] * V, V));
            }
        }
        printf("decode vs forward (heads %lld/%lld): worst %.3e\n", (long long)heads[k][0],
               (long long)heads[k][1], worst);
        assert_true(worst < 1e-4);
        /* A full slot refuses more tokens instead of writing past it. */
        int64_t one = 1, slot = 1;
        cache.lengths[1] = 16;
        assert_int_equal(model_decode_step(&m, &cache, 1, &slot, &one, toks, got, &err), KPO_ERR);
        model_kv_cache_free(&cache);
        free(want);
        free(got);
        model_free(&m);
    }
}

/* loss = sum_t a_t logp_t + b_t H_t on the test batch, in double. */
static double batch_loss(const model *m, model_acts *acts, const int32_t *targets,
                         const float *a, const float *b)
{
    model_batch batch = test_batch();
    kpo_error err;
    float logp[N_TOKENS], ent[N_TOKENS];
    assert_int_equal(model_forward_train(m, &batch, acts, &err), KPO_OK);
    model_logprobs(m, acts, targets, logp, ent);
    double loss = 0;
    for (int t = 0; t < N_TOKENS; t++)
        loss += (double)a[t] * logp[t] + (double)b[t] * ent[t];
    return loss;
}

static void test_finite_differences(void **state)
{
    (void)state;
    for (int tied = 0; tied < 2; tied++) {
        model m;
        test_tiny_model(&m, tied, 4, 2, 5);
        model_batch batch = test_batch();
        int32_t targets[N_TOKENS];
        model_batch_next_targets(&batch, targets);
        float a[N_TOKENS], b[N_TOKENS];
        for (int t = 0; t < N_TOKENS; t++) {
            a[t] = (float)sin(1.3 * t + 0.2);
            b[t] = (float)cos(0.7 * t);
        }
        model_acts acts;
        model_weights grads;
        kpo_error err;
        assert_int_equal(model_acts_init(&acts, &m, N_TOKENS, &err), KPO_OK);
        assert_int_equal(model_weights_init(&m, &grads, &err), KPO_OK);
        batch_loss(&m, &acts, targets, a, b);
        assert_int_equal(model_backward(&m, &acts, targets, a, b, &grads, &err), KPO_OK);
        const char *names[] = {"model.embed_tokens.weight",
                               "model.layers.0.self_attn.q_proj.weight",
                               "model.layers.0.self_attn.k_norm.weight",
                               "model.layers.1.self_attn.v_proj.weight",
                               "model.layers.0.input_layernorm.weight",
                               "model.layers.1.mlp.down_proj.weight", "model.norm.weight",
                               "lm_head.weight"};
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
            const model_param *p = model_find_param(&m, names[k]);
            if (!p) {
                assert_true(tied); /* only lm_head is absent, and only when tied */
                continue;
            }
            for (int probe = 0; probe < 3; probe++) {
                /* Embedding rows only get gradient where a batch token uses them. */
                const int64_t i = p->offset + (k == 0 ? TOKENS[3 * probe] * m.config.hidden_size + probe
                                                      : (probe * 7919) % p->numel);
                const float saved = m.weights.data[i], h = 1e-2f;
                m.weights.data[i] = saved + h;
                double up = batch_loss(&m, &acts, targets, a, b);
                m.weights.data[i] = saved - h;
                double down = batch_loss(&m, &acts, targets, a, b);
                m.weights.data[i] = saved;
                const double fd = (up - down) / (2 * h), an = grads.data[i];
                printf("  %-45s [%lld] analytic %+.6e  finite diff %+.6e\n", names[k],
                       (long long)(i - p->offset), an, fd);
                /* fp32 loss: central differences carry ~1e-2 relative noise
                 * and curvature; wrong signs, factors or missing terms do not
                 * fit in this. */
                assert_true(fabs(fd - an) <= 1e-2 * fabs(an) + 5e-3);
            }
        }
        model_weights_free(&grads);
        model_acts_free(&acts);
        model_free(&m);
    }
}

static void test_deterministic_and_validated(void **state)
{
    (void)state;
    model m;
    test_tiny_model(&m, 1, 4, 2, 9);
    model_batch batch = test_batch();
    int32_t targets[N_TOKENS];
    model_batch_next_targets(&batch, targets);
    float ones[N_TOKENS];
    for (int t = 0; t < N_TOKENS; t++)
        ones[t] = 1.0f;
    model_weights g1, g2;
    model_acts acts;
    kpo_error err;
    assert_int_equal(model_acts_init(&acts, &m, N_TOKENS, &err), KPO_OK);
    assert_int_equal(model_weights_init(&m, &g1, &err), KPO_OK);
    assert_int_equal(model_weights_init(&m, &g2, &err), KPO_OK);
    model_weights *gs[2] = {&g1, &g2};
    for (int r = 0; r < 2; r++) {
        assert_int_equal(model_forward_train(&m, &batch, &acts, &err), KPO_OK);
        assert_int_equal(model_backward(&m, &acts, targets, ones, ones, gs[r], &err), KPO_OK);
    }
    assert_memory_equal(g1.data, g2.data, (size_t)g1.n_params * sizeof(float));
    int32_t bad[N_TOKENS];
    memcpy(bad, TOKENS, sizeof bad);
    bad[9] = 53;
    model_batch bad_batch = {bad, N_TOKENS, OFFSETS, N_SEQS};
    assert_int_equal(model_forward_train(&m, &bad_batch, &acts, &err), KPO_ERR);
    printf("  %s\n", err.message);
    assert_non_null(strstr(err.message, "sequence 2, position 2: token id 53 is out of range"));
    model_weights_free(&g1);
    model_weights_free(&g2);
    model_acts_free(&acts);
    model_free(&m);
}

static void test_adamw(void **state)
{
    (void)state;
    model m;
    test_tiny_model(&m, 0, 4, 2, 1);
    model_weights g;
    kpo_error err;
    assert_int_equal(model_weights_init(&m, &g, &err), KPO_OK);
    adamw_config c = adamw_config_default();
    c.lr = 1e-2;
    c.warmup_steps = 4;
    c.weight_decay = 0.1;
    c.max_grad_norm = 1.0;
    assert_true(fabs(adamw_lr_at(&c, 1) - 2.5e-3) < 1e-12);
    assert_true(fabs(adamw_lr_at(&c, 4) - 1e-2) < 1e-12);
    assert_true(fabs(adamw_lr_at(&c, 100) - 1e-2) < 1e-12);
    /* verl's schedule: warmup over rollout steps of 3 updates each; the
     * scheduler has not stepped during the first batch (lr 0), then 1/4,
     * 2/4, 3/4 of the peak, then the peak. */
    adamw_config verl = c;
    verl.schedule = ADAMW_SCHEDULE_VERL;
    verl.updates_per_rollout = 3;
    const double want[] = {0, 0, 0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1, 1};
    for (int64_t step = 1; step <= 14; step++)
        assert_true(fabs(adamw_lr_at(&verl, step) - want[step - 1] * 1e-2) < 1e-15);
    verl.warmup_steps = 0; /* int(0.05 * 16) = 0 in the paper's 16-step runs */
    assert_true(adamw_lr_at(&verl, 1) == 1e-2);
    adamw_state s;
    assert_int_equal(adamw_init(&s, &m, &c, &err), KPO_OK);
    for (int64_t i = 0; i < g.n_params; i++)
        g.data[i] = (i % 2 ? 1.0f : -1.0f) * 3.0f;
    model before;
    memcpy(&before, &m, sizeof m);
    float *w0 = malloc((size_t)g.n_params * sizeof *w0);
    memcpy(w0, m.weights.data, (size_t)g.n_params * sizeof *w0);
    double norm;
    adamw_step(&s, &m, &g, &norm);
    assert_true(fabs(norm - 3.0 * sqrt((double)g.n_params)) < 1e-6 * norm);
    assert_true(fabs(adamw_grad_norm(&g) - 1.0) < 1e-4); /* clipped in place */
    /* First step with bias correction: the Adam part is lr * sign(g). */
    const double lr = 2.5e-3;
    for (size_t k = 0; k < m.n_params_table; k++) {
        const model_param *p = &m.params[k];
        const int64_t i = p->offset;
        const double sign = i % 2 ? 1.0 : -1.0;
        const double decay = p->is_norm ? 0.0 : lr * 0.1 * w0[i];
        const double want = w0[i] - decay - lr * sign;
        assert_true(fabs(m.weights.data[i] - want) < 1e-6);
    }
    /* Zero gradient: only the decay moves non-norm weights, norms stay. */
    memset(g.data, 0, (size_t)g.n_params * sizeof *g.data);
    memset(s.m, 0, (size_t)g.n_params * sizeof *s.m);
    memset(s.v, 0, (size_t)g.n_params * sizeof *s.v);
    memcpy(w0, m.weights.data, (size_t)g.n_params * sizeof *w0);
    adamw_step(&s, &m, &g, NULL);
    for (size_t k = 0; k < m.n_params_table; k++) {
        const model_param *p = &m.params[k];
        const int64_t i = p->offset + p->numel - 1;
        const double want = p->is_norm ? w0[i] : w0[i] * (1 - 5e-3 * 0.1);
        assert_true(fabs(m.weights.data[i] - want) < 1e-7);
    }
    free(w0);
    adamw_free(&s);
    model_weights_free(&g);
    model_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_matches_forward),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_deterministic_and_validated),
        cmocka_unit_test(test_adamw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
