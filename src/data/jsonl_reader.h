/* Streaming JSON Lines: one object per line, read one line at a time so a
 * large file never sits in memory whole. Errors name the file and line; with
 * skip_bad, malformed lines are counted and skipped instead. */
#ifndef KPO_DATA_JSONL_READER_H
#define KPO_DATA_JSONL_READER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>

#include "core/error.h"

/* A line longer than this is rejected rather than parsed: no dataset record
 * comes near it, and it bounds memory on a corrupt or binary file. */
#define JSONL_MAX_LINE ((size_t)64 << 20)

typedef struct jsonl_reader {
    FILE *file;
    char path[1024];
    long line;          /* number of the line last read, 1-based */
    char *buffer;       /* getline's buffer */
    size_t capacity;
    bool skip_bad;
    long n_skipped;     /* malformed lines skipped (skip_bad only) */
    kpo_error first_skipped; /* why the first skipped line was bad */
} jsonl_reader;

int jsonl_open(jsonl_reader *r, const char *path, bool skip_bad, kpo_error *err);
void jsonl_close(jsonl_reader *r);

/* Returns 1 with *out set (the caller cJSON_Delete()s it), 0 at the end of
 * the file, KPO_ERR on an error. Blank lines are skipped. */
int jsonl_next(jsonl_reader *r, cJSON **out, kpo_error *err);

/* Parses one line's text (which must hold a JSON object); errors carry no
 * location, the caller adds it. */
int jsonl_parse_object(const char *text, size_t len, cJSON **out, kpo_error *err);

#endif
