/* The GPU model's options for one rank of a training run
 * (train_gpu_options.h). */
#include "train/train_gpu_options.h"

#include <string.h>

/* The largest packed batch this rank runs a training forward on: a
 * learner's micro-batch (learner.micro_batch_tokens, but never less than
 * one sequence: the longest prompt plus max_new_tokens), or without
 * micro-batches its whole share of a mini-batch (for the old log-probs and
 * the update alike). 0 on a rollout-only rank: decode steps have their own
 * activations, counted with the KV cache (the plan's decode_* items). */
static int64_t forward_tokens_bound(const train_settings *s, const train_rank_role *r,
                                    int64_t longest_prompt)
{
    if (!r->learner)
        return 0;
    const int64_t G = s->learner.group_size, M = s->learner.minibatches;
    const int64_t minibatch = s->prompts_per_step / M * G;
    const int64_t share = (minibatch + r->learner_size - 1) / r->learner_size;
    const int64_t longest_sequence = longest_prompt + s->max_new_tokens;
    const int64_t budget = s->learner.micro_batch_tokens;
    return budget <= 0 ? share * longest_sequence
                       : budget > longest_sequence ? budget : longest_sequence;
}

gpu_model_options train_gpu_options(const train_settings *s, const train_rank_role *r,
                                    int64_t longest_prompt)
{
    gpu_model_options o;
    memset(&o, 0, sizeof o);
    o.train = r->learner;
    o.recompute = s->recompute != TRAIN_RECOMPUTE_OFF;
    o.recompute_auto = s->recompute == TRAIN_RECOMPUTE_AUTO;
    o.max_tokens = forward_tokens_bound(s, r, longest_prompt);
    o.logprob_chunk = 0; /* the model's default */
    o.optim = s->optim;
    o.attention = s->attention;
    o.decode_attention = s->decode_attention;
    o.prefill_attention = s->prefill_attention;
    o.decode_graphs = s->decode_graphs;
    if (r->rollout) {
        o.decode_responses = s->prompts_per_step / r->rollout_size * s->learner.group_size;
        o.decode_slots = o.decode_responses < s->max_batch ? o.decode_responses : s->max_batch;
        o.decode_max_len = longest_prompt + s->max_new_tokens;
        o.decode_prefill = longest_prompt;
        o.decode_prefill_budget = s->prefill_tokens;
        o.decode_refill = s->schedule == ROLLOUT_REFILL;
    }
    return o;
}
