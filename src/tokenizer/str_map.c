/* The open-addressing hash map from byte strings to int32 values
 * (str_map.h) the vocabulary lives in. */
#include "tokenizer/str_map.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t k = 0; k < len; k++) {
        h ^= (unsigned char)key[k];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

void str_map_init(str_map *m)
{
    memset(m, 0, sizeof *m);
}

void str_map_free(str_map *m)
{
    for (size_t k = 0; k < m->capacity; k++)
        free(m->slots[k].key);
    free(m->slots);
    str_map_init(m);
}

static str_map_slot *str_map_find(const str_map *m, const char *key, size_t len)
{
    size_t mask = m->capacity - 1;
    for (size_t k = hash_bytes(key, len) & mask;; k = (k + 1) & mask) {
        str_map_slot *s = &m->slots[k];
        if (!s->key || (s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

static bool str_map_grow(str_map *m)
{
    str_map bigger = {calloc(m->capacity ? m->capacity * 2 : 1024, sizeof(str_map_slot)),
                      m->capacity ? m->capacity * 2 : 1024, m->count};
    if (!bigger.slots)
        return false;
    for (size_t k = 0; k < m->capacity; k++)
        if (m->slots[k].key)
            *str_map_find(&bigger, m->slots[k].key, m->slots[k].len) = m->slots[k];
    free(m->slots);
    *m = bigger;
    return true;
}

bool str_map_put(str_map *m, const char *key, size_t len, int32_t value)
{
    if (len > UINT32_MAX)
        return false;
    if ((m->count + 1) * 2 > m->capacity && !str_map_grow(m))
        return false;
    str_map_slot *s = str_map_find(m, key, len);
    if (!s->key) {
        s->key = malloc(len ? len : 1);
        if (!s->key)
            return false;
        memcpy(s->key, key, len);
        s->len = (uint32_t)len;
        m->count++;
    }
    s->value = value;
    return true;
}

int32_t str_map_get(const str_map *m, const char *key, size_t len)
{
    if (!m->capacity)
        return -1;
    const str_map_slot *s = str_map_find(m, key, len);
    return s->key ? s->value : -1;
}

void pair_map_init(pair_map *m)
{
    memset(m, 0, sizeof *m);
}

void pair_map_free(pair_map *m)
{
    free(m->slots);
    pair_map_init(m);
}

static pair_map_slot *pair_map_find(const pair_map *m, uint64_t key)
{
    size_t mask = m->capacity - 1;
    for (size_t k = hash_u64(key) & mask;; k = (k + 1) & mask) {
        pair_map_slot *s = &m->slots[k];
        if (s->key == 0 || s->key == key)
            return s;
    }
}

static uint64_t pair_key(int32_t left, int32_t right)
{
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

bool pair_map_put(pair_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged)
{
    if ((m->count + 1) * 2 > m->capacity) {
        size_t capacity = m->capacity ? m->capacity * 2 : 1024;
        pair_map bigger = {calloc(capacity, sizeof(pair_map_slot)), capacity, m->count};
        if (!bigger.slots)
            return false;
        for (size_t k = 0; k < m->capacity; k++)
            if (m->slots[k].key)
                *pair_map_find(&bigger, m->slots[k].key) = m->slots[k];
        free(m->slots);
        *m = bigger;
    }
    uint64_t key = pair_key(left, right);
    pair_map_slot *s = pair_map_find(m, key);
    if (s->key)
        return true;
    *s = (pair_map_slot){key, rank, merged};
    m->count++;
    return true;
}

const pair_map_slot *pair_map_get(const pair_map *m, int32_t left, int32_t right)
{
    if (!m->capacity)
        return NULL;
    const pair_map_slot *s = pair_map_find(m, pair_key(left, right));
    return s->key ? s : NULL;
}
