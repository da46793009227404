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
#include "rollout/generate.h"
#include "rollout/reward.h"
#include "sampling/sampler.h"

/* The schema: each part's parameter table under its section, in order
 * (core/param_table.h): [run] [model] [data] [rollout] (train_config.c),
 * [learner] (learner/objective.c), [filter] (filter/filter_params.c),
 * [optim] (model/optimizer_adamw.c). Built on first use. */
const config_key *train_schema(void);
size_t train_schema_len(void);
#define TRAIN_SCHEMA train_schema()
#define TRAIN_SCHEMA_LEN train_schema_len()

/* learner.recompute. */
typedef enum train_recompute {
    TRAIN_RECOMPUTE_OFF,
    TRAIN_RECOMPUTE_ON,
    TRAIN_RECOMPUTE_AUTO /* the memory plan decides (gpu_model_options.recompute_auto) */
} train_recompute;

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
    gpu_attention_impl attention;               /* device = cuda: training attention */
    gpu_decode_attention_impl decode_attention; /* device = cuda: decode-step attention */
    gpu_prefill_attention_impl prefill_attention; /* device = cuda: fresh prompts' attention */
    int decode_graphs;        /* device = cuda: pure decode steps replayed as CUDA graphs */
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
    rollout_schedule schedule; /* waves of max_batch, or refill slots as responses end */
    int64_t prefill_tokens;    /* most prompt tokens one decode step feeds (0: no limit) */
    reward_kind reward;
    int reward_binary;
    const char *reward_program; /* reward = program: the grader's command line */
    double reward_timeout;      /* reward = program: seconds per answer */
    /* [learner], [filter] */
    learner_config learner;
    train_recompute recompute; /* GPU model: recompute each layer in backward */
    /* [optim] */
    adamw_config optim;
} train_settings;

/* Where a checkpoint's step leaves the prompt stream (docs/train.md, "One
 * step"), and what the stream is made of. */
typedef struct train_data_cursor {
    int64_t position;      /* prompts consumed: step x rollout.prompts_per_step */
    int64_t epoch, offset; /* position / problems, position % problems */
    int64_t problems;      /* kept problems */
    uint64_t prompts_hash; /* XXH64 of the tokenized prompts and the stop ids */
} train_data_cursor;

/* Keys a resumed run may change without changing the experiment: the run's
 * length, where and how often things are written, and how the same
 * computation is scheduled (docs/train.md, "Resume"). dotted: "run.steps". */
int train_config_harmless(const char *dotted);

/* A checkpoint's trainer_state.json: {"step", "seed", "data": the cursor,
 * "config": {"section.key": "value", ...} for every key}; malloc'ed. */
char *train_state_json(const config *cfg, int64_t step, const train_data_cursor *cursor);

/* One difference between a checkpoint's config and the resumed run's. */
typedef struct train_config_change {
    char key[128];       /* "learner.objective", or "data" for the prompts */
    char *before, *after; /* malloc'ed */
    int harmless;        /* train_config_harmless */
} train_config_change;

typedef struct train_state_check {
    train_config_change *changes;
    size_t n_changes, n_refused; /* n_refused: those not harmless */
    int legacy;                  /* no "data" and "config" (an older kpo): nothing compared */
} train_state_check;

/* Reads path, the trainer_state.json of the checkpoint of step, and checks
 * it: valid JSON, "step" equal to step, "seed", "data" (position = step x the
 * checkpoint's prompts_per_step) and "config" present and well-formed;
 * errors name path and the field. legacy_ok accepts a state holding only
 * step and seed (an older kpo's; check->legacy). Then every key of cfg is
 * compared with the checkpoint's value (a key the checkpoint lacks with the
 * key's default), and the cursor's problems and prompts_hash with the
 * checkpoint's (key "data"). */
int train_state_check_file(const char *path, int64_t step, const config *cfg,
                           const train_data_cursor *cursor, int legacy_ok,
                           train_state_check *check, kpo_error *err);
void train_state_check_free(train_state_check *check);

/* "learner.objective: kpo -> grpo; optim.lr: 0.001 -> 0.5" over the
 * changes that are (harmless = 1) or are not (0) harmless. */
void train_config_changes_describe(const train_state_check *check, int harmless, char *out,
                                   size_t size);

/* Every part's keys into its settings (param_table_load), then the
 * cross-part meanings and checks. Strings point into cfg, which must
 * outlive the settings. world_size
 * lets the batch be checked against the ranks. */
int train_settings_from_config(const config *cfg, int world_size, train_settings *out,
                               kpo_error *err);

#endif
