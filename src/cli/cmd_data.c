/* kpo data: check a JSONL dataset, print the arithmetic task, or show a
 * record rendered through the prompt and chat templates. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "data/arith_task.h"
#include "data/chat_template.h"
#include "data/dataset.h"
#include "data/prompt_template.h"

static void load_options(const cli_command_spec *spec, dataset_options *opt)
{
    opt->problem_field = cli_get(spec, "problem-field");
    opt->answer_field = cli_get(spec, "answer-field");
    opt->skip_bad = cli_get(spec, "skip-bad") != NULL;
}

static int data_check(const cli_command_spec *spec, const char *path)
{
    dataset_options opt;
    load_options(spec, &opt);
    dataset ds;
    kpo_error err;
    if (dataset_load(&ds, path, &opt, &err) != KPO_OK)
        return command_fail(err.message);
    size_t shortest = (size_t)-1, longest = 0, total = 0, integer_answers = 0;
    for (size_t k = 0; k < ds.count; k++) {
        size_t len = strlen(ds.records[k].problem);
        shortest = len < shortest ? len : shortest;
        longest = len > longest ? len : longest;
        total += len;
        const char *a = ds.records[k].answer + (ds.records[k].answer[0] == '-');
        integer_answers += a[0] && strspn(a, "0123456789") == strlen(a);
    }
    printf("%s: %zu records, %ld bad lines skipped\n", path, ds.count, ds.n_skipped);
    if (ds.n_skipped)
        printf("  first skipped: %s\n", ds.first_skipped.message);
    printf("  problem bytes: min %zu, mean %.1f, max %zu\n", shortest,
           (double)total / (double)ds.count, longest);
    printf("  integer answers: %zu of %zu\n", integer_answers, ds.count);
    dataset_free(&ds);
    return 0;
}

static int data_arith(const cli_command_spec *spec)
{
    kpo_error err;
    long long count, seed, difficulty;
    const char *split_name = cli_get(spec, "split") ? cli_get(spec, "split") : "train";
    if (cli_get_int64(spec, "count", 10, &count, &err) != KPO_OK ||
        cli_get_int64(spec, "seed", 0, &seed, &err) != KPO_OK ||
        cli_get_int64(spec, "difficulty", 2, &difficulty, &err) != KPO_OK)
        return command_fail(err.message);
    if (strcmp(split_name, "train") != 0 && strcmp(split_name, "test") != 0)
        return command_fail("--split: must be train or test");
    if (count < 0 || count > 100000000)
        return command_fail("--count: must be in [0, 1e8]");
    arith_split split = strcmp(split_name, "test") == 0 ? ARITH_TEST : ARITH_TRAIN;
    for (long long k = 0; k < count; k++) {
        dataset_record rec;
        if (arith_task_generate((uint64_t)seed, split, (uint64_t)k, (int)difficulty, &rec,
                                &err) != KPO_OK)
            return command_fail(err.message);
        cJSON *obj = cJSON_CreateObject();
        cJSON_AddStringToObject(obj, "problem", rec.problem);
        cJSON_AddStringToObject(obj, "answer", rec.answer);
        char *line = cJSON_PrintUnformatted(obj);
        if (line)
            printf("%s\n", line);
        free(line);
        cJSON_Delete(obj);
        dataset_record_free(&rec);
    }
    return 0;
}

static int data_render(const cli_command_spec *spec, const char *path)
{
    dataset_options opt;
    load_options(spec, &opt);
    kpo_error err;
    long long index;
    chat_template_kind chat;
    char *prompt_text = NULL;
    if (cli_get_int64(spec, "index", 0, &index, &err) != KPO_OK ||
        chat_template_parse(cli_get(spec, "chat") ? cli_get(spec, "chat") : "qwen3", &chat,
                            &err) != KPO_OK ||
        prompt_template_resolve(cli_get(spec, "prompt") ? cli_get(spec, "prompt") : "dapo",
                                &prompt_text, &err) != KPO_OK)
        return command_fail(err.message);
    dataset ds;
    if (dataset_load(&ds, path, &opt, &err) != KPO_OK) {
        free(prompt_text);
        return command_fail(err.message);
    }
    int status = 0;
    if (index < 0 || (size_t)index >= ds.count) {
        status = command_fail("--index: outside the dataset");
    } else {
        text_buf prompt, chat_text;
        text_buf_init(&prompt);
        text_buf_init(&chat_text);
        if (prompt_template_render(prompt_text, ds.records[index].problem, &prompt, &err) !=
                KPO_OK ||
            chat_template_render(chat, prompt.data, &chat_text, &err) != KPO_OK)
            status = command_fail(err.message);
        else
            printf("%s\n", chat_text.data);
        text_buf_free(&prompt);
        text_buf_free(&chat_text);
    }
    free(prompt_text);
    dataset_free(&ds);
    return status;
}

int cmd_data(int argc, char **argv)
{
    cli_option options[] = {
        {"problem-field", "NAME", "field with the problem (default problem, else prompt)", NULL},
        {"answer-field", "NAME", "field with the answer (default answer, else "
                                 "reward_model.ground_truth); a.b reaches nested fields", NULL},
        {"skip-bad", NULL, "skip and count malformed lines instead of stopping", NULL},
        {"split", "S", "arith: train or test (default train)", NULL},
        {"count", "N", "arith: number of problems (default 10)", NULL},
        {"seed", "S", "arith: seed (default 0)", NULL},
        {"difficulty", "D", "arith: 1..5 (default 2)", NULL},
        {"prompt", "T", "render: dapo, kpo, boxed, raw or a text with {problem}", NULL},
        {"chat", "C", "render: qwen3, qwen3-thinking or raw (default qwen3)", NULL},
        {"index", "I", "render: record number (default 0)", NULL},
    };
    cli_command_spec spec = {"data", "check FILE | arith [--split S --count N --seed S "
                                     "--difficulty D] | render FILE [--prompt T --chat C]",
                             "Validate and count a JSONL dataset, print the arithmetic task as "
                             "JSONL, or show one record as the model sees it.",
                             CLI_OPTIONS(options)};
    const char *positional[2];
    size_t n_positional;
    int status = command_start(&spec, argc, argv, positional, 2, &n_positional);
    if (status >= 0)
        return status;
    if (n_positional == 2 && strcmp(positional[0], "check") == 0)
        return data_check(&spec, positional[1]);
    if (n_positional == 2 && strcmp(positional[0], "render") == 0)
        return data_render(&spec, positional[1]);
    if (n_positional == 1 && strcmp(positional[0], "arith") == 0)
        return data_arith(&spec);
    return command_fail("kpo data: expected 'check FILE', 'render FILE' or 'arith' "
                        "(kpo data --help)");
}
