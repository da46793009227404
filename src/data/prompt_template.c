/* Prompt templates (prompt_template.h): the built-ins by name (dapo, kpo,
 * boxed, raw) or a user's text with {problem}. */
#include "data/prompt_template.h"

#include <stdlib.h>
#include <string.h>

const char PROMPT_TEMPLATE_DAPO[] =
    "Solve the following math problem step by step. The last line of your response should be "
    "of the form Answer: $Answer (without quotes) where $Answer is the answer to the "
    "problem.\n\n{problem}\n\nRemember to put your answer on its own line after \"Answer:\".";

/* The separator before the instruction is one space, as verl's preprocessors
 * join question and instruction. */
const char PROMPT_TEMPLATE_KPO[] =
    "{problem} Let's think step by step and output the final answer after \"####\".";

/* The suffix aaabiao/dapo_filter carried before KPO's preprocessor swapped
 * it for "####" (algorithms.md §1): the \boxed{} form the graders read. */
const char PROMPT_TEMPLATE_BOXED[] =
    "{problem} Let's think step by step and output the final answer within \\boxed{}.";

static const char PLACEHOLDER[] = "{problem}";

static const struct {
    const char *name;
    const char *text;
} BUILTIN[] = {
    {"dapo", PROMPT_TEMPLATE_DAPO},
    {"kpo", PROMPT_TEMPLATE_KPO},
    {"boxed", PROMPT_TEMPLATE_BOXED},
    {"raw", "{problem}"},
};

int prompt_template_resolve(const char *name_or_text, char **out, kpo_error *err)
{
    for (size_t k = 0; k < sizeof BUILTIN / sizeof BUILTIN[0]; k++)
        if (strcmp(name_or_text, BUILTIN[k].name) == 0) {
            *out = strdup(BUILTIN[k].text);
            return *out ? KPO_OK : error_set(err, "out of memory");
        }
    if (!strstr(name_or_text, PLACEHOLDER))
        return error_set(err,
                         "prompt template '%.60s' is neither dapo, kpo, boxed nor raw, and has "
                         "no {problem} placeholder",
                         name_or_text);
    text_buf b;
    text_buf_init(&b);
    for (const char *p = name_or_text; *p; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            text_buf_append_char(&b, '\n');
            p++;
        } else {
            text_buf_append_char(&b, *p);
        }
    }
    *out = text_buf_take(&b);
    return *out ? KPO_OK : error_set(err, "out of memory");
}

int prompt_template_render(const char *template_text, const char *problem, text_buf *out,
                           kpo_error *err)
{
    const char *p = template_text, *hit;
    while ((hit = strstr(p, PLACEHOLDER))) {
        text_buf_append(out, p, (size_t)(hit - p));
        text_buf_append_str(out, problem);
        p = hit + strlen(PLACEHOLDER);
    }
    text_buf_append_str(out, p);
    return out->failed ? error_set(err, "out of memory rendering a prompt") : KPO_OK;
}
