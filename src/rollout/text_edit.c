/* In-place edits of malloc'ed strings with Python str semantics
 * (text_edit.h), for the normalisers ported from Python graders. */
#include "rollout/text_edit.h"

#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/text_buf.h"
#include "tokenizer/utf8.h"

static int edit_assign(char **s, text_buf *b)
{
    char *out = text_buf_take(b);
    if (!out)
        return -1;
    free(*s);
    *s = out;
    return 0;
}

int edit_replace(char **s, const char *from, const char *to)
{
    size_t from_len = strlen(from);
    if (from_len == 0 || !strstr(*s, from))
        return 0;
    text_buf b;
    text_buf_init(&b);
    const char *p = *s, *hit;
    while ((hit = strstr(p, from))) {
        text_buf_append(&b, p, (size_t)(hit - p));
        text_buf_append_str(&b, to);
        p = hit + from_len;
    }
    text_buf_append_str(&b, p);
    return edit_assign(s, &b);
}

int edit_regex_sub(char **s, const char *pattern, const char *replacement)
{
    pcre2_compile_context *context = pcre2_compile_context_create(NULL);
    if (!context)
        return -1;
    pcre2_set_newline(context, PCRE2_NEWLINE_LF);
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code,
                                   &offset, context);
    pcre2_compile_context_free(context);
    if (!re)
        return -1;
    size_t len = strlen(*s);
    PCRE2_SIZE out_len = len * 2 + 64;
    int status = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        PCRE2_UCHAR *out = malloc(out_len + 1);
        if (!out)
            break;
        /* OVERFLOW_LENGTH: on a too-small buffer out_len becomes the size needed. */
        int rc = pcre2_substitute(re, (PCRE2_SPTR)*s, len, 0,
                                  PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, NULL,
                                  NULL, (PCRE2_SPTR)replacement, PCRE2_ZERO_TERMINATED, out,
                                  &out_len);
        if (rc >= 0) {
            out[out_len] = '\0';
            free(*s);
            *s = (char *)out;
            status = 0;
            break;
        }
        free(out);
        if (rc != PCRE2_ERROR_NOMEMORY)
            break;
    }
    pcre2_code_free(re);
    return status;
}

static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

int edit_keep(char **s, size_t begin, size_t end)
{
    memmove(*s, *s + begin, end - begin);
    (*s)[end - begin] = '\0';
    return 0;
}

int edit_strip(char **s)
{
    size_t len = strlen(*s), begin = 0;
    while (begin < len && is_space((unsigned char)(*s)[begin]))
        begin++;
    while (len > begin && is_space((unsigned char)(*s)[len - 1]))
        len--;
    return edit_keep(s, begin, len);
}

size_t edit_char_len(const char *s)
{
    if (!*s)
        return 0;
    size_t n = utf8_sequence_length((const unsigned char *)s, strnlen(s, 4));
    return n ? n : 1;
}

size_t edit_char_count(const char *s)
{
    return utf8_count_chars(s, strlen(s));
}

size_t edit_count(const char *s, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    if (len == 0)
        return 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

const char *edit_rfind(const char *s, const char *needle)
{
    const char *last = NULL;
    size_t len = strlen(needle);
    for (const char *p = strstr(s, needle); p && len; p = strstr(p + 1, needle))
        last = p;
    return last;
}
