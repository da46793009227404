/* The tokenizer object: its id -> bytes table, added tokens, finishing a
 * load (byte ids, pre-tokeniser) and decoding; the byte tokenizer. */
#include "tokenizer/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* Qwen2's PRETOKENIZE_REGEX (transformers tokenization_qwen2.py), also used
 * unchanged by Qwen2.5 and Qwen3. \p{N} is one digit, so numbers split digit
 * by digit. */
static const char QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* The byte tokenizer's control tokens: what the chat template and the
 * sampler's stop condition need. */
static const char *const BYTE_SPECIALS[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                            "<think>", "</think>"};

tokenizer *tokenizer_alloc(tokenizer_kind kind, size_t n_ids)
{
    tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok)
        return NULL;
    tok->kind = kind;
    tok->eos_id = -1;
    str_map_init(&tok->vocab);
    pair_map_init(&tok->merges);
    if (n_ids) {
        tok->token_bytes = calloc(n_ids, sizeof *tok->token_bytes);
        tok->token_len = calloc(n_ids, sizeof *tok->token_len);
        tok->n_ids = n_ids;
        if (!tok->token_bytes || !tok->token_len) {
            tokenizer_free(tok);
            return NULL;
        }
    }
    return tok;
}

void tokenizer_free(tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t k = 0; k < tok->n_ids; k++)
        free(tok->token_bytes[k]);
    free(tok->token_bytes);
    free(tok->token_len);
    for (size_t k = 0; k < tok->n_added; k++)
        free(tok->added[k].text);
    free(tok->added);
    str_map_free(&tok->vocab);
    pair_map_free(&tok->merges);
    if (tok->pretokenizer)
        pcre2_code_free(tok->pretokenizer);
    free(tok);
}

/* Ids far beyond any real vocabulary mean a corrupt file, not a big model. */
enum { TOKENIZER_MAX_ID = 1 << 24 };

int tokenizer_set_token(tokenizer *tok, int32_t id, const char *bytes, size_t len, kpo_error *err)
{
    if (id < 0 || id >= TOKENIZER_MAX_ID)
        return error_set(err, "token id %ld is out of range", (long)id);
    if ((size_t)id >= tok->n_ids) {
        size_t n = tok->n_ids ? tok->n_ids : 1024;
        while (n <= (size_t)id)
            n *= 2;
        char **bytes_grown = realloc(tok->token_bytes, n * sizeof *bytes_grown);
        if (bytes_grown)
            tok->token_bytes = bytes_grown;
        uint32_t *len_grown = realloc(tok->token_len, n * sizeof *len_grown);
        if (len_grown)
            tok->token_len = len_grown;
        if (!bytes_grown || !len_grown)
            return error_set(err, "out of memory growing the token table");
        memset(tok->token_bytes + tok->n_ids, 0, (n - tok->n_ids) * sizeof *bytes_grown);
        memset(tok->token_len + tok->n_ids, 0, (n - tok->n_ids) * sizeof *len_grown);
        tok->n_ids = n;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return error_set(err, "out of memory");
    if (len) /* an empty token's bytes may be NULL, which memcpy may not be given */
        memcpy(copy, bytes, len);
    copy[len] = '\0';
    free(tok->token_bytes[id]);
    tok->token_bytes[id] = copy;
    tok->token_len[id] = (uint32_t)len;
    return KPO_OK;
}

int tokenizer_add_added(tokenizer *tok, const char *text, int32_t id, bool special,
                        kpo_error *err)
{
    size_t len = strlen(text);
    if (len == 0)
        return error_set(err, "added token %ld is empty", (long)id);
    added_token *grown = realloc(tok->added, (tok->n_added + 1) * sizeof *grown);
    if (!grown)
        return error_set(err, "out of memory");
    tok->added = grown;
    char *copy = strdup(text);
    if (!copy)
        return error_set(err, "out of memory");
    tok->added[tok->n_added++] = (added_token){copy, len, id, special};
    return tokenizer_set_token(tok, id, text, len, err);
}

static int added_longest_first(const void *a, const void *b)
{
    const added_token *x = a, *y = b;
    return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

int tokenizer_finish(tokenizer *tok, kpo_error *err)
{
    /* With no added tokens the array is NULL, which qsort may not be given. */
    if (tok->n_added > 1)
        qsort(tok->added, tok->n_added, sizeof *tok->added, added_longest_first);
    for (size_t k = 0; k < tok->n_added; k++)
        tok->added_first[(unsigned char)tok->added[k].text[0]] = true;
    tok->eos_id = tokenizer_token_id(tok, "<|endoftext|>");
    if (tok->kind == TOKENIZER_BYTE)
        return KPO_OK;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = str_map_get(&tok->vocab, &c, 1);
        if (tok->byte_id[b] < 0)
            return error_set(err, "the vocabulary has no token for byte 0x%02x", b);
    }
    int code;
    PCRE2_SIZE offset;
    tok->pretokenizer = pcre2_compile((PCRE2_SPTR)QWEN2_PATTERN, PCRE2_ZERO_TERMINATED,
                                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code,
                                      &offset, NULL);
    if (!tok->pretokenizer) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(code, message, sizeof message);
        return error_set(err, "pre-tokeniser pattern: %s at %zu", (const char *)message,
                         (size_t)offset);
    }
    /* JIT is an optimisation only; without it matching still works. */
    (void)pcre2_jit_compile(tok->pretokenizer, PCRE2_JIT_COMPLETE);
    return KPO_OK;
}

int tokenizer_init_bytes(tokenizer **out, kpo_error *err)
{
    size_t n_special = sizeof BYTE_SPECIALS / sizeof BYTE_SPECIALS[0];
    tokenizer *tok = tokenizer_alloc(TOKENIZER_BYTE, 256 + n_special);
    if (!tok)
        return error_set(err, "out of memory");
    int status = KPO_OK;
    for (int b = 0; b < 256 && status == KPO_OK; b++) {
        char c = (char)b;
        tok->byte_id[b] = b;
        status = tokenizer_set_token(tok, b, &c, 1, err);
    }
    for (size_t k = 0; k < n_special && status == KPO_OK; k++)
        status = tokenizer_add_added(tok, BYTE_SPECIALS[k], (int32_t)(256 + k), true, err);
    if (status == KPO_OK)
        status = tokenizer_finish(tok, err);
    if (status != KPO_OK) {
        tokenizer_free(tok);
        return KPO_ERR;
    }
    *out = tok;
    return KPO_OK;
}

tokenizer_kind tokenizer_get_kind(const tokenizer *tok)
{
    return tok->kind;
}

size_t tokenizer_vocab_size(const tokenizer *tok)
{
    size_t n = tok->n_ids;
    while (n > 0 && !tok->token_bytes[n - 1])
        n--;
    return n;
}

int32_t tokenizer_token_id(const tokenizer *tok, const char *text)
{
    for (size_t k = 0; k < tok->n_added; k++)
        if (strcmp(tok->added[k].text, text) == 0)
            return tok->added[k].id;
    if (tok->kind == TOKENIZER_BYTE)
        return strlen(text) == 1 ? (unsigned char)text[0] : -1;
    return str_map_get(&tok->vocab, text, strlen(text));
}

int32_t tokenizer_eos_id(const tokenizer *tok)
{
    return tok->eos_id;
}

const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= tok->n_ids || !tok->token_bytes[id])
        return NULL;
    if (len)
        *len = tok->token_len[id];
    return tok->token_bytes[id];
}

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, text_buf *out,
                     kpo_error *err)
{
    for (size_t k = 0; k < n; k++) {
        size_t len;
        const char *bytes = tokenizer_token_bytes(tok, ids[k], &len);
        if (!bytes)
            return error_set(err, "token id %ld (position %zu) is not in the vocabulary",
                             (long)ids[k], k);
        text_buf_append(out, bytes, len);
    }
    if (out->failed)
        return error_set(err, "out of memory while decoding");
    return KPO_OK;
}
