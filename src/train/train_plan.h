/* `kpo train CONFIG... --plan`: the GPU memory plan of a run's ranks,
 * printed without a GPU or MPI, so a run can be sized before it is
 * queued: the model's state, its activations and the rollout's KV cache
 * with the schedule it forces (docs/cuda.md, "The rollout's KV cache in
 * the memory plan"). */
#ifndef KPO_TRAIN_TRAIN_PLAN_H
#define KPO_TRAIN_TRAIN_PLAN_H

#include <stdio.h>

#include "core/error.h"
#include "train/train_config.h"

/* The plan of learner rank 0 and, with separate rollout ranks, of the
 * first rollout rank, for world_size ranks of GPUs with gpu_bytes free
 * each (0: unknown, every KV-cache slot wanted is planned). The model's
 * shape is model.path/config.json; prompts are bounded by
 * data.max_prompt_tokens (kpo train itself uses the data's longest). */
int train_plan_print(const train_settings *s, int world_size, double gpu_bytes, FILE *out,
                     kpo_error *err);

#endif
