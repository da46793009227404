/* Datasets: field extraction, bad input with file and line, skip-and-count,
 * the deterministic shuffle, prompt templates verbatim, the arithmetic task. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "data/arith_task.h"
#include "data/dataset.h"
#include "data/prompt_template.h"
#include "tests/text/text_test_util.h"

static char tmp_path[64];

static const char *write_tmp(const char *content, size_t len)
{
    snprintf(tmp_path, sizeof tmp_path, "/tmp/kpo_test_data_%ld.jsonl", (long)getpid());
    FILE *f = fopen(tmp_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(content, 1, len, f), len);
    fclose(f);
    return tmp_path;
}

static int load_text(const char *content, const dataset_options *opt, dataset *ds,
                     kpo_error *err)
{
    int status = dataset_load(ds, write_tmp(content, strlen(content)), opt, err);
    unlink(tmp_path);
    return status;
}

static void test_fields(void **state)
{
    (void)state;
    dataset ds;
    kpo_error err;
    const char *text = "{\"problem\": \"p1\", \"answer\": 25}\n"
                       "\n"
                       "{\"prompt\": [{\"role\": \"user\", \"content\": \"p2\"}],"
                       " \"reward_model\": {\"ground_truth\": \"-3\"}}\n"
                       "{\"prompt\": \"p3\", \"answer\": \"\\\\frac{1}{2}\"}";
    assert_int_equal(load_text(text, NULL, &ds, &err), KPO_OK);
    assert_int_equal(ds.count, 3);
    assert_string_equal(ds.records[0].problem, "p1");
    assert_string_equal(ds.records[0].answer, "25");
    assert_string_equal(ds.records[1].problem, "p2");
    assert_string_equal(ds.records[1].answer, "-3");
    assert_int_equal(ds.records[2].line, 4);
    assert_string_equal(ds.records[2].answer, "\\frac{1}{2}");
    dataset_free(&ds);
    dataset_options opt = {.problem_field = "q", .answer_field = "meta.gold"};
    assert_int_equal(load_text("{\"q\": \"x\", \"meta\": {\"gold\": 1.5}}\n", &opt, &ds, &err),
                     KPO_OK);
    assert_string_equal(ds.records[0].answer, "1.5");
    dataset_free(&ds);
}

static void assert_error(const char *text, const char *needle)
{
    dataset ds;
    kpo_error err;
    assert_int_equal(load_text(text, NULL, &ds, &err), KPO_ERR);
    if (!strstr(err.message, needle) || !strstr(err.message, "kpo_test_data_"))
        fail_msg("error \"%s\" does not name the file and \"%s\"", err.message, needle);
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_error("{\"problem\": \"a\", \"answer\": \"1\"}\n{\"problem\": \"b\", \n", ":2: malformed");
    assert_error("{\"problem\": \"a\"}\n", ":1: field 'answer' is missing");
    assert_error("{\"answer\": \"1\"}\n", ":1: field 'problem' is missing");
    assert_error("{\"problem\": \"\", \"answer\": \"1\"}\n", "empty");
    assert_error("{\"problem\": \"a\", \"answer\": null}\n", "not a string");
    assert_error("[1, 2]\n", "not a JSON object");
    assert_error("{\"problem\": \"a\", \"answer\": \"1\"} trailing\n", "after the JSON");
    assert_error("", "no records");
    assert_error("\n\n", "no records");
    /* Invalid UTF-8 inside strings is carried through, not rejected. */
    dataset ds;
    kpo_error err;
    assert_int_equal(load_text("{\"problem\": \"\xff\xfe\", \"answer\": \"1\"}\n", NULL, &ds, &err),
                     KPO_OK);
    dataset_free(&ds);
    assert_int_equal(dataset_load(&ds, "/nonexistent.jsonl", NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "/nonexistent.jsonl"));
}

static void test_skip_and_count(void **state)
{
    (void)state;
    dataset ds;
    kpo_error err;
    dataset_options opt = {.skip_bad = true};
    const char *text = "{\"problem\": \"a\", \"answer\": \"1\"}\n"
                       "not json\n"
                       "{\"problem\": \"b\"}\n"
                       "{\"problem\": \"c\", \"answer\": \"3\"}\n";
    assert_int_equal(load_text(text, &opt, &ds, &err), KPO_OK);
    assert_int_equal(ds.count, 2);
    assert_int_equal(ds.n_skipped, 2);
    assert_non_null(strstr(ds.first_skipped.message, ":2:"));
    assert_string_equal(ds.records[1].problem, "c");
    dataset_free(&ds);
}

static void test_enormous_line(void **state)
{
    (void)state;
    size_t n = 8 << 20;
    char *text = malloc(n + 64);
    strcpy(text, "{\"problem\": \"");
    size_t len = strlen(text);
    memset(text + len, 'x', n);
    strcpy(text + len + n, "\", \"answer\": \"1\"}\n");
    dataset ds;
    kpo_error err;
    assert_int_equal(load_text(text, NULL, &ds, &err), KPO_OK);
    assert_int_equal(strlen(ds.records[0].problem), n);
    dataset_free(&ds);
    free(text);
}

static void test_shuffle(void **state)
{
    (void)state;
    enum { N = 1000 };
    size_t a[N], b[N], c[N];
    dataset_shuffle(a, N, 7, 0);
    dataset_shuffle(b, N, 7, 0);
    dataset_shuffle(c, N, 7, 1);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    int seen[N] = {0};
    size_t fixed = 0;
    for (size_t k = 0; k < N; k++) {
        seen[a[k]]++;
        fixed += a[k] == k;
    }
    for (size_t k = 0; k < N; k++)
        assert_int_equal(seen[k], 1);
    assert_true(fixed < 10); /* about one fixed point expected */
    dataset_shuffle(b, N, 8, 0);
    assert_memory_not_equal(a, b, sizeof a);
    dataset_shuffle(a, 0, 1, 1); /* empty: nothing to do */
}

static void test_prompt_templates(void **state)
{
    (void)state;
    kpo_error err;
    char *t;
    text_buf out;
    text_buf_init(&out);
    assert_int_equal(prompt_template_resolve("dapo", &t, &err), KPO_OK);
    assert_int_equal(prompt_template_render(t, "P", &out, &err), KPO_OK);
    assert_string_equal(out.data,
                        "Solve the following math problem step by step. The last line of your "
                        "response should be of the form Answer: $Answer (without quotes) where "
                        "$Answer is the answer to the problem.\n\nP\n\nRemember to put your "
                        "answer on its own line after \"Answer:\".");
    free(t);
    text_buf_clear(&out);
    assert_int_equal(prompt_template_resolve("kpo", &t, &err), KPO_OK);
    assert_int_equal(prompt_template_render(t, "P", &out, &err), KPO_OK);
    assert_string_equal(out.data,
                        "P Let's think step by step and output the final answer after \"####\".");
    free(t);
    text_buf_clear(&out);
    assert_int_equal(prompt_template_resolve("Q: {problem}\\nA ({problem})", &t, &err), KPO_OK);
    assert_int_equal(prompt_template_render(t, "P", &out, &err), KPO_OK);
    assert_string_equal(out.data, "Q: P\nA (P)");
    free(t);
    assert_int_equal(prompt_template_resolve("no placeholder", &t, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "{problem}"));
    text_buf_free(&out);
}

static long long eval_text(const char *problem)
{
    /* "What is a op b op c?" evaluated independently: * first, then +/-. */
    long long terms[8], value;
    char ops[8];
    int n = 0;
    const char *p = problem + strlen("What is ");
    char *end;
    terms[n] = strtoll(p, &end, 10);
    while (*end == ' ') {
        ops[n] = end[1];
        value = strtoll(end + 3, &end, 10);
        if (ops[n] == '*')
            terms[n] *= value;
        else {
            terms[n + 1] = ops[n] == '-' ? -value : value;
            n++;
        }
    }
    long long total = 0;
    for (int k = 0; k <= n; k++)
        total += terms[k];
    return total;
}

static void test_arith_task(void **state)
{
    (void)state;
    kpo_error err;
    for (int d = 1; d <= 5; d++) {
        dataset train, test;
        assert_int_equal(arith_task_dataset(&train, 1, ARITH_TRAIN, 400, d, &err), KPO_OK);
        assert_int_equal(arith_task_dataset(&test, 2, ARITH_TEST, 100, d, &err), KPO_OK);
        for (size_t k = 0; k < train.count; k++) {
            assert_false(arith_task_is_test(train.records[k].problem));
            assert_int_equal(atoll(train.records[k].answer), eval_text(train.records[k].problem));
            for (size_t j = 0; j < test.count; j++)
                assert_string_not_equal(train.records[k].problem, test.records[j].problem);
        }
        for (size_t j = 0; j < test.count; j++) {
            assert_true(arith_task_is_test(test.records[j].problem));
            assert_int_equal(atoll(test.records[j].answer), eval_text(test.records[j].problem));
        }
        dataset_free(&train);
        dataset_free(&test);
    }
    dataset_record a, b;
    assert_int_equal(arith_task_generate(5, ARITH_TRAIN, 3, 3, &a, &err), KPO_OK);
    assert_int_equal(arith_task_generate(5, ARITH_TRAIN, 3, 3, &b, &err), KPO_OK);
    assert_string_equal(a.problem, b.problem);
    dataset_record_free(&a);
    dataset_record_free(&b);
    assert_int_equal(arith_task_generate(5, ARITH_TRAIN, 3, 6, &a, &err), KPO_ERR);
}

static void test_shared_datasets(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t count;
    } files[] = {{"math500.jsonl", 500}, {"aime24.jsonl", 30}, {"aime25.jsonl", 30},
                 {"dapo_math_17k.jsonl", 17917}};
    for (size_t k = 0; k < 4; k++) {
        char path[4096];
        if (!shared_data_path(files[k].name, path, sizeof path))
            skip();
        dataset ds;
        kpo_error err;
        assert_int_equal(dataset_load(&ds, path, NULL, &err), KPO_OK);
        assert_int_equal(ds.count, files[k].count);
        dataset_free(&ds);
    }
}

/* Issue 17: number answers keep their text; %.17g turned 0.1 into
 * 0.10000000000000001, which no response can match. */
static void test_number_answers_as_written(void **state)
{
    (void)state;
    static const char *const numbers[] = {"0.1", "1e-3", "2.50", "-0", "12345678901234567890",
                                          "-7", "25", "3.0E+2", "1E400000000000000000000"};
    /* Decoys before the answer: numbers in keys, strings and nested values. */
    for (size_t k = 0; k < sizeof numbers / sizeof numbers[0] - 1; k++) {
        char line[512];
        snprintf(line, sizeof line,
                 "{\"id\": 17, \"x\": [1.25, {\"7\": -2e5}], \"problem\": \"p 3.5 \\\" 4\","
                 " \"answer\": %s, \"z\": 9}\n",
                 numbers[k]);
        dataset ds;
        kpo_error err;
        assert_int_equal(load_text(line, NULL, &ds, &err), KPO_OK);
        assert_string_equal(ds.records[0].answer, numbers[k]);
        dataset_free(&ds);
    }
    /* An infinite value is still refused, not quoted. */
    dataset ds;
    kpo_error err;
    assert_int_equal(load_text("{\"problem\": \"p\", \"answer\": 1e999}\n", NULL, &ds, &err),
                     KPO_ERR);
    assert_non_null(strstr(err.message, "finite"));
    /* Without the text (a parsed object only): the shortest exact form. */
    cJSON *obj = cJSON_Parse("{\"problem\": \"p\", \"answer\": 0.1}");
    dataset_record rec;
    assert_int_equal(dataset_record_from_json(obj, NULL, &rec, &err), KPO_OK);
    assert_string_equal(rec.answer, "0.1");
    dataset_record_free(&rec);
    cJSON_Delete(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),         cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_skip_and_count), cmocka_unit_test(test_enormous_line),
        cmocka_unit_test(test_shuffle),        cmocka_unit_test(test_prompt_templates),
        cmocka_unit_test(test_arith_task),     cmocka_unit_test(test_shared_datasets),
        cmocka_unit_test(test_number_answers_as_written),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
