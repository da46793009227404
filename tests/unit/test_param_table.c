/* The parts' parameter tables: the filter's table drives its defaults, the
 * [filter] section of `kpo train`'s schema and its bounds, and the options
 * of kpo filter / simulate; every table's rows load into their fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/filter_options.h"
#include "core/config.h"
#include "core/param_table.h"
#include "filter/filter_params.h"
#include "train/train_config.h"

static const config_key *schema_key(const char *section, const char *name)
{
    for (size_t k = 0; k < TRAIN_SCHEMA_LEN; k++)
        if (strcmp(TRAIN_SCHEMA[k].section, section) == 0 &&
            strcmp(TRAIN_SCHEMA[k].name, name) == 0)
            return &TRAIN_SCHEMA[k];
    return NULL;
}

/* filter_config_default is the table's defaults, c_state resolved to kappa. */
static void test_filter_defaults_from_table(void **state)
{
    (void)state;
    filter_config d, t = {0};
    filter_config_default(&d);
    param_table_defaults(FILTER_PARAMS, FILTER_PARAMS_LEN, &t);
    assert_true(t.c_state == 0); /* "0: same as kappa" */
    filter_config_resolve(&t);
    assert_memory_equal(&d, &t, sizeof d);
    assert_true(d.q == 1e-6 && d.v == 1 && d.kappa == 3 && d.c_state == 3);
    assert_int_equal(d.mode, FILTER_MODE_NONE);
    assert_int_equal(d.iterations, 3);
    assert_int_equal(d.scale_covariance, 1);
    /* kappa set, c_state unset: c_state follows kappa. */
    t.c_state = 0;
    t.kappa = 2.5;
    filter_config_resolve(&t);
    assert_true(t.c_state == 2.5);
}

/* Every filter row is in the [filter] section with the same type, default,
 * bounds and help; the mode's choices are filter_mode's names. */
static void test_filter_schema_from_table(void **state)
{
    (void)state;
    for (size_t k = 0; k < FILTER_PARAMS_LEN; k++) {
        const param_def *row = &FILTER_PARAMS[k];
        const config_key *key = schema_key("filter", row->name);
        assert_non_null(key);
        assert_int_equal(key->type, row->type);
        assert_string_equal(key->default_value, row->default_value);
        assert_true(key->min == row->min && key->max == row->max);
        assert_string_equal(key->help, row->help);
    }
    const config_key *mode = schema_key("filter", "mode");
    assert_string_equal(mode->choices, "none|sigma|sqrtv|iterated|adaptive");
    for (int m = 0; m < FILTER_MODE_COUNT; m++)
        assert_string_equal(FILTER_MODE_NAMES[m], filter_mode_name((filter_mode)m));
}

/* A bad value's message names the key and the table's range. */
static void test_filter_bounds(void **state)
{
    (void)state;
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.iterations=0", &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "filter.iterations = '0'"));
    assert_non_null(strstr(err.message, "must be in [1, 1000]"));
    assert_int_equal(config_apply_override(&cfg, "filter.iterations=3", &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.step_size=2", &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "filter.step_size = '2'"));
    assert_non_null(strstr(err.message, "must be in [1e-09, 1.999999]"));
    config_free(&cfg);
}

/* The loader fills the filter's struct from a config, c_state following
 * kappa unless set. */
static void test_filter_load(void **state)
{
    (void)state;
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.mode=iterated", &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.kappa=2", &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "filter.scale_covariance=no", &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_OK);
    filter_config f = {0};
    assert_int_equal(param_table_load(&cfg, "filter", FILTER_PARAMS, FILTER_PARAMS_LEN, &f, &err),
                     KPO_OK);
    filter_config_resolve(&f);
    assert_int_equal(f.mode, FILTER_MODE_ITERATED);
    assert_true(f.kappa == 2 && f.c_state == 2 && f.q == 1e-6);
    assert_int_equal(f.scale_covariance, 0);
    config_free(&cfg);
}

/* kpo filter / simulate's options are the table's rows that name one, with
 * the table's defaults in their help, followed by the command's own. */
static void test_cli_options_from_table(void **state)
{
    (void)state;
    cli_option extra[] = {{"out", "RUN.h5", "run file", NULL}};
    cli_option options[FILTER_CLI_OPTIONS_MAX + 1];
    size_t n = filter_cli_options(options, FILTER_CLI_OPTIONS_MAX + 1, extra, 1);
    size_t with_cli = 0;
    for (size_t k = 0; k < FILTER_PARAMS_LEN; k++) {
        const param_def *row = &FILTER_PARAMS[k];
        if (!row->cli)
            continue;
        with_cli++;
        size_t found = n;
        for (size_t o = 0; o < n; o++)
            if (strcmp(options[o].name, row->cli) == 0)
                found = o;
        assert_true(found < n - 1);
        assert_true((options[found].metavar == NULL) == (row->type == CONFIG_BOOL));
        if (row->metavar && row->type != CONFIG_CHOICE && !strstr(row->cli_help, "(default")) {
            char text[64];
            snprintf(text, sizeof text, "(default %s)", row->default_value);
            assert_non_null(strstr(options[found].help, text));
        }
    }
    assert_int_equal(with_cli, 12);
    assert_int_equal(n, with_cli + 1);
    assert_string_equal(options[n - 1].name, "out");
    static const char *const EXPECTED[] = {"q", "v", "mode", "kappa", "rho0", "p0",
                                           "iterations", "c-state", "step-size",
                                           "no-scale-covariance", "lambda-bound",
                                           "lambda-energy"};
    for (size_t k = 0; k < 12; k++)
        assert_string_equal(options[k].name, EXPECTED[k]);
    assert_non_null(strstr(options[2].help, "none, sigma, sqrtv, iterated, adaptive"));
}

/* The CLI reads the table's options: defaults, c_state following --kappa,
 * a flag's opposite, the table's integer range. */
static void test_cli_read(void **state)
{
    (void)state;
    cli_option options[FILTER_CLI_OPTIONS_MAX];
    size_t n = filter_cli_options(options, FILTER_CLI_OPTIONS_MAX, NULL, 0);
    cli_command_spec spec = {"filter", "", "", options, n};
    char *argv[] = {"--kappa", "2", "--mode", "iterated", "--no-scale-covariance"};
    size_t n_positional;
    int help = 0;
    kpo_error err;
    assert_int_equal(cli_parse(&spec, 5, argv, NULL, 0, &n_positional, &help, &err), KPO_OK);
    filter_config f;
    int official = -1;
    assert_int_equal(filter_options_read(&spec, &f, &official, &err), KPO_OK);
    assert_int_equal(official, 0);
    assert_true(f.kappa == 2 && f.c_state == 2 && f.v == 1);
    assert_int_equal(f.mode, FILTER_MODE_ITERATED);
    assert_int_equal(f.scale_covariance, 0);

    for (size_t k = 0; k < n; k++)
        options[k].value = NULL;
    char *bad[] = {"--iterations", "0"};
    assert_int_equal(cli_parse(&spec, 2, bad, NULL, 0, &n_positional, &help, &err), KPO_OK);
    assert_int_equal(filter_options_read(&spec, &f, NULL, &err), KPO_ERR);
    assert_string_equal(err.message, "--iterations: must be in [1, 1000], got 0");

    for (size_t k = 0; k < n; k++)
        options[k].value = NULL;
    char *official_mode[] = {"--mode", "official"};
    assert_int_equal(cli_parse(&spec, 2, official_mode, NULL, 0, &n_positional, &help, &err),
                     KPO_OK);
    assert_int_equal(filter_options_read(&spec, &f, &official, &err), KPO_OK);
    assert_int_equal(official, 1);
    assert_int_equal(f.mode, FILTER_MODE_NONE);
    assert_int_equal(filter_options_read(&spec, &f, NULL, &err), KPO_ERR);
    assert_non_null(strstr(err.message, "--mode: unknown saturation mode 'official'"));
}

/* Every key of the schema, in every section, loads: the settings equal
 * what the hand-written reads of the config give. */
static void test_schema_sections(void **state)
{
    (void)state;
    static const char *const ORDER[] = {"run", "model", "data", "rollout", "learner", "filter",
                                        "optim"};
    size_t part = 0;
    for (size_t k = 0; k < TRAIN_SCHEMA_LEN; k++) {
        while (part < 7 && strcmp(TRAIN_SCHEMA[k].section, ORDER[part]) != 0)
            part++;
        assert_true(part < 7); /* sections contiguous, in order */
        for (size_t j = 0; j < k; j++)
            assert_false(strcmp(TRAIN_SCHEMA[j].section, TRAIN_SCHEMA[k].section) == 0 &&
                         strcmp(TRAIN_SCHEMA[j].name, TRAIN_SCHEMA[k].name) == 0);
    }
    assert_int_equal(TRAIN_SCHEMA_LEN, 77);
}

/* Every part's rows land in their fields; a choice stores the value its
 * enum's parse function gives. train_settings_from_config fills the
 * settings before its path checks (here: no model.path). */
static void test_train_settings_load(void **state)
{
    (void)state;
    static const char *const SETS[] = {
        "run.seed=7", "run.device=cuda", "run.gpu_comm=host", "data.chat_template=raw",
        "data.max_prompt_tokens=99", "rollout.group_size=4", "rollout.temperature=0.5",
        "rollout.reward=program", "rollout.reward_program=cat", "rollout.reward_binary=off",
        "learner.objective=gspo", "learner.loss_aggregation=token-mean",
        "learner.minibatch_order=balanced", "learner.nonfinite_update=fail",
        "learner.recompute=false", "learner.clip_high=0.5", "filter.kappa=4",
        "filter.mode=adaptive", "optim.lr_schedule=verl", "optim.warmup_ratio=0.5",
        "optim.grad_clip=2", "run.steps=10", "model.attention=cudnn",
        "model.decode_attention=split", "rollout.schedule=refill",
        "model.prefill_attention=flash", "model.decode_graphs=true", "rollout.prefill_tokens=4096",
    };
    config cfg;
    kpo_error err;
    assert_int_equal(config_init(&cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, &err), KPO_OK);
    for (size_t k = 0; k < sizeof SETS / sizeof SETS[0]; k++)
        assert_int_equal(config_apply_override(&cfg, SETS[k], &err), KPO_OK);
    assert_int_equal(config_validate(&cfg, &err), KPO_OK);
    train_settings s;
    assert_int_equal(train_settings_from_config(&cfg, 1, &s, &err), KPO_ERR);
    assert_string_equal(err.message, "model.path: required (an HF model directory)");
    assert_true(s.seed == 7 && s.steps == 10 && s.max_prompt_tokens == 99);
    assert_int_equal(s.device, MODEL_DEVICE_CUDA);
    assert_int_equal(s.gpu_comm, COMM_GPU_HOST);
    assert_int_equal(s.chat_template, CHAT_TEMPLATE_RAW);
    assert_int_equal(s.reward, REWARD_PROGRAM);
    assert_string_equal(s.reward_program, "cat");
    assert_int_equal(s.reward_binary, 0);
    assert_true(s.sampler.temperature == 0.5 && s.sampler.top_p == 1.0);
    assert_int_equal(s.learner.group_size, 4);
    assert_int_equal(s.learner.objective.kind, OBJECTIVE_GSPO);
    assert_int_equal(s.learner.objective.aggregation, LOSS_AGG_TOKEN_MEAN);
    assert_int_equal(s.learner.minibatch_order, MINIBATCH_ORDER_BALANCED);
    assert_int_equal(s.learner.fail_nonfinite, 1);
    assert_int_equal(s.recompute, 0);
    assert_int_equal(s.attention, GPU_ATTENTION_CUDNN);
    assert_int_equal(s.decode_attention, GPU_DECODE_ATTENTION_SPLIT);
    assert_int_equal(s.schedule, ROLLOUT_REFILL);
    assert_int_equal(s.prefill_attention, GPU_PREFILL_ATTENTION_FLASH);
    assert_int_equal(s.decode_graphs, 1);
    assert_int_equal(s.prefill_tokens, 4096);
    assert_int_equal(s.learner.log_samples, 8);
    assert_true(s.learner.objective.clip_high == 0.5 && s.learner.objective.clip_low == 3e-4);
    assert_int_equal(s.learner.objective.filter.mode, FILTER_MODE_ADAPTIVE);
    assert_true(s.learner.objective.filter.kappa == 4 && s.learner.objective.filter.c_state == 4);
    assert_int_equal(s.optim.schedule, ADAMW_SCHEDULE_VERL);
    assert_int_equal(s.optim.warmup_steps, 5); /* int(0.5 x run.steps) */
    assert_int_equal(s.optim.updates_per_rollout, 4);
    assert_true(s.optim.max_grad_norm == 2 && s.optim.weight_decay == 0.1);
    config_free(&cfg);

    /* learner.recompute also takes auto (the GPU memory plan decides). */
    assert_int_equal(config_init(&cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, &err), KPO_OK);
    assert_int_equal(config_apply_override(&cfg, "learner.recompute=auto", &err), KPO_OK);
    assert_int_equal(train_settings_from_config(&cfg, 1, &s, &err), KPO_ERR); /* no model.path */
    assert_int_equal(s.recompute, TRAIN_RECOMPUTE_AUTO);
    config_free(&cfg);

    /* A choice's stored value is what its enum's parser gives. */
    chat_template_kind chat;
    for (const char *const *name = (const char *const[]){"qwen3", "qwen3-thinking", "raw", NULL};
         *name; name++) {
        assert_int_equal(config_init(&cfg, TRAIN_SCHEMA, TRAIN_SCHEMA_LEN, &err), KPO_OK);
        char set[64];
        snprintf(set, sizeof set, "data.chat_template=%s", *name);
        assert_int_equal(config_apply_override(&cfg, set, &err), KPO_OK);
        (void)train_settings_from_config(&cfg, 1, &s, &err);
        assert_int_equal(chat_template_parse(*name, &chat, &err), KPO_OK);
        assert_int_equal(s.chat_template, chat);
        config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_defaults_from_table),
        cmocka_unit_test(test_filter_schema_from_table),
        cmocka_unit_test(test_filter_bounds),
        cmocka_unit_test(test_filter_load),
        cmocka_unit_test(test_cli_options_from_table),
        cmocka_unit_test(test_cli_read),
        cmocka_unit_test(test_schema_sections),
        cmocka_unit_test(test_train_settings_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
