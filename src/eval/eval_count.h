/* Sampling k responses per problem and counting the correct ones, with the
 * problems cut into fixed chunks that ranks take round-robin. A chunk's
 * responses depend only on (seed, problem, sample) and the chunk itself,
 * never on how many ranks share the work, so any rank layout writes the
 * same counts. */
#ifndef KPO_EVAL_EVAL_COUNT_H
#define KPO_EVAL_EVAL_COUNT_H

#include <stdint.h>

#include "core/error.h"
#include "data/stop_tokens.h"
#include "eval/eval_bench.h"
#include "model/model_backend.h"
#include "rollout/generate.h"
#include "rollout/reward.h"
#include "sampling/sampler.h"
#include "tokenizer/text_buf.h"
#include "tokenizer/tokenizer.h"

/* The RNG streams of evaluation are (seed, EVAL_STREAM_STEP, problem index
 * in the source, sample): training steps are 1-based, so an eval never
 * replays a training rollout's stream. */
enum { EVAL_STREAM_STEP = -1 };

typedef struct eval_sampling {
    int64_t k;               /* samples per problem */
    sampler_config sampler;
    int64_t max_new_tokens;
    int64_t max_batch;       /* sequences decoded together */
    rollout_schedule schedule; /* how a chunk's responses share the slots (same tokens) */
    uint64_t seed;
    reward_kind reward;
    const char *reward_program; /* reward program: the grader's command line */
    double reward_timeout;      /* reward program: seconds per answer */
    stop_tokens stop;        /* what ends a response */
} eval_sampling;

/* Problems per chunk: as many whole problems as fit max_batch, at least one. */
int64_t eval_chunk_problems(const eval_sampling *s);

/* Adds, for every chunk c with c % n_ranks == rank, the correct samples of
 * each of its problems to correct[i] (i: position in b->prompts), decoding
 * with the model behind be (eval_device_open). correct is [b->prompts.n]
 * and is left alone for other ranks' problems. With dump, every response
 * is also appended to it as one JSON line (eval_dump.h), this rank's
 * chunks in order, problem-major, samples in order. */
int eval_count_correct(model_backend *be, const tokenizer *tok, const eval_bench *b,
                       const eval_sampling *s, int rank, int n_ranks, int64_t *correct,
                       text_buf *dump, kpo_error *err);

#endif
