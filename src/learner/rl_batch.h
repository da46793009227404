/* The responses of one rollout batch as the learners see them: each
 * sequence is prompt + response, packed back to back. */
#ifndef KPO_LEARNER_RL_BATCH_H
#define KPO_LEARNER_RL_BATCH_H

#include <stdint.h>

#include "core/error.h"

typedef struct rl_batch {
    int64_t n;            /* sequences (responses) */
    int32_t *tokens;      /* [seq_offsets[n]] prompt + response of each sequence */
    int64_t *seq_offsets; /* [n + 1] */
    int64_t *prompt_len;  /* [n] tokens of the prompt part */
    int64_t *group;       /* [n] prompt index within the step (G sequences share one) */
    double *reward;       /* [n] */
    double *advantage;    /* [n] filled by the learner */
    uint8_t *stopped;     /* [n] ended with a stop token */
} rl_batch;

int rl_batch_alloc(rl_batch *b, int64_t n, int64_t n_tokens, kpo_error *err);
void rl_batch_free(rl_batch *b);

/* Sequences [first, first + count) as a new batch (copies). */
int rl_batch_slice(const rl_batch *b, int64_t first, int64_t count, rl_batch *out,
                   kpo_error *err);

/* Response tokens in the batch (the sum of sequence minus prompt lengths). */
int64_t rl_batch_response_tokens(const rl_batch *b);

#endif
