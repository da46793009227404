/* The benchmarks of `kpo eval`: "NAME=FILE.jsonl" specs (or "arith", the
 * built-in arithmetic task's test split), loaded and encoded as prompts. */
#ifndef KPO_EVAL_EVAL_BENCH_H
#define KPO_EVAL_EVAL_BENCH_H

#include <stdint.h>

#include "core/error.h"
#include "data/chat_template.h"
#include "data/dataset.h"
#include "data/prompt_encode.h"
#include "tokenizer/tokenizer.h"

enum { EVAL_BENCH_NAME_MAX = 64 };

typedef struct eval_bench {
    char name[EVAL_BENCH_NAME_MAX]; /* the /bench/<name> group */
    char source[4096];              /* the JSONL path, or "arith" */
    dataset problems;               /* every problem of the source, in file order */
    prompt_set prompts;             /* their encoded prompts; source[] indexes problems */
} eval_bench;

/* How problems become prompts, and the arithmetic task's shape. */
typedef struct eval_prompt_options {
    const char *prompt_template; /* a name or a literal template (prompt_template.h) */
    chat_template_kind chat;
    int64_t arith_problems;
    int arith_difficulty;
    uint64_t arith_seed;
} eval_prompt_options;

/* "arith" or "NAME=FILE": names are [A-Za-z0-9_.-]+, at most 63 bytes,
 * since they become HDF5 group names. */
int eval_bench_parse(const char *spec, eval_bench *out, kpo_error *err);

/* Loads the problems and encodes every prompt (none is dropped: an
 * evaluation that silently skips problems would not be comparable). */
int eval_bench_load(eval_bench *b, const eval_prompt_options *opt, const tokenizer *tok,
                    kpo_error *err);
void eval_bench_free(eval_bench *b);

#endif
