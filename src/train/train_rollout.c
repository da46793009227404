/* The rollout role of one kpo train step (train_rollout.h): this rank's
 * prompts, G samples each, every response's reward. */
#include "train/train_rollout.h"

#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "rollout/generate.h"
#include "rollout/response_score.h"

int train_rollout_step(model_backend *b, train_data *data, const train_settings *s, int64_t step,
                       int64_t first_prompt, int64_t n_prompts, rl_batch *batch,
                       rollout_stats *stats, kpo_error *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = timer_now();
    const int G = s->learner.group_size;
    reward_options reward_opt = {.zero_one = s->reward_binary, .program = s->reward_program,
                                 .program_timeout = s->reward_timeout};
    int64_t *ids = malloc((size_t)(n_prompts + 1) * sizeof *ids);
    int64_t *offsets = malloc((size_t)(n_prompts + 1) * sizeof *offsets);
    int64_t total = 0;
    for (int64_t p = 0; ids && offsets && p < n_prompts; p++) {
        ids[p] = train_data_pick(data, s->seed, step, s->prompts_per_step, first_prompt + p);
        total += data->prompt_offsets[ids[p] + 1] - data->prompt_offsets[ids[p]];
    }
    int32_t *prompts = malloc((size_t)(total + 1) * sizeof *prompts);
    if (!ids || !offsets || !prompts) {
        free(ids);
        free(offsets);
        free(prompts);
        return error_set(err, "rollout: out of memory");
    }
    offsets[0] = 0;
    for (int64_t p = 0; p < n_prompts; p++) {
        int64_t len = data->prompt_offsets[ids[p] + 1] - data->prompt_offsets[ids[p]];
        memcpy(prompts + offsets[p], data->prompt_tokens + data->prompt_offsets[ids[p]],
               (size_t)len * sizeof *prompts);
        offsets[p + 1] = offsets[p] + len;
    }
    rollout_request req = {.prompt_tokens = prompts, .prompt_offsets = offsets,
                           .prompt_ids = ids, .n_prompts = n_prompts, .group_size = G,
                           .max_new_tokens = s->max_new_tokens, .stop_ids = data->stop.ids,
                           .n_stop = data->stop.n, .sampler = s->sampler, .seed = s->seed,
                           .step = step, .max_batch = s->max_batch,
                           .schedule = s->schedule,
                           .sample_vocab = (int64_t)tokenizer_vocab_size(data->tok)};
    rollout_responses out;
    int status = rollout_generate(b, &req, &out, err);
    const int generated = status == KPO_OK;
    if (status == KPO_OK)
        status = rl_batch_alloc(batch, out.n_responses,
                                out.offsets[out.n_responses] + G * offsets[n_prompts], err);
    for (int64_t r = 0; status == KPO_OK && r < out.n_responses; r++) {
        int64_t p = r / G, plen = offsets[p + 1] - offsets[p];
        int64_t rlen = out.offsets[r + 1] - out.offsets[r];
        int64_t at = batch->seq_offsets[r];
        memcpy(batch->tokens + at, prompts + offsets[p], (size_t)plen * sizeof *prompts);
        memcpy(batch->tokens + at + plen, out.tokens + out.offsets[r], (size_t)rlen * sizeof *prompts);
        batch->seq_offsets[r + 1] = at + plen + rlen;
        batch->prompt_len[r] = plen;
        batch->group[r] = first_prompt + p;
        batch->stopped[r] = out.stopped[r];
        reward_result result;
        reward_opt.problem = data->problems.records[ids[p]].problem;
        status = rollout_score_response(data->tok, s->reward, &reward_opt,
                                        out.tokens + out.offsets[r], rlen, out.stopped[r],
                                        data->problems.records[ids[p]].answer, &result, err);
        batch->reward[r] = result.score;
        stats->correct += result.correct;
        stats->responses += 1;
        stats->response_tokens += (double)rlen;
        stats->stopped += out.stopped[r];
        if ((double)rlen > stats->response_length_max)
            stats->response_length_max = (double)rlen;
    }
    if (generated)
        rollout_responses_free(&out);
    free(ids);
    free(offsets);
    free(prompts);
    stats->seconds = timer_now() - t0;
    return status;
}
