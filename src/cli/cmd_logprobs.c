/* kpo logprobs: per-token log-probs and entropies of a checkpoint on token
 * sequences, one JSON line in, one out, so kpo can be checked against HF
 * transformers and rollout/learner mismatch measured. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
/* The CPU model itself, not the backend: kpo logprobs scores with its fp32
 * training forward and fused log-probs (model_acts, model_forward_train,
 * model_logprobs), the reference other paths are checked against. */
#include "model/cpu/model_compute.h"

/* {"tokens": [...], "start": k} -> tokens and k, with line-numbered errors. */
static int parse_line(const char *path, long line_no, const char *text, int32_t **tokens,
                      int64_t *n, int64_t *start, kpo_error *err)
{
    cJSON *root = cJSON_Parse(text);
    const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "start");
    int status = KPO_OK;
    if (!cJSON_IsArray(toks) || cJSON_GetArraySize(toks) < 2)
        status = error_set(err, "%s:%ld: need \"tokens\": an array of at least 2 ids", path,
                           line_no);
    *n = status == KPO_OK ? cJSON_GetArraySize(toks) : 0;
    *start = 1;
    if (status == KPO_OK && st) {
        if (!cJSON_IsNumber(st) || st->valuedouble != (double)(int64_t)st->valuedouble ||
            st->valuedouble < 1 || st->valuedouble >= (double)*n)
            status = error_set(err, "%s:%ld: \"start\" must be an integer in [1, %lld)", path,
                               line_no, (long long)*n);
        else
            *start = (int64_t)st->valuedouble;
    }
    *tokens = status == KPO_OK ? malloc((size_t)*n * sizeof **tokens) : NULL;
    for (int64_t i = 0; status == KPO_OK && i < *n; i++) {
        const cJSON *t = cJSON_GetArrayItem(toks, (int)i);
        if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int32_t)t->valuedouble)
            status = error_set(err, "%s:%ld: token %lld is not an integer id", path, line_no,
                               (long long)i);
        else
            (*tokens)[i] = (int32_t)t->valuedouble;
    }
    cJSON_Delete(root);
    return status;
}

static int score_line(const model *m, int32_t *tokens, int64_t n, int64_t start, FILE *out,
                      kpo_error *err)
{
    int64_t offsets[2] = {0, n};
    model_batch batch = {tokens, n, offsets, 1};
    model_acts acts;
    if (model_acts_init(&acts, m, n, err) != KPO_OK)
        return KPO_ERR;
    int32_t *targets = malloc((size_t)n * sizeof *targets);
    float *logp = malloc((size_t)n * sizeof *logp), *ent = malloc((size_t)n * sizeof *ent);
    int status = targets && logp && ent ? model_forward_train(m, &batch, &acts, err)
                                        : error_set(err, "out of memory");
    if (status == KPO_OK) {
        /* Row t predicts token t + 1: tokens start.. come from rows start-1.. */
        for (int64_t t = 0; t < n; t++)
            targets[t] = t + 1 >= start && t + 1 < n ? tokens[t + 1] : -1;
        model_logprobs(m, &acts, targets, logp, ent);
        fprintf(out, "{\"logprobs\": [");
        for (int64_t t = start - 1; t < n - 1; t++)
            fprintf(out, "%s%.9g", t > start - 1 ? ", " : "", logp[t]);
        fprintf(out, "], \"entropies\": [");
        for (int64_t t = start - 1; t < n - 1; t++)
            fprintf(out, "%s%.9g", t > start - 1 ? ", " : "", ent[t]);
        fprintf(out, "]}\n");
    }
    free(targets);
    free(logp);
    free(ent);
    model_acts_free(&acts);
    return status;
}

int cmd_logprobs(int argc, char **argv)
{
    cli_option options[] = {
        {"model", "DIR", "checkpoint directory (required)", NULL},
        {"input", "FILE", "JSONL, one {\"tokens\": [...], \"start\": k} per line (required)", NULL},
    };
    cli_command_spec spec = {"logprobs", "--model DIR --input FILE.jsonl",
                             "Per-token log-probs and entropies of tokens start.. given their "
                             "prefixes, one JSON line per input line.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    const char *dir = cli_get(&spec, "model"), *path = cli_get(&spec, "input");
    if (!dir || !path)
        return command_fail("kpo logprobs: --model and --input are required");
    kpo_error err;
    model m;
    if (model_load(dir, &m, &err) != KPO_OK)
        return command_fail(err.message);
    FILE *in = fopen(path, "r");
    if (!in) {
        model_free(&m);
        snprintf(err.message, sizeof err.message, "%s: cannot open", path);
        return command_fail(err.message);
    }
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    status = KPO_OK;
    while (status == KPO_OK && getline(&line, &cap, in) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        int32_t *tokens = NULL;
        int64_t n, start;
        status = parse_line(path, line_no, line, &tokens, &n, &start, &err);
        if (status == KPO_OK) {
            status = score_line(&m, tokens, n, start, stdout, &err);
            if (status != KPO_OK)
                error_prefix(&err, "%s:%ld: ", path, line_no);
        }
        free(tokens);
    }
    free(line);
    fclose(in);
    model_free(&m);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
