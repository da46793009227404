/* Chat templates: how a user turn is framed for the model. Qwen3's ChatML
 * with the empty think block that enable_thinking=False writes, the same
 * without it (thinking mode), or the raw prompt for base models. */
#ifndef KPO_DATA_CHAT_TEMPLATE_H
#define KPO_DATA_CHAT_TEMPLATE_H

#include "core/error.h"
#include "tokenizer/text_buf.h"
#include "tokenizer/tokenizer.h"

typedef enum chat_template_kind {
    CHAT_TEMPLATE_RAW,           /* the prompt as it is */
    CHAT_TEMPLATE_QWEN3,         /* enable_thinking=False: empty <think></think> block */
    CHAT_TEMPLATE_QWEN3_THINKING /* the assistant turn is left open for <think> */
} chat_template_kind;

/* "raw", "qwen3" or "qwen3-thinking". */
int chat_template_parse(const char *name, chat_template_kind *out, kpo_error *err);
const char *chat_template_name(chat_template_kind kind);

/* The rendered text (one user turn, generation prompt added). */
int chat_template_render(chat_template_kind kind, const char *user, text_buf *out,
                         kpo_error *err);

/* Token ids of the rendered text. The template's control tokens become
 * their ids, but the user text is encoded without special-token matching,
 * so a problem containing "<|im_end|>" cannot close the turn early. */
int chat_template_encode(chat_template_kind kind, const tokenizer *tok, const char *user,
                         id_list *out, kpo_error *err);

#endif
