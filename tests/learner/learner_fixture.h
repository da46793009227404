/* A tiny model and a hand-made rollout batch for the learner tests. */
#ifndef KPO_TESTS_LEARNER_FIXTURE_H
#define KPO_TESTS_LEARNER_FIXTURE_H

#include <stdlib.h>

#include "core/rng.h"
#include "learner/rl_batch.h"
#include "model/model.h"

static inline int fixture_model(model *m, uint64_t seed)
{
    model_config c = {.vocab_size = 48, .hidden_size = 32, .intermediate_size = 48,
                      .num_hidden_layers = 2, .num_attention_heads = 4, .num_key_value_heads = 2,
                      .head_dim = 8, .max_position_embeddings = 128, .rope_theta = 1e4,
                      .rms_norm_eps = 1e-6, .tie_word_embeddings = true};
    if (model_init(m, &c, NULL) != KPO_OK)
        return -1;
    model_init_random(m, seed, 0.3);
    return 0;
}

/* n_groups x G sequences: prompts of 3-6 tokens, responses of 1-12 tokens,
 * rewards 0/1 that vary within most groups. */
static inline int fixture_batch(rl_batch *b, int n_groups, int G, uint64_t seed)
{
    rng_stream rng;
    rng_stream_init(&rng, seed, 0);
    int n = n_groups * G;
    if (rl_batch_alloc(b, n, (int64_t)n * 18, NULL) != KPO_OK)
        return -1;
    for (int i = 0; i < n; i++) {
        int64_t plen = 3 + rng_next_u32(&rng) % 4, rlen = 1 + rng_next_u32(&rng) % 12;
        int64_t at = b->seq_offsets[i];
        for (int64_t t = 0; t < plen + rlen; t++)
            b->tokens[at + t] = (int32_t)(rng_next_u32(&rng) % 48);
        b->seq_offsets[i + 1] = at + plen + rlen;
        b->prompt_len[i] = plen;
        b->group[i] = i / G;
        b->reward[i] = (double)(rng_next_u32(&rng) % 2);
        b->stopped[i] = 1;
    }
    return 0;
}

#endif
