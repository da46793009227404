/* Evaluation of a warm-started policy the way RL will use it: prompts
 * rendered as in training, responses from the rollout generator (on
 * whichever device the backend computes), scored by the reward and
 * counted by kpo eval's loop (eval/eval_sample.h). */
#include <stdlib.h>
#include <string.h>

#include "learner/sft.h"
#include "data/prompt_encode.h"
#include "data/stop_tokens.h"
#include "eval/eval_sample.h"
#include "rollout/generate.h"

/* Prompts of every record, packed for rollout_generate. */
static int encode_prompts(const sft_format *fmt, const tokenizer *tok, const dataset *ds,
                          id_list *tokens, int64_t *offsets, int64_t *ids, kpo_error *err)
{
    offsets[0] = 0;
    for (size_t i = 0; i < ds->count; i++) {
        if (sft_encode_prompt(fmt, tok, ds->records[i].problem, tokens, err) != KPO_OK)
            return KPO_ERR;
        offsets[i + 1] = (int64_t)tokens->count;
        ids[i] = (int64_t)i;
    }
    return tokens->failed ? error_set(err, "sft eval: out of memory") : KPO_OK;
}

int sft_evaluate(model_backend *b, const tokenizer *tok, const sft_format *fmt, const dataset *ds,
                 int group_size, double temperature, uint64_t seed, int64_t max_new_tokens,
                 sft_eval_result *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    id_list tokens;
    id_list_init(&tokens);
    int64_t *offsets = malloc((ds->count + 1) * sizeof *offsets); /* [n + 1] */
    int64_t *ids = malloc((ds->count + 1) * sizeof *ids);         /* [n] */
    int64_t *right = calloc(ds->count + 1, sizeof *right);        /* [n] correct per prompt */
    /* The warm start's targets end at end-of-text; a chat turn's end stops
     * a response too. */
    stop_tokens stop;
    int status = offsets && ids && right ? encode_prompts(fmt, tok, ds, &tokens, offsets, ids, err)
                                         : error_set(err, "sft eval: out of memory");
    if (status == KPO_OK)
        status = stop_tokens_resolve("chat", "sft eval", NULL, tok, &stop, err);
    if (status == KPO_OK) {
        rollout_request req = {.prompt_tokens = tokens.ids, .prompt_offsets = offsets,
                               .prompt_ids = ids, .n_prompts = (int64_t)ds->count,
                               .group_size = group_size, .max_new_tokens = max_new_tokens,
                               .stop_ids = stop.ids, .n_stop = stop.n,
                               .sampler = {.temperature = temperature, .top_p = 1.0},
                               .seed = seed, .step = 0, .max_batch = 64,
                               .sample_vocab = (int64_t)tokenizer_vocab_size(tok)};
        /* The reward as training scores it (no reward options). */
        status = eval_sample_count(b, tok, &req, ds, fmt->reward, NULL, right, &out->n_unstopped,
                                   NULL, NULL, err);
    }
    for (size_t p = 0; status == KPO_OK && p < ds->count; p++) {
        out->n_correct += right[p];
        out->n_mixed_groups += right[p] > 0 && right[p] < group_size;
    }
    out->n_prompts = (int64_t)ds->count;
    out->n_responses = out->n_prompts * group_size;
    id_list_free(&tokens);
    free(offsets);
    free(ids);
    free(right);
    return status;
}
