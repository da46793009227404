/* Open-addressing hash map from byte strings to int32 values (the vocabulary:
 * 151k entries, looked up once per BPE merge candidate). Keys are copied. */
#ifndef KPO_TOKENIZER_STR_MAP_H
#define KPO_TOKENIZER_STR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct str_map_slot {
    char *key;      /* NULL when empty */
    uint32_t len;
    int32_t value;
} str_map_slot;

typedef struct str_map {
    str_map_slot *slots; /* [capacity], capacity a power of two */
    size_t capacity;
    size_t count;
} str_map;

void str_map_init(str_map *m);
void str_map_free(str_map *m);
/* Inserts or overwrites; false on allocation failure. */
bool str_map_put(str_map *m, const char *key, size_t len, int32_t value);
/* Returns the value or -1 when absent. */
int32_t str_map_get(const str_map *m, const char *key, size_t len);

typedef struct pair_map_slot {
    uint64_t key;   /* (left id << 32 | right id) + 1; 0 marks an empty slot */
    int32_t rank;   /* merge priority, lower first */
    int32_t merged; /* id of the concatenation */
} pair_map_slot;

/* (left id, right id) -> (rank, merged id): the merge table. */
typedef struct pair_map {
    pair_map_slot *slots; /* [capacity] */
    size_t capacity;
    size_t count;
} pair_map;

void pair_map_init(pair_map *m);
void pair_map_free(pair_map *m);
/* Keeps the first (lowest-rank) entry when a pair repeats. */
bool pair_map_put(pair_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
const pair_map_slot *pair_map_get(const pair_map *m, int32_t left, int32_t right);

#endif
