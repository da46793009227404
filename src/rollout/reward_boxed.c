/* The two \boxed{} graders: verl math_reward (MATH-500) and the KPO code's
 * RewardMathFn (DeepScaleR's grade_answer_mathd, sympy path in part). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/math_answer.h"
#include "rollout/reward.h"

/* extract_answer: last_boxed_only_string then remove_boxed; *out = NULL when
 * there is no usable box. */
static int boxed_content(const char *text, char **out, kpo_error *err)
{
    char *boxed;
    *out = NULL;
    if (math_last_boxed(text, &boxed, err) != KPO_OK)
        return KPO_ERR;
    if (!boxed)
        return KPO_OK;
    error_clear(err);
    bool ok = math_remove_boxed(boxed, out, err);
    free(boxed);
    return ok || !err->message[0] ? KPO_OK : KPO_ERR;
}

int reward_score_boxed(const char *response, const char *gold, reward_result *out,
                       kpo_error *err)
{
    memset(out, 0, sizeof *out);
    char *answer;
    if (boxed_content(response, &answer, err) != KPO_OK)
        return KPO_ERR;
    if (!answer)
        return KPO_OK;
    out->extracted = true;
    int status = math_is_equiv(answer, gold, &out->correct, err);
    out->score = out->correct ? 1.0 : 0.0;
    snprintf(out->pred, sizeof out->pred, "%s", answer);
    free(answer);
    return status;
}

static const char THINK_END[] = "</think>";

int reward_score_kpo(const char *response, const char *gold, reward_result *out,
                     kpo_error *err)
{
    memset(out, 0, sizeof *out);
    if (response[0] == '\0')
        return KPO_OK;
    /* model_response.split("</think>")[1]: the text after the first
     * </think>, up to a second one if the model wrote two. */
    const char *think = strstr(response, THINK_END);
    char *solution = NULL;
    if (think) {
        const char *start = think + strlen(THINK_END), *next = strstr(start, THINK_END);
        solution = strndup(start, next ? (size_t)(next - start) : strlen(start));
    } else {
        solution = strdup(response);
    }
    if (!solution)
        return error_set(err, "out of memory");
    char *answer = NULL, *truth_boxed = NULL, *given = NULL, *truth = NULL;
    int status = strstr(solution, "\\boxed") ? boxed_content(solution, &answer, err) : KPO_OK;
    /* A gold answer written with \boxed is unwrapped the same way. */
    if (status == KPO_OK && answer && strstr(gold, "\\boxed"))
        status = boxed_content(gold, &truth_boxed, err);
    const char *gold_text = truth_boxed ? truth_boxed : gold;
    if (status == KPO_OK && answer) {
        out->extracted = true;
        status = math_normalize_mathd(answer, &given, err);
        if (status == KPO_OK)
            status = math_normalize_mathd(gold_text, &truth, err);
        if (status == KPO_OK) {
            out->correct = strcmp(given, truth) == 0 || math_numbers_equal(given, truth);
            out->score = out->correct ? 1.0 : 0.0;
            snprintf(out->pred, sizeof out->pred, "%s", given);
        }
    }
    free(solution);
    free(answer);
    free(truth_boxed);
    free(given);
    free(truth);
    return status;
}
