/* UTF-8 helpers (utf8.h): the byte-level BPE alphabet, sequence lengths,
 * a streaming decoder that never splits a character. */
#include "tokenizer/utf8.h"

#include <string.h>

size_t utf8_sequence_length(const unsigned char *s, size_t avail)
{
    if (avail == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    uint32_t min;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (avail < need)
        return 0;
    uint32_t cp = c & (0xFF >> (need + 1));
    for (size_t k = 1; k < need; k++) {
        if ((s[k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

size_t utf8_count_chars(const char *s, size_t len)
{
    size_t count = 0;
    for (size_t pos = 0; pos < len; count++) {
        size_t n = utf8_sequence_length((const unsigned char *)s + pos, len - pos);
        pos += n ? n : 1;
    }
    return count;
}

size_t utf8_tail_offset(const char *s, size_t len, size_t n)
{
    size_t total = utf8_count_chars(s, len);
    if (total <= n)
        return 0;
    size_t skip = total - n, pos = 0;
    for (size_t k = 0; k < skip; k++) {
        size_t step = utf8_sequence_length((const unsigned char *)s + pos, len - pos);
        pos += step ? step : 1;
    }
    return pos;
}

/* Printable Latin-1 bytes stand for themselves; the other 68 bytes are
 * numbered in order from U+0100, as GPT-2's bytes_to_unicode does. */
static int byte_is_printable(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t utf8_byte_to_symbol(unsigned char b)
{
    if (byte_is_printable(b))
        return b;
    uint32_t n = 0;
    for (unsigned k = 0; k < b; k++)
        n += !byte_is_printable(k);
    return 0x100 + n;
}

static int symbol_to_byte(uint32_t cp)
{
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t n = cp - 0x100, seen = 0;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b) && seen++ == n)
            return (int)b;
    return -1;
}

int utf8_symbols_to_bytes(const char *s, size_t len, text_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t pos = 0; pos < len;) {
        size_t n = utf8_sequence_length(u + pos, len - pos);
        if (n == 0 || n > 2)
            return -1;
        uint32_t cp = n == 1 ? u[pos] : ((uint32_t)(u[pos] & 0x1F) << 6) | (u[pos + 1] & 0x3F);
        int b = symbol_to_byte(cp);
        if (b < 0)
            return -1;
        text_buf_append_char(out, (char)b);
        pos += n;
    }
    return 0;
}

void utf8_append(text_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    text_buf_append(out, b, n);
}

void utf8_stream_init(utf8_stream *st)
{
    memset(st, 0, sizeof *st);
}

/* Could the bytes s[0..n) still grow into a valid sequence? */
static int utf8_is_valid_prefix(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 0;
    size_t need = s[0] >= 0xC2 && s[0] <= 0xDF   ? 2
                  : s[0] >= 0xE0 && s[0] <= 0xEF ? 3
                  : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4
                                                 : 0;
    if (need == 0 || n >= need)
        return 0;
    /* The second byte range is narrower after E0, ED, F0 and F4 (no
     * overlongs, surrogates or code points past U+10FFFF). */
    unsigned char lo = 0x80, hi = 0xBF;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    for (size_t k = 1; k < n; k++) {
        if (s[k] < lo || s[k] > hi)
            return 0;
        lo = 0x80;
        hi = 0xBF;
    }
    return 1;
}

void utf8_stream_push(utf8_stream *st, const char *bytes, size_t len, text_buf *out)
{
    const unsigned char *in = (const unsigned char *)bytes;
    size_t pos = 0;
    /* First complete (or give up on) a character held back earlier. */
    while (st->pending_len > 0 && pos < len) {
        st->pending[st->pending_len++] = in[pos++];
        if (utf8_sequence_length(st->pending, st->pending_len) == st->pending_len) {
            text_buf_append(out, (const char *)st->pending, st->pending_len);
            st->pending_len = 0;
        } else if (!utf8_is_valid_prefix(st->pending, st->pending_len)) {
            /* Pass the first byte through and rescan the rest. */
            unsigned char rest[4];
            size_t n_rest = st->pending_len - 1;
            memcpy(rest, st->pending + 1, n_rest);
            text_buf_append(out, (const char *)st->pending, 1);
            st->pending_len = 0;
            utf8_stream_push(st, (const char *)rest, n_rest, out);
        }
    }
    size_t start = pos;
    while (pos < len) {
        size_t n = utf8_sequence_length(in + pos, len - pos);
        if (n) {
            pos += n;
            continue;
        }
        size_t left = len - pos;
        if (left < 4 && utf8_is_valid_prefix(in + pos, left)) {
            text_buf_append(out, bytes + start, pos - start);
            memcpy(st->pending, in + pos, left);
            st->pending_len = left;
            return;
        }
        pos++; /* an invalid byte: passed through as it is */
    }
    text_buf_append(out, bytes + start, pos - start);
}

void utf8_stream_flush(utf8_stream *st, text_buf *out)
{
    text_buf_append(out, (const char *)st->pending, st->pending_len);
    st->pending_len = 0;
}
