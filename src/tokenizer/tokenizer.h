/* src/tokenizer: text to token ids and back.
 * defines:
 *   tokenizer                  the public API: load, encode, decode, vocabulary (this header)
 *   tokenizer_load.c           tokenizer.json / tokenizer_config.json, the byte tokenizer
 *   tokenizer_encode.c, bpe_merge.c
 *       pre-tokenization and byte-level BPE merges
 *   tokenizer_internal.h       the private layout the loader, encoder and decoder share
 *   str_map                    byte-string to int32 hash map (the vocabulary)
 *   text_buf                   growable byte strings and id lists
 *   utf8                       UTF-8 helpers and the byte-level alphabet */
/* Tokenizers: Qwen2/2.5/3 byte-level BPE loaded from a model directory, and
 * a byte tokenizer (256 byte tokens + the template's special tokens) for the
 * tiny models. Both map any byte string to ids and back without loss. */
#ifndef KPO_TOKENIZER_TOKENIZER_H
#define KPO_TOKENIZER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tokenizer/text_buf.h"

typedef struct tokenizer tokenizer;

typedef enum tokenizer_kind { TOKENIZER_BPE, TOKENIZER_BYTE } tokenizer_kind;

/* Encode flag: match added/special tokens ("<|im_start|>") in the text
 * before BPE, as HF does with split_special_tokens=false. Without it they
 * are ordinary text, which keeps user content from injecting control tokens. */
enum { TOKENIZER_MATCH_SPECIAL = 1 };

/* dir holds tokenizer.json, or vocab.json + merges.txt (+ tokenizer_config.json
 * for added tokens). The name "byte" gives the byte tokenizer. */
int tokenizer_load(tokenizer **out, const char *dir, kpo_error *err);
int tokenizer_init_bytes(tokenizer **out, kpo_error *err);
void tokenizer_free(tokenizer *tok);

tokenizer_kind tokenizer_get_kind(const tokenizer *tok);
/* One past the largest id (embedding rows needed at least). */
size_t tokenizer_vocab_size(const tokenizer *tok);
/* Id of an added or vocabulary token given its text, -1 if absent. */
int32_t tokenizer_token_id(const tokenizer *tok, const char *text);
/* The end-of-text id ("<|endoftext|>"). */
int32_t tokenizer_eos_id(const tokenizer *tok);

/* Appends the ids of text[0..len) to out. Any bytes are accepted, invalid
 * UTF-8 included (such bytes become their own byte tokens). */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, int flags, id_list *out,
                     kpo_error *err);

/* As tokenizer_encode with special matching, except inside text[guard_begin,
 * guard_end): there added tokens are plain text. The whole string still goes
 * through one pre-tokenisation, so a chat's user span encodes exactly as HF
 * encodes the rendered chat, without letting the user's text inject control
 * tokens. */
int tokenizer_encode_guarded(const tokenizer *tok, const char *text, size_t len,
                             size_t guard_begin, size_t guard_end, id_list *out, kpo_error *err);

/* Appends the bytes of the ids to out; an id outside the vocabulary is an error. */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, text_buf *out,
                     kpo_error *err);

/* The raw bytes of one token (NULL for an unused id). */
const char *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len);

#endif
