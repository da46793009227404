/* Resolving the stop set (stop_tokens.h): the paper's code's, kpo's chat
 * set, or a list, checked against the tokenizer. */
#include "data/stop_tokens.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/file_util.h"

static int stop_add(stop_tokens *s, int64_t id, const char *what, const char *from,
                    const tokenizer *tok, kpo_error *err)
{
    const int64_t vocab = (int64_t)tokenizer_vocab_size(tok);
    if (id < 0 || id >= vocab)
        return error_set(err, "%s: stop id %lld (%s) is outside the tokenizer's %lld ids", what,
                         (long long)id, from, (long long)vocab);
    for (int k = 0; k < s->n; k++)
        if (s->ids[k] == id)
            return KPO_OK;
    if (s->n == STOP_TOKENS_MAX)
        return error_set(err, "%s: more than %d stop tokens", what, STOP_TOKENS_MAX);
    s->ids[s->n++] = (int32_t)id;
    return KPO_OK;
}

/* eos_token_id of generation_config.json: an integer or a list of them. */
static int add_generation_eos(stop_tokens *s, const char *what, const char *model_dir,
                              const tokenizer *tok, kpo_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
    if (!file_exists(path))
        return KPO_OK; /* vLLM then stops at the tokenizer's eos alone */
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err) != KPO_OK)
        return KPO_ERR;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *eos = root ? cJSON_GetObjectItemCaseSensitive(root, "eos_token_id") : NULL;
    int status = KPO_OK;
    if (!root)
        status = error_set(err, "%s: not valid JSON", path);
    else if (cJSON_IsNumber(eos))
        status = stop_add(s, (int64_t)eos->valuedouble, what, path, tok, err);
    else if (cJSON_IsArray(eos)) {
        const cJSON *item;
        cJSON_ArrayForEach(item, eos) {
            if (status == KPO_OK && !cJSON_IsNumber(item))
                status = error_set(err, "%s: eos_token_id holds a non-integer", path);
            if (status == KPO_OK)
                status = stop_add(s, (int64_t)item->valuedouble, what, path, tok, err);
        }
    } else if (eos && !cJSON_IsNull(eos))
        status = error_set(err, "%s: eos_token_id must be an integer or a list of them", path);
    cJSON_Delete(root);
    return status;
}

/* One item of a list: an integer id or a token's text. */
static int add_item(stop_tokens *s, const char *item, const char *what, const tokenizer *tok,
                    kpo_error *err)
{
    char *end;
    long long id = strtoll(item, &end, 10);
    if (end != item && *end == '\0')
        return stop_add(s, id, what, item, tok, err);
    int32_t found = tokenizer_token_id(tok, item);
    if (found < 0)
        return error_set(err, "%s: '%s' is neither an id nor a token of the tokenizer", what,
                         item);
    return stop_add(s, found, what, item, tok, err);
}

static int add_list(stop_tokens *s, const char *setting, const char *what, const tokenizer *tok,
                    kpo_error *err)
{
    char *copy = strdup(setting);
    if (!copy)
        return error_set(err, "%s: out of memory", what);
    int status = KPO_OK;
    char *item = copy;
    while (status == KPO_OK && item) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        while (isspace((unsigned char)*item))
            item++;
        for (size_t n = strlen(item); n > 0 && isspace((unsigned char)item[n - 1]); n--)
            item[n - 1] = '\0';
        status = *item ? add_item(s, item, what, tok, err)
                       : error_set(err, "%s = '%s': an empty item", what, setting);
        item = comma ? comma + 1 : NULL;
    }
    free(copy);
    return status;
}

int stop_tokens_resolve(const char *setting, const char *what, const char *model_dir,
                        const tokenizer *tok, stop_tokens *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    if (setting[0] == '\0')
        return error_set(err, "%s: give model, chat or a list of ids/tokens", what);
    if (strcmp(setting, "model") == 0 || strcmp(setting, "chat") == 0) {
        if (stop_add(out, tokenizer_eos_id(tok), what, "end of text", tok, err) != KPO_OK)
            return KPO_ERR;
        if (strcmp(setting, "model") == 0)
            return model_dir ? add_generation_eos(out, what, model_dir, tok, err) : KPO_OK;
        const int32_t im_end = tokenizer_token_id(tok, "<|im_end|>");
        return im_end >= 0 ? stop_add(out, im_end, what, "<|im_end|>", tok, err) : KPO_OK;
    }
    return add_list(out, setting, what, tok, err);
}

void stop_tokens_describe(const stop_tokens *s, const tokenizer *tok, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int k = 0; k < s->n && used < size; k++) {
        size_t len = 0;
        const char *bytes = tokenizer_token_bytes(tok, s->ids[k], &len);
        int n = snprintf(out + used, size - used, "%s%d %.*s", k ? ", " : "", (int)s->ids[k],
                         bytes ? (int)(len < 40 ? len : 40) : 0, bytes ? bytes : "");
        if (n < 0)
            return;
        used += (size_t)n;
    }
}
