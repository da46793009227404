/* Reading a HF model directory's tokenizer: vocab.json + merges.txt (+ the
 * added tokens of tokenizer_config.json), or tokenizer.json. Vocabulary
 * strings are in GPT-2's byte-level alphabet and are stored as raw bytes. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static int load_json(const char *path, cJSON **out, kpo_error *err)
{
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err) != KPO_OK)
        return KPO_ERR;
    *out = cJSON_ParseWithLength(text, len);
    if (!*out) {
        const char *at = cJSON_GetErrorPtr();
        long offset = at && at >= text && at <= text + len ? (long)(at - text) : -1;
        free(text);
        return error_set(err, "%s: malformed JSON near byte %ld", path, offset);
    }
    free(text);
    return KPO_OK;
}

/* A vocabulary symbol string -> raw bytes, into scratch. */
static int symbol_bytes(const char *symbol, text_buf *scratch)
{
    text_buf_clear(scratch);
    return utf8_symbols_to_bytes(symbol, strlen(symbol), scratch) == 0 && !scratch->failed ? 0
                                                                                          : -1;
}

/* The earlier vocabulary entry with this id (there is one: the caller saw
 * the id taken); only looked for when reporting the clash. */
static const char *vocab_entry_with_id(const cJSON *vocab, const cJSON *before, int32_t id)
{
    for (const cJSON *e = vocab->child; e && e != before; e = e->next)
        if (cJSON_IsNumber(e) && e->valuedouble == (double)id)
            return e->string;
    return "?";
}

static int add_vocab(tokenizer *tok, const cJSON *vocab, const char *path, kpo_error *err)
{
    if (!cJSON_IsObject(vocab))
        return error_set(err, "%s: the vocabulary is not a JSON object", path);
    text_buf bytes;
    text_buf_init(&bytes);
    int status = KPO_OK;
    for (const cJSON *e = vocab->child; e && status == KPO_OK; e = e->next) {
        int32_t id = -1;
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= 1 << 24 ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            status = error_set(err, "%s: token \"%s\" has no valid integer id", path, e->string);
        else if (symbol_bytes(e->string, &bytes) != 0)
            status = error_set(err, "%s: token \"%s\" is not in the byte-level alphabet", path,
                               e->string);
        else if ((id = (int32_t)e->valuedouble, tokenizer_token_bytes(tok, id, NULL)))
            /* Two strings for one id cannot both decode: the vocabulary is corrupt. */
            status = error_set(err, "%s: tokens \"%s\" and \"%s\" share id %ld", path,
                               vocab_entry_with_id(vocab, e, id), e->string, (long)id);
        else if (str_map_get(&tok->vocab, bytes.data ? bytes.data : "", bytes.len) >= 0)
            /* A JSON object repeating a key: which id encodes it would be arbitrary. */
            status = error_set(err, "%s: token \"%s\" appears twice (ids %ld and %ld)", path,
                               e->string,
                               (long)str_map_get(&tok->vocab, bytes.data ? bytes.data : "",
                                                 bytes.len),
                               (long)id);
        else if (tokenizer_set_token(tok, id, bytes.data, bytes.len, err) != KPO_OK ||
                 !str_map_put(&tok->vocab, bytes.data, bytes.len, id))
            status = error_prefix(err, "%s: ", path);
    }
    text_buf_free(&bytes);
    return status;
}

static int32_t symbol_id(const tokenizer *tok, const char *symbol, size_t len, text_buf *scratch)
{
    text_buf_clear(scratch);
    if (utf8_symbols_to_bytes(symbol, len, scratch) != 0 || scratch->failed)
        return -1;
    return str_map_get(&tok->vocab, scratch->data ? scratch->data : "", scratch->len);
}

/* One merge rule "a b" of the given rank. */
static int add_merge(tokenizer *tok, const char *a, size_t a_len, const char *b, size_t b_len,
                     int32_t rank, text_buf *scratch, kpo_error *err)
{
    int32_t left = symbol_id(tok, a, a_len, scratch);
    int32_t right = symbol_id(tok, b, b_len, scratch);
    if (left < 0 || right < 0)
        return error_set(err, "merge '%.*s %.*s' names a token not in the vocabulary", (int)a_len,
                         a, (int)b_len, b);
    text_buf joined;
    text_buf_init(&joined);
    text_buf_append(&joined, tok->token_bytes[left], tok->token_len[left]);
    text_buf_append(&joined, tok->token_bytes[right], tok->token_len[right]);
    int32_t merged = joined.failed ? -1 : str_map_get(&tok->vocab, joined.data, joined.len);
    text_buf_free(&joined);
    if (merged < 0)
        return error_set(err, "merge '%.*s %.*s': the merged token is not in the vocabulary",
                         (int)a_len, a, (int)b_len, b);
    if (!pair_map_put(&tok->merges, left, right, rank, merged))
        return error_set(err, "out of memory");
    return KPO_OK;
}

static int load_merges_txt(tokenizer *tok, const char *path, kpo_error *err)
{
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err) != KPO_OK)
        return KPO_ERR;
    text_buf scratch;
    text_buf_init(&scratch);
    int status = KPO_OK;
    int32_t rank = 0;
    long line_no = 0;
    for (char *line = text; line < text + len && status == KPO_OK;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end)
            end = text + len;
        line_no++;
        size_t line_len = (size_t)(end - line);
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (line_len > 0 && !(line_no == 1 && strncmp(line, "#version", 8) == 0)) {
            char *space = memchr(line, ' ', line_len);
            if (!space || space == line || space + 1 == line + line_len)
                status = error_set(err, "%s:%ld: expected 'left right'", path, line_no);
            else if (add_merge(tok, line, (size_t)(space - line), space + 1,
                               (size_t)(line + line_len - space - 1), rank++, &scratch,
                               err) != KPO_OK)
                status = error_prefix(err, "%s:%ld: ", path, line_no);
        }
        line = end + 1;
    }
    text_buf_free(&scratch);
    free(text);
    return status;
}

static int load_merges_json(tokenizer *tok, const cJSON *merges, const char *path,
                            kpo_error *err)
{
    if (!cJSON_IsArray(merges))
        return error_set(err, "%s: model.merges is not an array", path);
    text_buf scratch;
    text_buf_init(&scratch);
    int status = KPO_OK;
    int32_t rank = 0;
    for (const cJSON *m = merges->child; m && status == KPO_OK; m = m->next, rank++) {
        /* Older files write "a b", newer ones ["a", "b"]. */
        const char *a = NULL, *b = NULL;
        size_t a_len = 0, b_len = 0;
        if (cJSON_IsString(m)) {
            const char *space = strchr(m->valuestring, ' ');
            if (space) {
                a = m->valuestring;
                a_len = (size_t)(space - a);
                b = space + 1;
                b_len = strlen(b);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring;
            b = m->child->next->valuestring;
            a_len = strlen(a);
            b_len = strlen(b);
        }
        if (!a || a_len == 0 || b_len == 0)
            status = error_set(err, "%s: model.merges[%ld] is not a pair", path, (long)rank);
        else if (add_merge(tok, a, a_len, b, b_len, rank, &scratch, err) != KPO_OK)
            status = error_prefix(err, "%s: model.merges[%ld]: ", path, (long)rank);
    }
    text_buf_free(&scratch);
    return status;
}

static int add_one_added(tokenizer *tok, const cJSON *entry, long id, const char *path,
                         kpo_error *err)
{
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(entry, "content");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(entry, "special");
    if (!cJSON_IsString(content) || id < 0 || id >= 1 << 24)
        return error_set(err, "%s: added token %ld has no content or a bad id", path, id);
    /* An added token may restate a vocabulary entry (GPT-2's <|endoftext|>),
     * but a different string under a taken id would not round-trip. */
    size_t have_len;
    const char *have = tokenizer_token_bytes(tok, (int32_t)id, &have_len);
    if (have && (have_len != strlen(content->valuestring) ||
                 memcmp(have, content->valuestring, have_len) != 0))
        return error_set(err, "%s: added token \"%s\" has id %ld, already the id of \"%.*s\"",
                         path, content->valuestring, id, (int)have_len, have);
    return tokenizer_add_added(tok, content->valuestring, (int32_t)id, cJSON_IsTrue(special),
                               err);
}

/* tokenizer_config.json: "added_tokens_decoder": {"151643": {...}, ...}. */
static int load_added_config(tokenizer *tok, const char *path, kpo_error *err)
{
    cJSON *root;
    if (load_json(path, &root, err) != KPO_OK)
        return KPO_ERR;
    const cJSON *decoder = cJSON_GetObjectItemCaseSensitive(root, "added_tokens_decoder");
    int status = KPO_OK;
    /* Only an object's members have keys (the ids); an array's have none. */
    if (decoder && !cJSON_IsObject(decoder)) {
        cJSON_Delete(root);
        return error_set(err, "%s: \"added_tokens_decoder\" is not an object of id -> token",
                         path);
    }
    for (const cJSON *e = decoder ? decoder->child : NULL; e && status == KPO_OK; e = e->next) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (*end != '\0' || end == e->string)
            status = error_set(err, "%s: added_tokens_decoder key '%s' is not an id", path,
                               e->string);
        else
            status = add_one_added(tok, e, id, path, err);
    }
    cJSON_Delete(root);
    return status;
}

static int load_tokenizer_json(tokenizer *tok, const char *path, kpo_error *err)
{
    cJSON *root;
    if (load_json(path, &root, err) != KPO_OK)
        return KPO_ERR;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    int status = KPO_OK;
    if (!cJSON_IsObject(model) || (type && (!cJSON_IsString(type) ||
                                            strcmp(type->valuestring, "BPE") != 0)))
        status = error_set(err, "%s: model.type is not BPE", path);
    if (status == KPO_OK)
        status = add_vocab(tok, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, err);
    if (status == KPO_OK)
        status = load_merges_json(tok, cJSON_GetObjectItemCaseSensitive(model, "merges"), path,
                                  err);
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (status == KPO_OK && added && !cJSON_IsArray(added))
        status = error_set(err, "%s: \"added_tokens\" is not an array", path);
    for (const cJSON *e = cJSON_IsArray(added) ? added->child : NULL; e && status == KPO_OK;
         e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        /* Range-check before converting: a huge double does not fit a long. */
        long id_value = cJSON_IsNumber(id) && id->valuedouble >= 0 &&
                                id->valuedouble < 1 << 24 &&
                                id->valuedouble == (double)(long)id->valuedouble
                            ? (long)id->valuedouble
                            : -1;
        status = add_one_added(tok, e, id_value, path, err);
    }
    cJSON_Delete(root);
    return status;
}

int tokenizer_load(tokenizer **out, const char *dir, kpo_error *err)
{
    if (strcmp(dir, "byte") == 0)
        return tokenizer_init_bytes(out, err);
    char vocab_path[4096], merges_path[4096], config_path[4096], json_path[4096];
    snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir);
    snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir);
    snprintf(config_path, sizeof config_path, "%s/tokenizer_config.json", dir);
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", dir);
    tokenizer *tok = tokenizer_alloc(TOKENIZER_BPE, 0);
    if (!tok)
        return error_set(err, "out of memory");
    int status;
    if (file_exists(vocab_path) && file_exists(merges_path)) {
        cJSON *vocab = NULL;
        status = load_json(vocab_path, &vocab, err);
        if (status == KPO_OK)
            status = add_vocab(tok, vocab, vocab_path, err);
        cJSON_Delete(vocab);
        if (status == KPO_OK)
            status = load_merges_txt(tok, merges_path, err);
        if (status == KPO_OK && file_exists(config_path))
            status = load_added_config(tok, config_path, err);
    } else if (file_exists(json_path)) {
        status = load_tokenizer_json(tok, json_path, err);
    } else {
        status = error_set(err, "%s: no tokenizer.json and no vocab.json + merges.txt", dir);
    }
    if (status == KPO_OK)
        status = tokenizer_finish(tok, err);
    if (status != KPO_OK) {
        tokenizer_free(tok);
        return KPO_ERR;
    }
    *out = tok;
    return KPO_OK;
}
