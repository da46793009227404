/* Rewards: each normalisation rule on its own, the extraction rules of the
 * three graders, and every MATH-500 / AIME gold answer written the way a
 * model writes it under each template (correct against itself, a perturbed
 * answer not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/dataset.h"
#include "rollout/math_answer.h"
#include "rollout/reward.h"
#include "tests/text/text_test_util.h"
#include "tokenizer/text_buf.h"

static void assert_minerva(const char *in, const char *expected)
{
    char *out;
    kpo_error err;
    assert_int_equal(math_normalize_minerva(in, &out, &err), KPO_OK);
    if (strcmp(out, expected) != 0)
        fail_msg("minerva(\"%s\") = \"%s\", expected \"%s\"", in, out, expected);
    free(out);
}

static void test_minerva_rules(void **state)
{
    (void)state;
    assert_minerva("x = y = 5", "5");                 /* after the last '=' */
    assert_minerva("an apple", "apple");              /* "an " */
    assert_minerva("a b", "b");                       /* "a " */
    assert_minerva("5.$", "5");                       /* ".$" -> "$", then "$" dropped */
    assert_minerva("\\$5", "5");                      /* "\$" */
    assert_minerva("1\\ 000", "1000");                /* "\ " */
    assert_minerva(" 1 2 ", "12");                    /* spaces */
    assert_minerva("\\mbox{x}", "x");                 /* mbox -> text, then unwrapped */
    assert_minerva("x,\\text{and}y", "x,y");
    assert_minerva("x\\text{and}y", "x,y");
    assert_minerva("1\\text{and}2", "12"); /* then "1,2" is digits with a comma */
    assert_minerva("5\\text{m}", "5");                /* \text{m} -> \text{} -> removed */
    static const char *const removed[] = {"square", "ways", "dollars", "mph", "inches", "hours",
                                          "km", "units", "points", "feet", "minutes", "cents",
                                          "degrees", "cm", "pounds", "meters", "students"};
    for (size_t k = 0; k < sizeof removed / sizeof removed[0]; k++) {
        char in[64];
        snprintf(in, sizeof in, "7%s", removed[k]);
        assert_minerva(in, "7");
    }
    assert_minerva("7\\ldots", "7");
    assert_minerva("7^\\circ", "7");
    assert_minerva("7^{\\circ}", "7");
    assert_minerva("7\\text{s}", "7");
    assert_minerva("\\mathrm{th}7", "7");
    assert_minerva("1{,}000", "1000");
    assert_minerva("\"7\"", "7");
    assert_minerva("so $x^2$ here", "x^2");            /* first $...$ span */
    assert_minerva("\\textbf{7}", "7");
    assert_minerva("\\overline{AB}", "AB");
    assert_minerva("\\boxed{12}", "12");
    assert_minerva("\\frac12", "\\frac{1}{2}");      /* frac shorthand */
    assert_minerva("\\sqrt2", "\\sqrt{2}");            /* sqrt shorthand */
    assert_minerva("1,000,000", "1000000");            /* digits with commas */
    assert_minerva("(1,2)", "(1,2)");                  /* not only digits: kept */
    assert_minerva("  \t7\n", "7");
}

static void assert_strip(const char *in, const char *expected)
{
    char *out;
    kpo_error err;
    assert_true(math_strip_string(in, &out, &err));
    if (strcmp(out, expected) != 0)
        fail_msg("strip_string(\"%s\") = \"%s\", expected \"%s\"", in, out, expected);
    free(out);
}

static void test_strip_string_rules(void **state)
{
    (void)state;
    assert_strip("1\n2", "12");
    assert_strip("a\\!b", "ab");
    assert_strip("a\\\\b", "a\\b");
    assert_strip("\\tfrac{1}{2}", "\\frac{1}{2}");
    assert_strip("\\dfrac{1}{2}", "\\frac{1}{2}");
    assert_strip("\\left(1,2\\right)", "(1,2)");
    assert_strip("90^{\\circ}", "90");
    assert_strip("90^\\circ", "90");
    assert_strip("\\$5", "5");
    assert_strip("5\\text{ cm}", "5");                 /* remove_right_units */
    assert_strip("50\\%", "50");
    assert_strip("x .5", "x0.5");                     /* " ." -> " 0." then no spaces */
    assert_strip("{.5}", "{0.5}");
    assert_strip(".5", "\\frac{1}{2}");               /* leading 0, then 0.5 rule */
    assert_strip("k = 7", "7");                       /* short left side dropped */
    assert_strip("abc = 7", "abc=7");                 /* long left side kept */
    assert_strip("\\sqrt3", "\\sqrt{3}");
    assert_strip("1 2", "12");
    assert_strip("\\frac12", "\\frac{1}{2}");
    assert_strip("\\frac1{2}", "\\frac{1}{2}");
    assert_strip("\\frac{1}2", "\\frac{1}2");         /* first char a brace: kept */
    assert_strip("0.5", "\\frac{1}{2}");
    assert_strip("3/4", "\\frac{3}{4}");
    assert_strip("03/4", "03/4");                     /* not int()-canonical */
    assert_strip("a/b", "a/b");
    assert_strip("", "");
    char *out;
    kpo_error err;
    /* Where the Python raises, is_equiv falls back to raw equality. */
    assert_false(math_strip_string("2\\text{ a}\\text{ b}", &out, &err));
    assert_false(math_strip_string("x\\sqrt", &out, &err));
    assert_false(math_strip_string("x\\frac", &out, &err));
    bool equal;
    assert_int_equal(math_is_equiv("x\\sqrt", "x\\sqrt", &equal, &err), KPO_OK);
    assert_true(equal);
    assert_int_equal(math_is_equiv("\\dfrac{1}{2}", "0.5", &equal, &err), KPO_OK);
    assert_true(equal);
}

static char *last_boxed(const char *text)
{
    char *out;
    kpo_error err;
    assert_int_equal(math_last_boxed(text, &out, &err), KPO_OK);
    return out;
}

static void test_boxed_extraction(void **state)
{
    (void)state;
    char *b = last_boxed("first \\boxed{1} then \\boxed{\\frac{a}{b^{2}}} done");
    assert_string_equal(b, "\\boxed{\\frac{a}{b^{2}}}");
    free(b);
    b = last_boxed("\\fbox{42}");
    assert_string_equal(b, "\\fbox{42}");
    free(b);
    b = last_boxed("so $\\boxed 5$ ok");
    assert_string_equal(b, "\\boxed 5");
    free(b);
    assert_null(last_boxed("\\boxed{never closed"));
    assert_null(last_boxed("no box"));
    char *content;
    kpo_error err;
    assert_true(math_remove_boxed("\\boxed{x}", &content, &err));
    assert_string_equal(content, "x");
    free(content);
    assert_true(math_remove_boxed("\\fbox{y}", &content, &err));
    assert_string_equal(content, "y");
    free(content);
    assert_false(math_remove_boxed("\\boxed\\frac{1}", &content, &err));
}

static reward_result score(reward_kind kind, const char *response, const char *gold)
{
    reward_result r;
    kpo_error err;
    assert_int_equal(reward_score(kind, response, gold, NULL, &r, &err), KPO_OK);
    return r;
}

static void test_dapo_extraction(void **state)
{
    (void)state;
    assert_true(score(REWARD_DAPO, "work\nAnswer: 34", "34").score == 1.0);
    assert_true(score(REWARD_DAPO, "Answer: 3\nanswer : 34\n", "34").correct); /* last, any case */
    reward_result r = score(REWARD_DAPO, "no final line", "34");
    assert_true(r.score == -1.0);
    assert_false(r.extracted);
    reward_options zero_one = {.zero_one = true};
    kpo_error err;
    assert_int_equal(reward_score_dapo("Answer: 2", "34", &zero_one, &r, &err), KPO_OK);
    assert_true(r.score == 0.0);
    /* Only the last 300 characters count. */
    text_buf t;
    text_buf_init(&t);
    text_buf_append_str(&t, "Answer: 34\n");
    for (int k = 0; k < 300; k++)
        text_buf_append_str(&t, "é"); /* characters, not bytes */
    assert_false(score(REWARD_DAPO, t.data, "34").extracted);
    text_buf_clear(&t);
    text_buf_append_str(&t, "Answer: 34\n");
    for (int k = 0; k < 288; k++)
        text_buf_append_str(&t, "é");
    assert_true(score(REWARD_DAPO, t.data, "34").correct);
    text_buf_free(&t);
    assert_true(score(REWARD_DAPO, "Answer: $\\frac{1}{2}$", "\\frac12").correct);
    assert_true(score(REWARD_DAPO, "", "1").score == -1.0);
}

static void test_kpo_grader(void **state)
{
    (void)state;
    assert_true(score(REWARD_KPO, "", "1").score == 0.0);
    assert_true(score(REWARD_KPO, "<think>\\boxed{5}</think>no box after", "5").score == 0.0);
    assert_true(score(REWARD_KPO, "<think>\\boxed{4}</think>so \\boxed{5}", "5").score == 1.0);
    assert_true(score(REWARD_KPO, "\\boxed{\\text{(C)}}", "(C)").correct);
    assert_true(score(REWARD_KPO, "\\boxed{0.5}", "\\frac{1}{2}").correct);
    assert_true(score(REWARD_KPO, "\\boxed{1,000}", "1000").correct); /* numeric equality */
    assert_true(score(REWARD_KPO, "\\boxed{2.0}", "2").correct);
    assert_false(score(REWARD_KPO, "\\boxed{2.01}", "2").correct);
    assert_true(score(REWARD_KPO, "\\boxed{7}", "\\boxed{7}").correct); /* boxed gold */
    assert_false(score(REWARD_KPO, "Answer: 5 #### 5", "5").extracted); /* "####" not read */
    assert_true(score(REWARD_BOXED, "\\boxed{\\dfrac{3}{4}}", "3/4").correct);
    assert_false(score(REWARD_BOXED, "no box", "3").extracted);
    assert_true(score(REWARD_BOXED, "\\fbox{3}", "3").correct);
}

static void test_reward_names(void **state)
{
    (void)state;
    reward_kind kind;
    kpo_error err;
    assert_int_equal(reward_kind_parse("kpo", &kind, &err), KPO_OK);
    assert_int_equal(kind, REWARD_KPO);
    assert_int_equal(reward_kind_parse("exact", &kind, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "exact"));
}

/* The gold answer as a model writes it under each template. */
static char *written(reward_kind kind, const char *answer)
{
    text_buf t;
    text_buf_init(&t);
    if (kind == REWARD_DAPO) {
        text_buf_append_str(&t, "Let me work it out step by step.\nAnswer: ");
        text_buf_append_str(&t, answer);
    } else if (kind == REWARD_BOXED) {
        text_buf_append_str(&t, "Therefore the final answer is $\\boxed{");
        text_buf_append_str(&t, answer);
        text_buf_append_str(&t, "}$.");
    } else {
        text_buf_append_str(&t, "<think>\nTry \\boxed{0} first.\n</think>\n\nThe answer is "
                                "\\boxed{");
        text_buf_append_str(&t, answer);
        text_buf_append_str(&t, "}.");
    }
    return text_buf_take(&t);
}

/* A wrong answer that no normaliser maps back onto the gold. */
static char *perturbed(const char *answer)
{
    text_buf t;
    text_buf_init(&t);
    text_buf_append_str(&t, "9");
    text_buf_append_str(&t, answer);
    text_buf_append_str(&t, "7");
    return text_buf_take(&t);
}

static void check_golds(const char *name, size_t expected)
{
    char path[4096];
    if (!shared_data_path(name, path, sizeof path))
        skip();
    dataset ds;
    kpo_error err;
    assert_int_equal(dataset_load(&ds, path, NULL, &err), KPO_OK);
    assert_int_equal(ds.count, expected);
    const reward_kind kinds[] = {REWARD_DAPO, REWARD_BOXED, REWARD_KPO};
    for (size_t k = 0; k < ds.count; k++) {
        const char *gold = ds.records[k].answer;
        for (int j = 0; j < 3; j++) {
            char *good = written(kinds[j], gold), *wrong_answer = perturbed(gold);
            char *bad = written(kinds[j], wrong_answer);
            reward_result r = score(kinds[j], good, gold);
            if (!r.correct)
                fail_msg("%s line %ld: %s gold \"%s\" scored wrong against itself (pred \"%s\")",
                         name, ds.records[k].line, reward_kind_name(kinds[j]), gold, r.pred);
            r = score(kinds[j], bad, gold);
            if (r.correct)
                fail_msg("%s line %ld: %s perturbed \"%s\" scored correct against \"%s\"", name,
                         ds.records[k].line, reward_kind_name(kinds[j]), wrong_answer, gold);
            free(good);
            free(bad);
            free(wrong_answer);
        }
    }
    dataset_free(&ds);
}

static void test_math500_golds(void **state)
{
    (void)state;
    check_golds("math500.jsonl", 500);
}

static void test_aime_golds(void **state)
{
    (void)state;
    check_golds("aime24.jsonl", 30);
    check_golds("aime25.jsonl", 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minerva_rules),   cmocka_unit_test(test_strip_string_rules),
        cmocka_unit_test(test_boxed_extraction), cmocka_unit_test(test_dapo_extraction),
        cmocka_unit_test(test_kpo_grader),      cmocka_unit_test(test_reward_names),
        cmocka_unit_test(test_math500_golds),   cmocka_unit_test(test_aime_golds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
