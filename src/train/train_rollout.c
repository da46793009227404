/* The rollout role of one kpo train step (train_rollout.h): this rank's
 * prompts, G samples each, every response's reward. */
#include "train/train_rollout.h"

#include <stdlib.h>
#include <string.h>

#include "core/timer.h"
#include "rollout/generate.h"
#include "rollout/response_score.h"

/* This rank's prompts of the step: dataset ids [n_prompts] and their
 * tokens back to back (offsets [n_prompts + 1]). */
typedef struct step_prompts {
    int64_t *ids, *offsets;
    int32_t *tokens;
} step_prompts;

static void step_prompts_free(step_prompts *sp)
{
    free(sp->ids);
    free(sp->offsets);
    free(sp->tokens);
}

static int step_prompts_gather(train_data *data, const train_settings *s, int64_t step,
                               int64_t first_prompt, int64_t n_prompts, step_prompts *sp,
                               kpo_error *err)
{
    sp->ids = malloc((size_t)(n_prompts + 1) * sizeof *sp->ids);
    sp->offsets = malloc((size_t)(n_prompts + 1) * sizeof *sp->offsets);
    int64_t total = 0;
    for (int64_t p = 0; sp->ids && sp->offsets && p < n_prompts; p++) {
        sp->ids[p] = train_data_pick(data, s->seed, step, s->prompts_per_step, first_prompt + p);
        total += data->prompt_offsets[sp->ids[p] + 1] - data->prompt_offsets[sp->ids[p]];
    }
    sp->tokens = malloc((size_t)(total + 1) * sizeof *sp->tokens);
    if (!sp->ids || !sp->offsets || !sp->tokens)
        return error_set(err, "rollout: out of memory");
    sp->offsets[0] = 0;
    for (int64_t p = 0; p < n_prompts; p++) {
        int64_t len = data->prompt_offsets[sp->ids[p] + 1] - data->prompt_offsets[sp->ids[p]];
        memcpy(sp->tokens + sp->offsets[p], data->prompt_tokens + data->prompt_offsets[sp->ids[p]],
               (size_t)len * sizeof *sp->tokens);
        sp->offsets[p + 1] = sp->offsets[p] + len;
    }
    return KPO_OK;
}

/* Prompt + response sequences into batch, each response scored. */
static int fill_batch(const train_data *data, const train_settings *s, int64_t first_prompt,
                      const step_prompts *sp, const rollout_responses *out, rl_batch *batch,
                      rollout_stats *stats, kpo_error *err)
{
    const int G = s->learner.group_size;
    reward_options reward_opt = {.zero_one = s->reward_binary, .program = s->reward_program,
                                 .program_timeout = s->reward_timeout};
    int status = KPO_OK;
    for (int64_t r = 0; status == KPO_OK && r < out->n_responses; r++) {
        int64_t p = r / G, plen = sp->offsets[p + 1] - sp->offsets[p];
        int64_t rlen = out->offsets[r + 1] - out->offsets[r];
        int64_t at = batch->seq_offsets[r];
        memcpy(batch->tokens + at, sp->tokens + sp->offsets[p], (size_t)plen * sizeof *sp->tokens);
        memcpy(batch->tokens + at + plen, out->tokens + out->offsets[r],
               (size_t)rlen * sizeof *sp->tokens);
        batch->seq_offsets[r + 1] = at + plen + rlen;
        batch->prompt_len[r] = plen;
        batch->group[r] = first_prompt + p;
        batch->stopped[r] = out->stopped[r];
        reward_result result;
        reward_opt.problem = data->problems.records[sp->ids[p]].problem;
        status = rollout_score_response(data->tok, s->reward, &reward_opt,
                                        out->tokens + out->offsets[r], rlen, out->stopped[r],
                                        data->problems.records[sp->ids[p]].answer, &result, err);
        batch->reward[r] = result.score;
        stats->correct += result.correct;
        stats->responses += 1;
        stats->response_tokens += (double)rlen;
        stats->stopped += out->stopped[r];
        if ((double)rlen > stats->response_length_max)
            stats->response_length_max = (double)rlen;
    }
    return status;
}

int train_rollout_step(model_backend *b, train_data *data, const train_settings *s, int64_t step,
                       int64_t first_prompt, int64_t n_prompts, rl_batch *batch,
                       rollout_stats *stats, kpo_error *err)
{
    memset(stats, 0, sizeof *stats);
    double t0 = timer_now();
    const int G = s->learner.group_size;
    step_prompts sp = {0};
    if (step_prompts_gather(data, s, step, first_prompt, n_prompts, &sp, err) != KPO_OK) {
        step_prompts_free(&sp);
        return KPO_ERR;
    }
    rollout_request req = {.prompt_tokens = sp.tokens, .prompt_offsets = sp.offsets,
                           .prompt_ids = sp.ids, .n_prompts = n_prompts, .group_size = G,
                           .max_new_tokens = s->max_new_tokens, .stop_ids = data->stop.ids,
                           .n_stop = data->stop.n, .sampler = s->sampler, .seed = s->seed,
                           .step = step, .max_batch = s->max_batch,
                           .schedule = s->schedule, .prefill_tokens = s->prefill_tokens,
                           .sample_vocab = (int64_t)tokenizer_vocab_size(data->tok)};
    rollout_responses out;
    int status = rollout_generate(b, &req, &out, err);
    if (status == KPO_OK) {
        stats->slot_steps = (double)(out.slots * out.decode_steps);
        stats->busy_slot_steps = (double)out.busy_slot_steps;
        status = rl_batch_alloc(batch, out.n_responses,
                                out.offsets[out.n_responses] + G * sp.offsets[n_prompts], err);
        if (status == KPO_OK)
            status = fill_batch(data, s, first_prompt, &sp, &out, batch, stats, err);
        rollout_responses_free(&out);
    }
    step_prompts_free(&sp);
    stats->seconds = timer_now() - t0;
    return status;
}
