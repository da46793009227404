/* Exact-match rewards for math answers (algorithms.md §1 and §3):
 *   dapo  - verl math_dapo: "Answer:" line in the last 300 characters,
 *           Minerva normalisation, +1 / -1 (or 1 / 0);
 *   boxed - verl math_reward (MATH-500): last \boxed{}, strip_string, 1 / 0;
 *   kpo   - the KPO code's RewardMathFn (DeepScaleR): text after </think>,
 *           last \boxed{}, mathd normalisation (+ plain-number equality in
 *           place of the sympy path), 1 / 0;
 *   program - the user's grader, a long-lived process spoken to one JSON
 *           line per response (rollout/reward_program.h, docs/text.md). */
#ifndef KPO_ROLLOUT_REWARD_H
#define KPO_ROLLOUT_REWARD_H

#include <stdbool.h>

#include "core/error.h"

typedef enum reward_kind { REWARD_DAPO, REWARD_BOXED, REWARD_KPO, REWARD_PROGRAM } reward_kind;

/* Plain settings, no handles: the program grader is started on first use
 * and kept per process (reward_program.h), so these can be copied freely. */
typedef struct reward_options {
    bool zero_one;           /* dapo: score a wrong answer 0 instead of -1 */
    const char *program;     /* program: the shell command line of the grader */
    double program_timeout;  /* program: seconds per answer (<= 0: the default, 30) */
    const char *problem;     /* program: the problem text sent along (NULL: null) */
} reward_options;

typedef struct reward_result {
    double score;
    bool correct;
    bool extracted;  /* an answer was found at all (false: a format error) */
    char pred[256];  /* the normalised prediction, cut to fit, for inspection */
} reward_result;

int reward_kind_parse(const char *name, reward_kind *out, kpo_error *err);
const char *reward_kind_name(reward_kind kind);

int reward_score(reward_kind kind, const char *response, const char *gold,
                 const reward_options *opt, reward_result *out, kpo_error *err);

int reward_score_dapo(const char *response, const char *gold, const reward_options *opt,
                      reward_result *out, kpo_error *err);
int reward_score_boxed(const char *response, const char *gold, reward_result *out,
                       kpo_error *err);
int reward_score_kpo(const char *response, const char *gold, reward_result *out,
                     kpo_error *err);
int reward_score_program(const char *response, const char *gold, const reward_options *opt,
                         reward_result *out, kpo_error *err);

#endif
