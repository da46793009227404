/* Problems to prompt token ids: the prompt template around the problem,
 * the chat template around that, then the tokenizer. Training and
 * evaluation share it so a model is evaluated on exactly the prompts it
 * was trained on. */
#ifndef KPO_DATA_PROMPT_ENCODE_H
#define KPO_DATA_PROMPT_ENCODE_H

#include <stdint.h>

#include "core/error.h"
#include "data/chat_template.h"
#include "data/dataset.h"
#include "tokenizer/tokenizer.h"

/* The encoded prompts of the problems that fit, in dataset order. */
typedef struct prompt_set {
    int32_t *tokens;      /* [offsets[n]] every kept prompt, back to back */
    int64_t *offsets;     /* [n + 1] */
    int64_t *source;      /* [n] index of each kept prompt's problem in the dataset */
    int64_t n;            /* kept problems */
    int64_t skipped_long; /* prompts over max_tokens */
} prompt_set;

/* template_text is a resolved prompt template (prompt_template_resolve).
 * scratch holds the rendered text between the two templates; out gets the
 * ids appended. */
int prompt_encode_one(const char *template_text, chat_template_kind chat, const tokenizer *tok,
                      const char *problem, text_buf *scratch, id_list *out, kpo_error *err);

/* Encodes every problem of ds with the named (or literal) prompt template;
 * prompts longer than max_tokens are skipped and counted (max_tokens <= 0:
 * no limit). */
int prompt_encode_dataset(const dataset *ds, const char *prompt_template, chat_template_kind chat,
                          const tokenizer *tok, int64_t max_tokens, prompt_set *out,
                          kpo_error *err);
void prompt_set_free(prompt_set *p);

#endif
