/* Text to ids: added tokens first (literal, leftmost-longest), then the
 * Qwen2 pre-tokeniser regex, then BPE within each piece. */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"

static int encode_ordinary(const tokenizer *tok, const unsigned char *text, size_t len,
                           pcre2_match_data *match, id_list *out, kpo_error *err)
{
    if (tok->kind == TOKENIZER_BYTE) {
        for (size_t k = 0; k < len; k++)
            id_list_push(out, tok->byte_id[text[k]]);
        return KPO_OK;
    }
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(tok->pretokenizer, text, len, pos, 0, match, NULL);
        size_t start = len, end = len;
        if (rc >= 0) {
            PCRE2_SIZE *ovector = pcre2_get_ovector_pointer(match);
            start = ovector[0];
            end = ovector[1] > start ? ovector[1] : start + 1;
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            return error_set(err, "pre-tokeniser at byte %zu: %s", pos, (const char *)message);
        }
        /* Every valid character matches some branch of the pattern, so a gap
         * holds only invalid UTF-8; its bytes are a piece of their own. */
        if (start > pos && bpe_encode_piece(tok, text + pos, start - pos, out, err) != KPO_OK)
            return KPO_ERR;
        if (start < len && bpe_encode_piece(tok, text + start, end - start, out, err) != KPO_OK)
            return KPO_ERR;
        pos = end;
    }
    return KPO_OK;
}

static const added_token *match_added(const tokenizer *tok, const unsigned char *text, size_t left)
{
    if (!tok->added_first[text[0]])
        return NULL;
    for (size_t k = 0; k < tok->n_added; k++) {
        const added_token *a = &tok->added[k];
        if (a->len <= left && memcmp(a->text, text, a->len) == 0)
            return a;
    }
    return NULL;
}

int tokenizer_encode_guarded(const tokenizer *tok, const char *text, size_t len,
                             size_t guard_begin, size_t guard_end, id_list *out, kpo_error *err)
{
    const unsigned char *u = (const unsigned char *)text;
    pcre2_match_data *match = NULL;
    if (tok->pretokenizer) {
        match = pcre2_match_data_create_from_pattern(tok->pretokenizer, NULL);
        if (!match)
            return error_set(err, "out of memory");
    }
    int status = KPO_OK;
    size_t segment = 0, pos = 0;
    while (pos < len && status == KPO_OK) {
        const added_token *a = NULL;
        if (pos < guard_begin || pos >= guard_end) {
            a = match_added(tok, u + pos, len - pos);
            if (a && pos < guard_begin && pos + a->len > guard_begin)
                a = NULL; /* would reach into the guarded span */
        }
        if (!a) {
            pos++;
            continue;
        }
        status = encode_ordinary(tok, u + segment, pos - segment, match, out, err);
        id_list_push(out, a->id);
        pos += a->len;
        segment = pos;
    }
    if (status == KPO_OK)
        status = encode_ordinary(tok, u + segment, len - segment, match, out, err);
    pcre2_match_data_free(match);
    if (status == KPO_OK && out->failed)
        status = error_set(err, "out of memory while encoding");
    return status;
}

int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int flags, id_list *out,
                     kpo_error *err)
{
    /* Without special matching the whole text is guarded. */
    size_t guard_end = (flags & TOKENIZER_MATCH_SPECIAL) ? 0 : len;
    return tokenizer_encode_guarded(tok, text, len, 0, guard_end, out, err);
}
