/* kpo eval's benchmarks (eval_bench.h): NAME=FILE.jsonl specs or arith,
 * loaded and every problem's prompt encoded. */
#include "eval/eval_bench.h"

#include <stdio.h>
#include <string.h>

#include "data/arith_task.h"

static int valid_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

int eval_bench_parse(const char *spec, eval_bench *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    dataset_init(&out->problems);
    const char *equals = strchr(spec, '=');
    size_t name_len = equals ? (size_t)(equals - spec) : strlen(spec);
    if (!equals && strcmp(spec, "arith") != 0)
        return error_set(err, "--bench '%s': expected NAME=FILE.jsonl or arith", spec);
    if (name_len == 0 || name_len >= EVAL_BENCH_NAME_MAX)
        return error_set(err, "--bench '%s': the name must be 1 to %d characters", spec,
                         EVAL_BENCH_NAME_MAX - 1);
    for (size_t i = 0; i < name_len; i++)
        if (!valid_name_char(spec[i]))
            return error_set(err, "--bench '%s': the name may hold only letters, digits, "
                                  "'_', '-' and '.'", spec);
    if (strspn(spec, ".") >= name_len)
        return error_set(err, "--bench '%s': '.' and '..' are not benchmark names", spec);
    if (equals && equals[1] == '\0')
        return error_set(err, "--bench '%s': no file after '='", spec);
    snprintf(out->name, sizeof out->name, "%.*s", (int)name_len, spec);
    snprintf(out->source, sizeof out->source, "%s", equals ? equals + 1 : "arith");
    return KPO_OK;
}

int eval_bench_load(eval_bench *b, const eval_prompt_options *opt, const tokenizer *tok,
                    kpo_error *err)
{
    int status;
    if (strcmp(b->source, "arith") == 0) {
        if (opt->arith_problems < 1)
            return error_set(err, "--arith-problems must be >= 1");
        status = arith_task_dataset(&b->problems, opt->arith_seed, ARITH_TEST,
                                    (size_t)opt->arith_problems, opt->arith_difficulty, err);
    } else {
        dataset_options dopt = {.problem_field = NULL, .answer_field = NULL, .skip_bad = false};
        status = dataset_load(&b->problems, b->source, &dopt, err);
    }
    if (status == KPO_OK && b->problems.count == 0)
        status = error_set(err, "%s: no problems", b->source);
    if (status == KPO_OK)
        status = prompt_encode_dataset(&b->problems, opt->prompt_template, opt->chat, tok, 0,
                                       &b->prompts, err);
    if (status != KPO_OK)
        return error_prefix(err, "benchmark %s: ", b->name);
    return KPO_OK;
}

void eval_bench_free(eval_bench *b)
{
    dataset_free(&b->problems);
    prompt_set_free(&b->prompts);
}
