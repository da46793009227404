/* Problems to prompt token ids (prompt_encode.h): prompt template, chat
 * template, tokenizer; shared by training, kpo sft and kpo eval. */
#include "data/prompt_encode.h"

#include <stdlib.h>
#include <string.h>

#include "data/prompt_template.h"

int prompt_encode_one(const char *template_text, chat_template_kind chat, const tokenizer *tok,
                      const char *problem, text_buf *scratch, id_list *out, kpo_error *err)
{
    text_buf_clear(scratch);
    if (prompt_template_render(template_text, problem, scratch, err) != KPO_OK)
        return KPO_ERR;
    return chat_template_encode(chat, tok, scratch->data, out, err);
}

/* Appends ids to the set, growing the token buffer geometrically. */
static int append_prompt(prompt_set *p, size_t *capacity, const id_list *ids, int64_t source,
                         kpo_error *err)
{
    size_t used = (size_t)p->offsets[p->n];
    if (used + ids->count > *capacity) {
        size_t grown_capacity = *capacity;
        while (used + ids->count > grown_capacity)
            grown_capacity *= 2;
        int32_t *grown = realloc(p->tokens, grown_capacity * sizeof *grown);
        if (!grown)
            return error_set(err, "data: out of memory");
        p->tokens = grown;
        *capacity = grown_capacity;
    }
    memcpy(p->tokens + used, ids->ids, ids->count * sizeof *ids->ids);
    p->source[p->n] = source;
    p->offsets[++p->n] = (int64_t)(used + ids->count);
    return KPO_OK;
}

int prompt_encode_dataset(const dataset *ds, const char *prompt_template, chat_template_kind chat,
                          const tokenizer *tok, int64_t max_tokens, prompt_set *out,
                          kpo_error *err)
{
    memset(out, 0, sizeof *out);
    char *template_text = NULL;
    if (prompt_template_resolve(prompt_template, &template_text, err) != KPO_OK)
        return KPO_ERR;
    size_t capacity = 1 << 16;
    out->tokens = malloc(capacity * sizeof *out->tokens);
    out->offsets = malloc((ds->count + 1) * sizeof *out->offsets);
    out->source = malloc((ds->count + 1) * sizeof *out->source);
    int status = (out->tokens && out->offsets && out->source)
                     ? KPO_OK
                     : error_set(err, "data: out of memory");
    if (status == KPO_OK)
        out->offsets[0] = 0;
    text_buf rendered;
    text_buf_init(&rendered);
    for (size_t i = 0; i < ds->count && status == KPO_OK; i++) {
        id_list ids;
        id_list_init(&ids);
        status = prompt_encode_one(template_text, chat, tok, ds->records[i].problem, &rendered,
                                   &ids, err);
        if (status == KPO_OK && max_tokens > 0 && (int64_t)ids.count > max_tokens)
            out->skipped_long++;
        else if (status == KPO_OK)
            status = append_prompt(out, &capacity, &ids, (int64_t)i, err);
        id_list_free(&ids);
    }
    text_buf_free(&rendered);
    free(template_text);
    if (status != KPO_OK)
        prompt_set_free(out);
    return status;
}

void prompt_set_free(prompt_set *p)
{
    free(p->tokens);
    free(p->offsets);
    free(p->source);
    memset(p, 0, sizeof *p);
}

