/* The typed INI configuration: files, overrides, validation, round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

static const config_key SCHEMA[] = {
    {"filter", "q", CONFIG_DOUBLE, "1e-6", 0, 1e6, NULL, "process noise"},
    {"filter", "mode", CONFIG_CHOICE, "none", 0, 0, "none|sigma|sqrtv", "saturation"},
    {"train", "steps", CONFIG_INT, "16", 1, 1e6, NULL, "steps"},
    {"train", "resume", CONFIG_BOOL, "false", 0, 0, NULL, "resume"},
    {"data", "path", CONFIG_STRING, "", 0, 0, NULL, "dataset"},
};
enum { N_KEYS = sizeof SCHEMA / sizeof SCHEMA[0] };

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/kpo-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults_file_and_overrides(void **state)
{
    (void)state;
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, SCHEMA, N_KEYS, &err), KPO_OK);
    char *path = write_temp("; comment\n[filter]\nq = 0.01\nmode = sigma\n\n[data]\npath = a b.jsonl\n");
    assert_int_equal(config_load_file(&cfg, path, &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "train.steps=4", &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "train.resume=yes", &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_OK);
    assert_true(config_get_double(&cfg, "filter.q") == 0.01);
    assert_string_equal(config_get_string(&cfg, "filter.mode"), "sigma");
    assert_int_equal(config_get_int(&cfg, "train.steps"), 4);
    assert_int_equal(config_get_bool(&cfg, "train.resume"), 1);
    assert_string_equal(config_get_string(&cfg, "data.path"), "a b.jsonl");

    /* The dump reads back to the same values. */
    char *dump = config_dump(&cfg);
    assert_non_null(strstr(dump, "q = 0.01"));
    char *again_path = write_temp(dump);
    config again;
    assert_int_equal(config_init(&again, SCHEMA, N_KEYS, &err), KPO_OK);
    assert_int_equal(config_load_file(&again, again_path, &err), KPO_OK);
    for (size_t k = 0; k < N_KEYS; k++)
        assert_string_equal(again.values[k], cfg.values[k]);
    config_free(&again);
    unlink(again_path);
    unlink(path);
    free(again_path);
    free(path);
    free(dump);
    config_free(&cfg);
}

static void expect_error(const char *file_text, const char *override, const char *needle)
{
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, SCHEMA, N_KEYS, &err), KPO_OK);
    char *path = write_temp(file_text);
    int status = config_load_file(&cfg, path, &err);
    if (status == KPO_OK && override)
        status = config_apply_override(&cfg, override, &err);
    if (status == KPO_OK)
        status = config_validate(&cfg, &err);
    assert_int_equal(status, KPO_ERR);
    if (!strstr(err.message, needle))
        fail_msg("'%s' does not contain '%s'", err.message, needle);
    unlink(path);
    free(path);
    config_free(&cfg);
}

static void test_errors_name_file_line_and_key(void **state)
{
    (void)state;
    expect_error("[filter]\nq = 0.1\nqq = 2\n", NULL, ":3: unknown key 'qq' in [filter] (valid: q, mode)");
    expect_error("[filtr]\nq = 0.1\n", NULL, "unknown section [filtr] (valid: [filter], [train], [data])");
    expect_error("[filter]\nq = -1\n", NULL, "filter.q = '-1' (from ");
    expect_error("[filter]\nq = abc\n", NULL, "expected a finite number");
    expect_error("[filter]\nmode = huber\n", NULL, "must be one of none|sigma|sqrtv");
    expect_error("[train]\nsteps = 0\n", NULL, "train.steps = '0'");
    expect_error("[train]\nsteps = 2.5\n", NULL, "expected an integer");
    expect_error("[train]\nresume = maybe\n", NULL, "expected true or false");
    expect_error("[train]\nthis line is not ini\n", NULL, ":2: malformed line");
    expect_error("", "train.step=3", "--set train.step: unknown key 'step' in [train]");
    expect_error("", "steps=3", "expected section.key=value");
    expect_error("", "train.steps=-5", "(from --set)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_file_and_overrides),
        cmocka_unit_test(test_errors_name_file_line_and_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
