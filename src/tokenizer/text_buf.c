/* Growable byte strings and id lists (text_buf.h) that mark themselves
 * failed on allocation failure, so callers check once. */
#include "tokenizer/text_buf.h"

#include <stdlib.h>
#include <string.h>

void text_buf_init(text_buf *b)
{
    memset(b, 0, sizeof *b);
}

void text_buf_free(text_buf *b)
{
    free(b->data);
    text_buf_init(b);
}

void text_buf_clear(text_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static bool text_buf_reserve(text_buf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->capacity)
        return true;
    size_t capacity = b->capacity ? b->capacity : 64;
    while (capacity < need)
        capacity *= 2;
    char *grown = realloc(b->data, capacity);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->data = grown;
    b->capacity = capacity;
    return true;
}

void text_buf_append(text_buf *b, const char *data, size_t len)
{
    if (!text_buf_reserve(b, len))
        return;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void text_buf_append_str(text_buf *b, const char *s)
{
    text_buf_append(b, s, strlen(s));
}

void text_buf_append_char(text_buf *b, char c)
{
    text_buf_append(b, &c, 1);
}

char *text_buf_take(text_buf *b)
{
    if (b->failed) {
        text_buf_free(b);
        return NULL;
    }
    if (!b->data)
        text_buf_append(b, "", 0);
    char *out = b->failed ? NULL : b->data;
    if (!out)
        free(b->data);
    text_buf_init(b);
    return out;
}

void id_list_init(id_list *l)
{
    memset(l, 0, sizeof *l);
}

void id_list_free(id_list *l)
{
    free(l->ids);
    id_list_init(l);
}

void id_list_push(id_list *l, int32_t id)
{
    if (l->failed)
        return;
    if (l->count == l->capacity) {
        size_t capacity = l->capacity ? l->capacity * 2 : 64;
        int32_t *grown = realloc(l->ids, capacity * sizeof *grown);
        if (!grown) {
            l->failed = true;
            return;
        }
        l->ids = grown;
        l->capacity = capacity;
    }
    l->ids[l->count++] = id;
}
