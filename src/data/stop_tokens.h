/* The token ids that end a response, from a setting:
 *   model  what the paper's code stopped at: verl's vLLM rollout ends a
 *          response at the tokenizer's end-of-text id and at every
 *          eos_token_id of the model's generation_config.json (Qwen3-4B-Base:
 *          151643 alone; a model without the file: end-of-text alone);
 *   chat   end-of-text and <|im_end|> when the vocabulary has it (a chat
 *          turn's end: kpo's behaviour before the setting existed);
 *   LIST   comma-separated ids or token texts ("151643,<|im_end|>").
 * Duplicates are dropped; order is kept. */
#ifndef KPO_DATA_STOP_TOKENS_H
#define KPO_DATA_STOP_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

enum { STOP_TOKENS_MAX = 16 };

typedef struct stop_tokens {
    int32_t ids[STOP_TOKENS_MAX];
    int n;
} stop_tokens;

/* setting: model | chat | LIST (what = the key or option named in errors,
 * e.g. "rollout.stop"); model_dir is read for generation_config.json with
 * `model`. Every id must be below the tokenizer's vocabulary. */
int stop_tokens_resolve(const char *setting, const char *what, const char *model_dir,
                        const tokenizer *tok, stop_tokens *out, kpo_error *err);

/* "151643 <|endoftext|>, 151645 <|im_end|>" for start-up lines and docs. */
void stop_tokens_describe(const stop_tokens *s, const tokenizer *tok, char *out, size_t size);

#endif
