/* src/rollout: responses and their rewards.
 * defines:
 *   generate                   G samples per prompt, batched KV-cache decoding (this header)
 *   reward, reward_dapo.c, reward_boxed.c
 *       exact-match rewards (dapo, boxed, kpo)
 *   reward_program             the program reward: a user grader over pipes
 *   response_score             a response given as token ids, decoded and scored
 *   math_answer                answer extraction and normalisation (MATH, DAPO)
 *   text_edit                  Python-str-style string edits for the normalisers */
/* Rollout generation: G samples per prompt with the batched KV-cache
 * decoder, each response drawn from its own counter-based stream. */
#ifndef KPO_ROLLOUT_GENERATE_H
#define KPO_ROLLOUT_GENERATE_H

#include <stdint.h>

#include "core/error.h"
#include "model/model_backend.h"
#include "sampling/sampler.h"

/* How responses share the KV-cache slots. */
typedef enum rollout_schedule {
    ROLLOUT_WAVES, /* max_batch responses to their ends, then the next max_batch */
    ROLLOUT_REFILL /* a slot whose response ended is refilled with the next one at once */
} rollout_schedule;

typedef struct rollout_request {
    const int32_t *prompt_tokens;  /* [prompt_offsets[n_prompts]] prompts back to back */
    const int64_t *prompt_offsets; /* [n_prompts + 1] */
    const int64_t *prompt_ids;     /* [n_prompts] dataset index: names the RNG stream */
    int64_t n_prompts;
    int group_size;                /* G samples per prompt */
    int64_t max_new_tokens;
    const int32_t *stop_ids;       /* [n_stop] a response ends after any of these */
    int n_stop;
    sampler_config sampler;
    uint64_t seed;
    int64_t step;                  /* names the RNG stream with the prompt and sample */
    int64_t max_batch;             /* sequences decoded together (KV-cache slots) */
    rollout_schedule schedule;     /* the responses drawn are the same under either */
    int64_t prefill_tokens;        /* most prompt tokens one step feeds (0: no limit); bounds
                                      the activations a step needs beside the KV cache */
    int64_t sample_vocab;          /* only ids below this are sampled (the tokenizer's; the
                                      model's padding rows above it never are); 0: all */
} rollout_request;

/* Responses, prompt-major: response p * G + g is sample g of prompt p. */
typedef struct rollout_responses {
    int64_t n_responses;
    int32_t *tokens;   /* [offsets[n_responses]] sampled tokens, a final stop token included */
    int64_t *offsets;  /* [n_responses + 1] */
    uint8_t *stopped;  /* [n_responses] 1: ended with a stop token; 0: cut at max_new_tokens */
    /* How full the KV-cache slots were: busy_slot_steps / (decode_steps * slots)
     * is the mean fraction of slots a decode step fed (prefill steps included). */
    int64_t slots;           /* KV-cache slots decoded with */
    int64_t decode_steps;    /* model_backend_decode_step calls */
    int64_t busy_slot_steps; /* sequences fed, summed over the steps */
} rollout_responses;

/* Decodes with the model behind b (KV-cache slots: max_batch, or on CUDA
 * as many of them as fit in the device memory free now). */
int rollout_generate(model_backend *b, const rollout_request *req, rollout_responses *out,
                     kpo_error *err);
void rollout_responses_free(rollout_responses *r);

#endif
