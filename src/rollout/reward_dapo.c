/* verl math_dapo.compute_score with strict_box_verify off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "rollout/math_answer.h"
#include "rollout/reward.h"
#include "tokenizer/utf8.h"

/* DAPO grades only the tail, where the "Answer:" line is asked to be. */
enum { DAPO_TAIL_CHARS = 300 };

/* The last match of (?i)Answer\s*:\s*([^\n]+), or "[INVALID]". */
static int dapo_extract(const char *tail, char **out, kpo_error *err)
{
    int code;
    PCRE2_SIZE offset;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "(?i)Answer\\s*:\\s*([^\\n]+)",
                                   PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code,
                                   &offset, NULL);
    pcre2_match_data *match = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
    if (!match) {
        pcre2_code_free(re);
        return error_set(err, "out of memory compiling the Answer: pattern");
    }
    size_t len = strlen(tail), pos = 0, begin = 0, end = 0;
    int found = 0;
    while (pos < len && pcre2_match(re, (PCRE2_SPTR)tail, len, pos, 0, match, NULL) >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(match);
        begin = ov[2];
        end = ov[3];
        found = 1;
        pos = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
    }
    pcre2_match_data_free(match);
    pcre2_code_free(re);
    *out = found ? strndup(tail + begin, end - begin) : strdup("[INVALID]");
    return *out ? KPO_OK : error_set(err, "out of memory");
}

int reward_score_dapo(const char *response, const char *gold, const reward_options *opt,
                      reward_result *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(response);
    const char *tail = response + utf8_tail_offset(response, len, DAPO_TAIL_CHARS);
    char *raw = NULL, *pred = NULL, *truth = NULL;
    int status = dapo_extract(tail, &raw, err);
    if (status == KPO_OK)
        status = math_normalize_minerva(raw, &pred, err);
    if (status == KPO_OK)
        status = math_normalize_minerva(gold, &truth, err);
    if (status == KPO_OK) {
        out->extracted = strcmp(raw, "[INVALID]") != 0;
        out->correct = strcmp(pred, truth) == 0;
        out->score = out->correct ? 1.0 : (opt && opt->zero_one ? 0.0 : -1.0);
        snprintf(out->pred, sizeof out->pred, "%s", pred);
    }
    free(raw);
    free(pred);
    free(truth);
    return status;
}
