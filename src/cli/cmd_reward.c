/* kpo reward: score one response (stdin) against a gold answer, or every
 * {"response", "gold"} line of a JSONL file, to inspect what a reward
 * function sees (and to hold kpo's graders against reference ports, or to
 * try a user's grader program before a run depends on it). */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "data/jsonl_reader.h"
#include "rollout/reward.h"
#include "rollout/reward_program.h"
#include "tokenizer/text_buf.h"

static char *read_stdin(void)
{
    text_buf b;
    text_buf_init(&b);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        text_buf_append(&b, chunk, n);
    return ferror(stdin) ? (text_buf_free(&b), NULL) : text_buf_take(&b);
}

/* One scored line as JSON: {"score", "correct", "extracted", "pred"}. */
static int print_result_json(const reward_result *r, kpo_error *err)
{
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "score", r->score) ||
        !cJSON_AddBoolToObject(o, "correct", r->correct) ||
        !cJSON_AddBoolToObject(o, "extracted", r->extracted) ||
        !cJSON_AddStringToObject(o, "pred", r->pred)) {
        cJSON_Delete(o);
        return error_set(err, "kpo reward: out of memory");
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text)
        return error_set(err, "kpo reward: out of memory");
    puts(text);
    free(text);
    return KPO_OK;
}

static const char *string_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Every line of path scored in order, one JSON result per line on stdout. */
static int score_jsonl(reward_kind kind, reward_options opt, const char *path, kpo_error *err)
{
    jsonl_reader r;
    if (jsonl_open(&r, path, false, err) != KPO_OK)
        return KPO_ERR;
    cJSON *line = NULL;
    int got, status = KPO_OK;
    while (status == KPO_OK && (got = jsonl_next(&r, &line, err)) == 1) {
        const char *response = string_field(line, "response"), *gold = string_field(line, "gold");
        reward_result result;
        opt.problem = string_field(line, "problem");
        if (!response || !gold)
            status = error_set(err, "%s:%ld: needs string fields \"response\" and \"gold\"",
                               path, r.line);
        else if (reward_score(kind, response, gold, &opt, &result, err) != KPO_OK)
            status = error_prefix(err, "%s:%ld: ", path, r.line);
        else
            status = print_result_json(&result, err);
        cJSON_Delete(line);
    }
    if (status == KPO_OK && got < 0)
        status = KPO_ERR;
    jsonl_close(&r);
    return status;
}

int cmd_reward(int argc, char **argv)
{
    cli_option options[] = {
        {"kind", "K", "dapo, boxed, kpo or program (required)", NULL},
        {"gold", "ANSWER", "the gold answer (required without --jsonl)", NULL},
        {"jsonl", "FILE", "score each {\"response\", \"gold\"} line; one JSON result per line",
         NULL},
        {"program", "CMD", "program: the grader's command line, run by /bin/sh once for all "
                           "responses (docs/text.md)", NULL},
        {"timeout", "S", "program: seconds to wait for each answer (default 30)", NULL},
        {"problem", "TEXT", "program: the problem text sent with the response (default null; "
                            "--jsonl reads a \"problem\" field)", NULL},
        {"zero-one", NULL, "dapo: score a wrong answer 0 instead of -1", NULL},
        {"explain", NULL, "also print whether an answer was found and the prediction", NULL},
    };
    cli_command_spec spec = {
        "reward", "--kind K (--gold ANSWER < RESPONSE | --jsonl FILE) [--program CMD] [--zero-one] "
                  "[--explain]",
        "Print the reward of the response on stdin against the gold answer, or of every line "
        "of a JSONL file.",
        CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    reward_kind kind;
    const char *jsonl = cli_get(&spec, "jsonl");
    if (!cli_get(&spec, "kind") || !cli_get(&spec, "gold") == !jsonl)
        return command_fail("kpo reward: --kind and one of --gold and --jsonl are required");
    if (reward_kind_parse(cli_get(&spec, "kind"), &kind, &err) != KPO_OK)
        return command_fail(err.message);
    double timeout = REWARD_PROGRAM_DEFAULT_TIMEOUT;
    if (cli_get_double(&spec, "timeout", REWARD_PROGRAM_DEFAULT_TIMEOUT, &timeout, &err) != KPO_OK)
        return command_fail(err.message);
    if (!(timeout > 0))
        return command_fail("kpo reward: --timeout must be > 0 seconds");
    if ((kind == REWARD_PROGRAM) != (cli_get(&spec, "program") != NULL))
        return command_fail("kpo reward: --program CMD goes with --kind program, and only there");
    reward_options opt = {.zero_one = cli_get(&spec, "zero-one") != NULL,
                          .program = cli_get(&spec, "program"),
                          .program_timeout = timeout,
                          .problem = cli_get(&spec, "problem")};
    if (jsonl)
        return score_jsonl(kind, opt, jsonl, &err) == KPO_OK ? 0 : command_fail(err.message);
    char *response = read_stdin();
    if (!response)
        return command_fail("kpo reward: reading stdin failed");
    reward_result result;
    status = reward_score(kind, response, cli_get(&spec, "gold"), &opt, &result, &err);
    free(response);
    if (status != KPO_OK)
        return command_fail(err.message);
    printf("%g\n", result.score);
    if (cli_get(&spec, "explain"))
        printf("correct %d\nextracted %d\npred %s\n", result.correct, result.extracted,
               result.pred);
    return 0;
}
