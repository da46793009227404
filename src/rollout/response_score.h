/* Scoring a generated response given as token ids: decode (without the
 * final stop token, which is no part of the answer) and apply the reward. */
#ifndef KPO_ROLLOUT_RESPONSE_SCORE_H
#define KPO_ROLLOUT_RESPONSE_SCORE_H

#include <stdint.h>

#include "core/error.h"
#include "rollout/reward.h"
#include "tokenizer/tokenizer.h"

/* tokens[n] as rollout_generate returns them; stopped: the last one is a
 * stop token. */
int rollout_score_response(const tokenizer *tok, reward_kind kind, const reward_options *opt,
                           const int32_t *tokens, int64_t n, int stopped, const char *gold,
                           reward_result *out, kpo_error *err);

#endif
