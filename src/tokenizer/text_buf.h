/* Growable byte strings and id lists: the tokenizer, templates and rewards
 * all build outputs of unknown length. On allocation failure the buffer is
 * marked failed and later appends are ignored, so callers check once. */
#ifndef KPO_TOKENIZER_TEXT_BUF_H
#define KPO_TOKENIZER_TEXT_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct text_buf {
    char *data;      /* [len + 1], always NUL-terminated once anything was appended */
    size_t len;
    size_t capacity;
    bool failed;     /* an allocation failed; contents are incomplete */
} text_buf;

void text_buf_init(text_buf *b);
void text_buf_free(text_buf *b);
void text_buf_clear(text_buf *b);
void text_buf_append(text_buf *b, const char *data, size_t len);
void text_buf_append_str(text_buf *b, const char *s);
void text_buf_append_char(text_buf *b, char c);
/* Hands the contents over (malloc'ed, NUL-terminated) and resets b; NULL on failure. */
char *text_buf_take(text_buf *b);

typedef struct id_list {
    int32_t *ids;    /* [count] token ids */
    size_t count;
    size_t capacity;
    bool failed;
} id_list;

void id_list_init(id_list *l);
void id_list_free(id_list *l);
void id_list_push(id_list *l, int32_t id);

#endif
