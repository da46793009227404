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

/* Issue 17: a NUL byte ended the value silently ("a.jsonl\0x" read as
 * "a.jsonl"); it is refused with the file and line. */
static void test_nul_byte_refused(void **state)
{
    (void)state;
    static const char text[] = "[filter]\nq = 0.5\n[data]\npath = a.jsonl\0junk\n";
    char *path = strdup("/tmp/kpo-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, SCHEMA, N_KEYS, &err), KPO_OK);
    assert_int_equal(config_load_file(&cfg, path, &err), KPO_ERR);
    char expect[128];
    snprintf(expect, sizeof expect, "%s:4: a NUL byte", path);
    if (!strstr(err.message, expect))
        fail_msg("'%s' lacks '%s'", err.message, expect);
    config_free(&cfg);
    unlink(path);
    free(path);
}

/* Issue 17: a key set twice in one file took the last silently; a later
 * file and --set still override (that is how configs stack). */
static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_error("[filter]\nq = 0.1\nmode = sigma\nq = 0.2\n", NULL,
                 ":4: [filter] q is set twice in this file (also at ");
    expect_error("[filter]\nq = 0.1\n[train]\nsteps = 3\n[filter]\nq = 0.2\n", NULL,
                 ":6: [filter] q is set twice");
    /* a repeated section with different keys is fine */
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, SCHEMA, N_KEYS, &err), KPO_OK);
    char *a = write_temp("[filter]\nq = 0.1\n[train]\nsteps = 3\n[filter]\nmode = sigma\n");
    char *b = write_temp("[filter]\nq = 0.2\n");
    assert_int_equal(config_load_file(&cfg, a, &err), KPO_OK);
    assert_int_equal(config_load_file(&cfg, b, &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.q=0.3", &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.q=0.4", &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_OK);
    assert_true(config_get_double(&cfg, "filter.q") == 0.4);
    assert_string_equal(config_get_string(&cfg, "filter.mode"), "sigma");
    /* the same file loaded again is a later file, not a duplicate */
    assert_int_equal(config_load_file(&cfg, b, &err), KPO_OK);
    unlink(a);
    unlink(b);
    free(a);
    free(b);
    config_free(&cfg);
}

/* A line longer than inih's buffer was cut, its rest read as a line of its
 * own (here a key); it is refused with its line number. */
static void test_long_line_refused(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof text, "[data]\npath = %0250d\n[filter]\nq = 1\n", 7);
    expect_error(text, NULL, ":2: line longer than 198 bytes");
    /* the cut used to leave "mode = sigma" as a line of its own */
    snprintf(text, sizeof text, "[filter]\nq = 0.%0191d mode = sigma\n", 1);
    expect_error(text, NULL, ":2: line longer than 198 bytes");
    /* a long last line without a newline, and lines up to the limit, load */
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, SCHEMA, N_KEYS, &err), KPO_OK);
    snprintf(text, sizeof text, "[data]\npath = %0180d", 7);
    char *path = write_temp(text);
    assert_int_equal(config_load_file(&cfg, path, &err), KPO_OK);
    assert_int_equal(strlen(config_get_string(&cfg, "data.path")), 180);
    unlink(path);
    free(path);
    /* a long comment (a dump's origin paths) is dropped, not refused */
    snprintf(text, sizeof text, "; %0300d\n[train]\nsteps = 5  ; /%0300d:3\n[filter]\nq = 0.5\n", 1,
             2);
    path = write_temp(text);
    assert_int_equal(config_load_file(&cfg, path, &err), KPO_OK);
    assert_int_equal(config_get_int(&cfg, "train.steps"), 5);
    assert_true(config_get_double(&cfg, "filter.q") == 0.5);
    unlink(path);
    free(path);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_file_and_overrides),
        cmocka_unit_test(test_errors_name_file_line_and_key),
        cmocka_unit_test(test_nul_byte_refused),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_long_line_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
