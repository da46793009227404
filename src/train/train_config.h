/* The `kpo train` configuration: the schema of every key (documented in
 * `kpo train --help-config` and docs/train.md) and its translation into the
 * settings the loop uses, with the cross-key checks that must fail before
 * any work starts. */
#ifndef KPO_TRAIN_TRAIN_CONFIG_H
#define KPO_TRAIN_TRAIN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm_gpu_transport.h"
#include "core/config.h"
#include "data/chat_template.h"
#include "learner/learner_step.h"
#include "model/model_backend.h"
#include "model/optimizer_adamw.h"
#include "rollout/reward.h"
#include "rollout/sampler.h"

extern const config_key TRAIN_SCHEMA[];
extern const size_t TRAIN_SCHEMA_LEN;

typedef struct train_settings {
    /* [run] */
    const char *out_dir;
    uint64_t seed;
    int64_t steps;
    int64_t checkpoint_every;
    int keep_checkpoints;
    int64_t log_samples;      /* raw log-ratio sequences recorded per step */
    int64_t dump_responses;   /* responses per step into responses.jsonl (0: off) */
    model_device device;      /* where the model runs (run.device) */
    comm_gpu_mode gpu_comm;   /* cuda: NCCL or host-staged collectives (run.gpu_comm) */
    /* [model] */
    const char *model_path;
    const char *tokenizer;    /* "byte", a directory, or "" for the model's own */
    const char *stop;         /* rollout.stop: model | chat | ids/tokens (data/stop_tokens.h) */
    /* [data] */
    const char *train_data;   /* "arith" or a JSONL file */
    const char *problem_field, *answer_field;
    int arith_difficulty;
    int64_t arith_problems;
    const char *prompt_template;
    chat_template_kind chat_template;
    int64_t max_prompt_tokens;
    /* [rollout] */
    int rollout_ranks;
    int64_t prompts_per_step;
    sampler_config sampler;
    int64_t max_new_tokens;
    int64_t max_batch;
    reward_kind reward;
    int reward_binary;
    const char *reward_program; /* reward = program: the grader's command line */
    double reward_timeout;      /* reward = program: seconds per answer */
    /* [learner], [filter] */
    learner_config learner;
    int recompute;            /* GPU model: recompute each layer in backward */
    /* [optim] */
    adamw_config optim;
} train_settings;

/* Strings point into cfg, which must outlive the settings. world_size
 * lets the batch be checked against the ranks. */
int train_settings_from_config(const config *cfg, int world_size, train_settings *out,
                               kpo_error *err);

#endif
