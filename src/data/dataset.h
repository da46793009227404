/* src/data: problems and how they become prompts.
 * defines:
 *   dataset                    (problem, answer) records from JSONL datasets (this header)
 *   jsonl_reader               streaming JSON Lines
 *   arith_task                 the built-in arithmetic task
 *   prompt_template            the instruction around a problem (dapo, kpo, boxed, raw, custom)
 *   chat_template              the chat framing of a user turn (qwen3, qwen3-thinking, raw)
 *   prompt_encode              problem to prompt token ids, shared by train, sft and eval
 *   stop_tokens                the token ids that end a response */
/* Math datasets as (problem, answer) records: DAPO-Math-17k (prompt, answer),
 * MATH-500 and AIME24/25 (problem, answer), or any JSONL with configurable
 * field names; plus the deterministic per-epoch order of the records. */
#ifndef KPO_DATA_DATASET_H
#define KPO_DATA_DATASET_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct dataset_record {
    char *problem; /* raw problem text, no instruction */
    char *answer;  /* gold answer as text (JSON numbers as written in the file) */
    long line;     /* source line, 0 for generated records */
} dataset_record;

typedef struct dataset {
    dataset_record *records; /* [count] */
    size_t count;
    long n_skipped;          /* bad lines skipped (skip_bad only) */
    kpo_error first_skipped; /* the first skipped line's problem */
} dataset;

typedef struct dataset_options {
    const char *problem_field; /* NULL: "problem", else "prompt" */
    const char *answer_field;  /* NULL: "answer", else reward_model.ground_truth */
    bool skip_bad;             /* skip and count bad lines instead of failing */
} dataset_options;

void dataset_init(dataset *ds);
void dataset_free(dataset *ds);
void dataset_record_free(dataset_record *rec);
/* Takes ownership of rec's strings. */
int dataset_append(dataset *ds, dataset_record *rec, kpo_error *err);

/* Extracts one record from a parsed line; errors name the field, not the
 * location (the caller knows it). */
int dataset_record_from_json(const cJSON *obj, const dataset_options *opt, dataset_record *out,
                             kpo_error *err);
/* The same, given the text obj was parsed from (text[0..len)), so that a
 * number answer keeps the text it was written with (2.50 stays 2.50). */
int dataset_record_from_line(const cJSON *obj, const char *text, size_t len,
                             const dataset_options *opt, dataset_record *out, kpo_error *err);

int dataset_load(dataset *ds, const char *path, const dataset_options *opt, kpo_error *err);

/* order[0..n) becomes a permutation that depends only on (seed, epoch):
 * Fisher-Yates driven by a Philox stream, so every rank computes the same
 * order without communicating. */
void dataset_shuffle(size_t *order, size_t n, uint64_t seed, uint64_t epoch);

#endif
