/* The one "sample k responses per problem, score them, count the correct
 * ones per problem" loop, shared by kpo eval (eval_count.c, a chunk of a
 * benchmark at a time) and kpo sft's held-out evaluation (learner/sft_eval.c).
 * Each caller builds its own generation request (prompt encoding, stop
 * set, sampler, RNG stream) and reward options; this decodes, scores and
 * counts identically for both. */
#ifndef KPO_EVAL_EVAL_SAMPLE_H
#define KPO_EVAL_EVAL_SAMPLE_H

#include <stdint.h>

#include "core/error.h"
#include "data/dataset.h"
#include "model/model_backend.h"
#include "rollout/generate.h"
#include "rollout/reward.h"
#include "tokenizer/text_buf.h"
#include "tokenizer/tokenizer.h"

/* One scored response, as a visitor sees it. */
typedef struct eval_scored {
    int64_t prompt;                /* position among the request's prompts */
    int64_t sample;                /* 0 .. group_size - 1 */
    const dataset_record *record;  /* ds->records[req->prompt_ids[prompt]] */
    const text_buf *text;          /* the response decoded, without its final stop token */
    const reward_result *result;
    int stopped;                   /* ended by a stop token (else cut at max_new_tokens) */
    int64_t n_tokens;              /* response tokens, the stop token included */
} eval_scored;

/* Called for every response in order (prompt-major, samples in order). */
typedef int (*eval_scored_fn)(void *ctx, const eval_scored *r, kpo_error *err);

/* Generates req->group_size responses for each of req's prompts with the
 * model behind be, scores each against the gold answer of
 * ds->records[req->prompt_ids[p]] under kind (opt may be NULL; otherwise a
 * copy with .problem set to the record's problem is used), and adds the
 * correct ones of prompt p to correct[p] and the responses cut at
 * max_new_tokens to *unstopped (when not NULL). visit, when not NULL, sees
 * every response after it is counted. */
int eval_sample_count(model_backend *be, const tokenizer *tok, const rollout_request *req,
                      const dataset *ds, reward_kind kind, const reward_options *opt,
                      int64_t *correct, int64_t *unstopped, eval_scored_fn visit, void *ctx,
                      kpo_error *err);

#endif
