/* kpo eval's defaults from the run it evaluates: the prompt template, chat
 * template, reward (and grader) and arithmetic difficulty the model was
 * trained with, so `kpo eval --model RUN/checkpoints/step-N` prompts and
 * scores it as training did. Sources, each overriding the one before:
 *   1. kpo eval's built-in defaults (dapo, qwen3, dapo, difficulty 1);
 *   2. the model directory's kpo_model.json (kpo sft writes it; a kpo train
 *      checkpoint carries its starting model's): prompt_template,
 *      chat_template, reward, and sft.difficulty when sft.data is arith;
 *   3. the run's resolved config, when the model is a kpo train checkpoint:
 *      the checkpoint's trainer_state.json "config" (an object of
 *      "section.key" values, or the config text) when it holds one, else
 *      the run file RUN/run.h5 beside RUN/checkpoints (root attribute
 *      `config`, the config the run started with): data.prompt_template,
 *      data.chat_template,
 *      rollout.reward (and rollout.reward_program with program), and
 *      data.arith_difficulty when data.train is arith.
 * Options given on the command line win over all of these (cmd_eval.c). */
#ifndef KPO_EVAL_EVAL_DEFAULTS_H
#define KPO_EVAL_EVAL_DEFAULTS_H

#include "core/error.h"

/* One setting and where its value came from. */
typedef struct eval_default {
    char value[4096];
    char source[4608]; /* "kpo eval's default", "DIR/kpo_model.json (reward)", ... */
    int from_run;      /* 1 when a file (kpo_model.json or the run's config) gave it */
} eval_default;

typedef struct eval_defaults {
    eval_default prompt_template, chat_template, reward, reward_program, arith_difficulty;
    char note[4608]; /* a run file that was there but could not be read, or "" */
} eval_defaults;

/* Fills out for the model directory model_dir. Missing files are not
 * errors; a kpo_model.json or trainer_state.json that is not a JSON object
 * is (err names the file). A run file that cannot be read (a build without
 * HDF5) is skipped, with why in out->note. */
int eval_defaults_resolve(const char *model_dir, eval_defaults *out, kpo_error *err);

/* The value of `key` in `[section]` of INI text as config_dump writes it
 * ("key = value  ; origin"), read as inih reads it: trimmed, an inline
 * comment starting at a ';' after whitespace. 1 when found. */
int eval_defaults_config_get(const char *text, const char *section, const char *key, char *out,
                             size_t size);

#endif
