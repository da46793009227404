/* The tokenizer's private layout, shared by its loader, encoder and decoder. */
#ifndef KPO_TOKENIZER_TOKENIZER_INTERNAL_H
#define KPO_TOKENIZER_TOKENIZER_INTERNAL_H

#include <stdbool.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/str_map.h"
#include "tokenizer/tokenizer.h"

typedef struct added_token {
    char *text;   /* matched literally, before pre-tokenisation */
    size_t len;
    int32_t id;
    bool special; /* the file's "special" flag: control tokens such as <|im_end|> */
} added_token;

struct tokenizer {
    tokenizer_kind kind;
    char **token_bytes;    /* [n_ids] raw bytes of each id, NULL for unused ids */
    uint32_t *token_len;   /* [n_ids] */
    size_t n_ids;
    str_map vocab;         /* raw bytes -> id, BPE vocabulary only */
    pair_map merges;       /* (left id, right id) -> rank, merged id */
    int32_t byte_id[256];  /* id of each single-byte token */
    added_token *added;    /* [n_added], longest first so a longer token wins */
    size_t n_added;
    bool added_first[256]; /* bytes that can start an added token */
    pcre2_code *pretokenizer;
    int32_t eos_id;
};

/* Allocates an empty tokenizer of the given kind with room for n_ids ids. */
tokenizer *tokenizer_alloc(tokenizer_kind kind, size_t n_ids);
/* Gives id its raw bytes (grows the id table when needed). */
int tokenizer_set_token(tokenizer *tok, int32_t id, const char *bytes, size_t len, kpo_error *err);
int tokenizer_add_added(tokenizer *tok, const char *text, int32_t id, bool special,
                        kpo_error *err);
/* Sorts added tokens, fills added_first, byte_id and eos_id; compiles the
 * pre-tokeniser for BPE. Called once loading is done. */
int tokenizer_finish(tokenizer *tok, kpo_error *err);

/* BPE of one pre-tokenised piece (raw bytes), appending ids to out. */
int bpe_encode_piece(const tokenizer *tok, const unsigned char *piece, size_t len, id_list *out,
                     kpo_error *err);

#endif
