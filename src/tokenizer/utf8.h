/* UTF-8 helpers: the byte-level alphabet of GPT-2-style BPE, sequence
 * lengths, and a streaming decoder that never splits a character. */
#ifndef KPO_TOKENIZER_UTF8_H
#define KPO_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/text_buf.h"

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 when the
 * bytes there are not a complete, valid sequence. */
size_t utf8_sequence_length(const unsigned char *s, size_t avail);

/* Number of code points, counting each invalid byte as one (as Python does
 * after decoding with errors="surrogateescape"). */
size_t utf8_count_chars(const char *s, size_t len);

/* Byte offset where the last n characters begin. */
size_t utf8_tail_offset(const char *s, size_t len, size_t n);

/* GPT-2 bytes_to_unicode: the printable code point standing for byte b. */
uint32_t utf8_byte_to_symbol(unsigned char b);

/* Converts a byte-level vocabulary string ("Ġworld") back to raw bytes
 * (" world"). Returns -1 when a character is outside the byte alphabet. */
int utf8_symbols_to_bytes(const char *s, size_t len, text_buf *out);

/* Appends the UTF-8 encoding of code point cp. */
void utf8_append(text_buf *out, uint32_t cp);

/* Holds back a trailing incomplete character until its remaining bytes
 * arrive, so streamed text is always whole characters. Bytes that can never
 * form a character are passed through unchanged (lossless). */
typedef struct utf8_stream {
    unsigned char pending[4]; /* [pending_len] start of an incomplete sequence */
    size_t pending_len;
} utf8_stream;

void utf8_stream_init(utf8_stream *st);
/* Appends to out the bytes that are ready. */
void utf8_stream_push(utf8_stream *st, const char *bytes, size_t len, text_buf *out);
/* Emits whatever is held back (the stream ended mid-character). */
void utf8_stream_flush(utf8_stream *st, text_buf *out);

#endif
