/* libFuzzer: the answer normalisers and the three rewards on arbitrary text
 * (split at the first NUL into response and gold). A response that is the
 * gold written under each template must score correct. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/math_answer.h"
#include "rollout/reward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 2);
    memcpy(text, data, size);
    text[size] = text[size + 1] = '\0';
    const char *response = text, *gold = text + strlen(text) + 1;
    kpo_error err;
    char *out;
    if (math_normalize_minerva(response, &out, &err) == KPO_OK)
        free(out);
    if (math_normalize_mathd(response, &out, &err) == KPO_OK)
        free(out);
    if (math_strip_string(response, &out, &err))
        free(out);
    (void)math_numbers_equal(response, gold);
    for (int kind = REWARD_DAPO; kind <= REWARD_KPO; kind++) {
        reward_result r;
        if (reward_score((reward_kind)kind, response, gold, NULL, &r, &err) != KPO_OK)
            abort();
        if (r.score != 1.0 && r.score != 0.0 && r.score != -1.0)
            abort();
    }
    free(text);
    return 0;
}
