/* The GPU model's options for one rank of a training run: what
 * train_device.c creates the model with, and what `kpo train --plan`
 * (train_plan.h) prints the memory plan of without a GPU. */
#ifndef KPO_TRAIN_TRAIN_GPU_OPTIONS_H
#define KPO_TRAIN_TRAIN_GPU_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model_cuda.h"
#include "train/train_config.h"

/* What a rank does and how many share each role (comm_roles' numbers). */
typedef struct train_rank_role {
    bool learner, rollout;
    int learner_size, rollout_size;
} train_rank_role;

/* longest_prompt: the longest prompt of the data (kpo train), or a bound
 * on it (data.max_prompt_tokens, --plan). */
gpu_model_options train_gpu_options(const train_settings *s, const train_rank_role *r,
                                    int64_t longest_prompt);

#endif
