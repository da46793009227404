/* The reward kinds by name, and scoring by kind. */
#include "rollout/reward.h"

#include <string.h>

static const char *const NAMES[] = {"dapo", "boxed", "kpo", "program"};
enum { N_KINDS = sizeof NAMES / sizeof NAMES[0] };

int reward_kind_parse(const char *name, reward_kind *out, kpo_error *err)
{
    for (int k = 0; k < N_KINDS; k++)
        if (strcmp(name, NAMES[k]) == 0) {
            *out = (reward_kind)k;
            return KPO_OK;
        }
    return error_set(err, "reward '%s' is not dapo, boxed, kpo or program", name);
}

const char *reward_kind_name(reward_kind kind)
{
    return NAMES[kind];
}

int reward_score(reward_kind kind, const char *response, const char *gold,
                 const reward_options *opt, reward_result *out, kpo_error *err)
{
    switch (kind) {
    case REWARD_DAPO:
        return reward_score_dapo(response, gold, opt, out, err);
    case REWARD_BOXED:
        return reward_score_boxed(response, gold, out, err);
    case REWARD_KPO:
        return reward_score_kpo(response, gold, out, err);
    case REWARD_PROGRAM:
        return reward_score_program(response, gold, opt, out, err);
    }
    return error_set(err, "unknown reward kind %d", (int)kind);
}
