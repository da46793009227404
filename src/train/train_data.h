/* The training prompts: the dataset, rendered through the prompt and chat
 * templates and tokenized once at start-up, and the step's deterministic
 * selection of them (a fresh shuffle by seed and epoch). */
#ifndef KPO_TRAIN_TRAIN_DATA_H
#define KPO_TRAIN_TRAIN_DATA_H

#include <stdint.h>

#include "core/error.h"
#include "data/dataset.h"
#include "data/stop_tokens.h"
#include "tokenizer/tokenizer.h"
#include "train/train_config.h"

typedef struct train_data {
    dataset problems;          /* kept problems, in dataset order */
    tokenizer *tok;
    int32_t *prompt_tokens;    /* [prompt_offsets[n]] every kept prompt, tokenized */
    int64_t *prompt_offsets;   /* [n + 1] */
    int64_t n;                 /* kept problems */
    int64_t skipped_long;      /* prompts over data.max_prompt_tokens */
    stop_tokens stop;          /* rollout.stop resolved */
    size_t *order;             /* [n] the current epoch's permutation */
    int64_t order_epoch;       /* -1 before the first */
} train_data;

/* Resolves the tokenizer: model.tokenizer, else the model directory's
 * kpo_model.json "tokenizer" entry, else the directory itself. */
int train_data_open(const train_settings *s, train_data *d, kpo_error *err);
void train_data_close(train_data *d);

/* Dataset index of the i-th prompt of a 1-based step: position
 * (step - 1) * per_step + i in the stream of epochs, each epoch a
 * permutation depending only on (seed, epoch). */
int64_t train_data_pick(train_data *d, uint64_t seed, int64_t step, int64_t per_step, int64_t i);

/* The tokenizer named by model.tokenizer / kpo_model.json / the model dir. */
int train_tokenizer_resolve(const char *setting, const char *model_dir, char *out, size_t size,
                            kpo_error *err);

#endif
