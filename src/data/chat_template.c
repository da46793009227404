/* Chat templates (chat_template.h): Qwen3 ChatML with or without the empty
 * think block, or the raw prompt. */
#include "data/chat_template.h"

#include <string.h>

/* Qwen3's Jinja template rendered for one user message with
 * add_generation_prompt=True (algorithms.md §7). */
static const char *const PREFIX[] = {"", "<|im_start|>user\n", "<|im_start|>user\n"};
static const char *const SUFFIX[] = {
    "", "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "<|im_end|>\n<|im_start|>assistant\n"};
static const char *const NAMES[] = {"raw", "qwen3", "qwen3-thinking"};

int chat_template_parse(const char *name, chat_template_kind *out, kpo_error *err)
{
    for (int k = 0; k < 3; k++)
        if (strcmp(name, NAMES[k]) == 0) {
            *out = (chat_template_kind)k;
            return KPO_OK;
        }
    return error_set(err, "chat template '%s' is not raw, qwen3 or qwen3-thinking", name);
}

const char *chat_template_name(chat_template_kind kind)
{
    return NAMES[kind];
}

int chat_template_render(chat_template_kind kind, const char *user, text_buf *out,
                         kpo_error *err)
{
    text_buf_append_str(out, PREFIX[kind]);
    text_buf_append_str(out, user);
    text_buf_append_str(out, SUFFIX[kind]);
    return out->failed ? error_set(err, "out of memory rendering a chat") : KPO_OK;
}

int chat_template_encode(chat_template_kind kind, const tokenizer *tok, const char *user,
                         id_list *out, kpo_error *err)
{
    text_buf text;
    text_buf_init(&text);
    int status = chat_template_render(kind, user, &text, err);
    if (status == KPO_OK) {
        size_t begin = strlen(PREFIX[kind]);
        status = tokenizer_encode_guarded(tok, text.data, text.len, begin, begin + strlen(user),
                                          out, err);
    }
    text_buf_free(&text);
    return status;
}
