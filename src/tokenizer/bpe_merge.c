/* Byte-pair merging of one pre-tokenised piece: repeatedly merge the
 * adjacent pair of lowest rank (leftmost on ties), as HF tokenizers' BPE
 * does. A heap of candidate pairs keeps this O(n log n), so an enormous
 * piece (a megabyte without spaces) stays cheap. */
#include <stdlib.h>

#include "tokenizer/tokenizer_internal.h"

typedef struct merge_candidate {
    int32_t rank;
    int32_t left_id, right_id;
    size_t left; /* symbol index of the pair's left half */
} merge_candidate;

typedef struct merge_heap {
    merge_candidate *items; /* [count], a binary min-heap on (rank, left) */
    size_t count, capacity;
} merge_heap;

static int candidate_before(const merge_candidate *a, const merge_candidate *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->left < b->left;
}

static int heap_push(merge_heap *h, merge_candidate c)
{
    if (h->count == h->capacity) {
        size_t capacity = h->capacity ? h->capacity * 2 : 64;
        merge_candidate *grown = realloc(h->items, capacity * sizeof *grown);
        if (!grown)
            return -1;
        h->items = grown;
        h->capacity = capacity;
    }
    size_t k = h->count++;
    while (k > 0 && candidate_before(&c, &h->items[(k - 1) / 2])) {
        h->items[k] = h->items[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    h->items[k] = c;
    return 0;
}

static merge_candidate heap_pop(merge_heap *h)
{
    merge_candidate top = h->items[0], last = h->items[--h->count];
    size_t k = 0;
    for (;;) {
        size_t child = 2 * k + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && candidate_before(&h->items[child + 1], &h->items[child]))
            child++;
        if (!candidate_before(&h->items[child], &last))
            break;
        h->items[k] = h->items[child];
        k = child;
    }
    if (h->count > 0)
        h->items[k] = last;
    return top;
}

static const size_t NONE = (size_t)-1;

typedef struct symbol_list {
    int32_t *id;  /* [n] current token of each symbol; -1 once merged away */
    size_t *next; /* [n] index of the next live symbol or NONE */
    size_t *prev; /* [n] */
} symbol_list;

static int push_pair(const tokenizer *tok, merge_heap *heap, const symbol_list *s, size_t left)
{
    if (left == NONE || s->next[left] == NONE)
        return 0;
    int32_t a = s->id[left], b = s->id[s->next[left]];
    const pair_map_slot *m = pair_map_get(&tok->merges, a, b);
    if (!m)
        return 0;
    return heap_push(heap, (merge_candidate){m->rank, a, b, left});
}

int bpe_encode_piece(const tokenizer *tok, const unsigned char *piece, size_t len, id_list *out,
                     kpo_error *err)
{
    if (len == 1) {
        id_list_push(out, tok->byte_id[piece[0]]);
        return KPO_OK;
    }
    symbol_list s = {malloc(len * sizeof *s.id), malloc(len * sizeof *s.next),
                     malloc(len * sizeof *s.prev)};
    merge_heap heap = {0};
    int status = KPO_OK;
    if (!s.id || !s.next || !s.prev) {
        status = error_set(err, "out of memory encoding a %zu-byte piece", len);
        goto done;
    }
    for (size_t k = 0; k < len; k++) {
        s.id[k] = tok->byte_id[piece[k]];
        s.next[k] = k + 1 < len ? k + 1 : NONE;
        s.prev[k] = k > 0 ? k - 1 : NONE;
    }
    for (size_t k = 0; k + 1 < len; k++)
        if (push_pair(tok, &heap, &s, k) != 0)
            goto oom;
    while (heap.count > 0) {
        merge_candidate c = heap_pop(&heap);
        size_t right = s.next[c.left];
        /* Stale: one side was merged into something else since the push. */
        if (s.id[c.left] != c.left_id || right == NONE || s.id[right] != c.right_id)
            continue;
        s.id[c.left] = pair_map_get(&tok->merges, c.left_id, c.right_id)->merged;
        s.id[right] = -1;
        s.next[c.left] = s.next[right];
        if (s.next[right] != NONE)
            s.prev[s.next[right]] = c.left;
        if (push_pair(tok, &heap, &s, s.prev[c.left]) != 0 ||
            push_pair(tok, &heap, &s, c.left) != 0)
            goto oom;
    }
    for (size_t k = 0; k != NONE; k = s.next[k])
        id_list_push(out, s.id[k]);
    goto done;
oom:
    status = error_set(err, "out of memory encoding a %zu-byte piece", len);
done:
    free(s.id);
    free(s.next);
    free(s.prev);
    free(heap.items);
    return status;
}
