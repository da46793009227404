/* The rollout role of one step: this rank's prompts, G samples each, the
 * exact-match reward of every response. */
#ifndef KPO_TRAIN_TRAIN_ROLLOUT_H
#define KPO_TRAIN_TRAIN_ROLLOUT_H

#include <stdint.h>

#include "learner/rl_batch.h"
#include "model/model_backend.h"
#include "train/train_config.h"
#include "train/train_data.h"

typedef struct rollout_stats {
    double correct;        /* responses judged correct */
    double responses;
    double response_tokens;
    double response_length_max;
    double stopped;        /* responses that ended with a stop token */
    double slot_steps;      /* KV-cache slots x decode steps: what the steps could have fed */
    double busy_slot_steps; /* sequences the decode steps fed (rollout_responses) */
    double seconds;
} rollout_stats;

/* Generates and scores the step's prompts [first_prompt, first_prompt +
 * n_prompts) (positions within the step), into batch (prompt + response
 * sequences, prompt-major, group = position within the step), sampling
 * with the model behind b. */
int train_rollout_step(model_backend *b, train_data *data, const train_settings *s, int64_t step,
                       int64_t first_prompt, int64_t n_prompts, rl_batch *batch,
                       rollout_stats *stats, kpo_error *err);

#endif
