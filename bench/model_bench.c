/* Times kpo's CPU model: forward + fused log-probs + backward tokens/s on a
 * packed batch, and batched KV-cache decode tokens/s. Driven by
 * bench/bench_model.py, which times the PyTorch reference beside it.
 * usage: model_bench DIR N_SEQS SEQ_LEN DECODE_BATCH DECODE_STEPS ITERS */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model/cpu/model_compute.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: model_bench DIR N_SEQS SEQ_LEN DECODE_BATCH DECODE_STEPS ITERS\n");
        return 2;
    }
    const int64_t S = atoll(argv[2]), L = atoll(argv[3]), B = atoll(argv[4]);
    const int64_t steps = atoll(argv[5]), iters = atoll(argv[6]), T = S * L;
    kpo_error err;
    model m;
    if (model_load(argv[1], &m, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    const int64_t V = m.config.vocab_size;
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *targets = malloc((size_t)T * 4);
    int64_t *offsets = malloc((size_t)(S + 1) * sizeof *offsets);
    float *logp = malloc((size_t)T * 4), *ent = malloc((size_t)T * 4), *ones = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) {
        tokens[t] = (int32_t)((t * 7919 + 13) % V);
        ones[t] = 1.0f;
    }
    for (int64_t s = 0; s <= S; s++)
        offsets[s] = s * L;
    model_batch batch = {tokens, T, offsets, S};
    model_batch_next_targets(&batch, targets);
    model_acts acts;
    model_weights grads;
    if (model_acts_init(&acts, &m, T, &err) != KPO_OK ||
        model_weights_init(&m, &grads, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    double best = 1e30;
    for (int64_t it = 0; it <= iters; it++) { /* iteration 0 warms up */
        double t0 = now();
        model_forward_train(&m, &batch, &acts, &err);
        model_logprobs(&m, &acts, targets, logp, ent);
        model_backward(&m, &acts, targets, ones, ones, &grads, &err);
        double dt = now() - t0;
        if (it > 0 && dt < best)
            best = dt;
    }
    printf("train_tokens_per_s %.1f\n", T / best);
    model_kv_cache cache;
    if (model_kv_cache_init(&cache, &m, B, L + steps, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    int64_t *slots = malloc((size_t)B * 8), *n_new = malloc((size_t)B * 8);
    float *logits = malloc((size_t)(B * V) * 4);
    int32_t *step_tokens = malloc((size_t)(B * L) * 4);
    for (int64_t b = 0; b < B; b++) {
        slots[b] = b;
        n_new[b] = L;
    }
    for (int64_t i = 0; i < B * L; i++)
        step_tokens[i] = tokens[i % T];
    model_decode_step(&m, &cache, B, slots, n_new, step_tokens, logits, &err);
    for (int64_t b = 0; b < B; b++)
        n_new[b] = 1;
    double t0 = now();
    for (int64_t k = 0; k < steps; k++)
        model_decode_step(&m, &cache, B, slots, n_new, step_tokens, logits, &err);
    printf("decode_tokens_per_s %.1f\n", (double)(B * steps) / (now() - t0));
    return 0;
}
