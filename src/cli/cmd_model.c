/* kpo model init | list: make a random Qwen3 checkpoint (tests, benchmarks,
 * the embedded default) and describe any checkpoint's tensors. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "model/model.h"

typedef struct model_preset {
    const char *name;
    model_config config;
} model_preset;

/* tiny: seconds on a laptop; 50m: the benchmark's ~50M-parameter shape. */
static const model_preset PRESETS[] = {
    {"tiny", {256, 64, 128, 2, 4, 2, 16, 2048, 10000.0, 1e-6, true}},
    {"50m", {50000, 512, 1536, 8, 8, 4, 64, 4096, 1000000.0, 1e-6, true}},
};

static int model_init_main(int argc, char **argv)
{
    cli_option options[] = {
        {"out", "DIR", "checkpoint directory to write (required)", NULL},
        {"config", "FILE", "an HF config.json to take the shape from", NULL},
        {"preset", "NAME", "tiny or 50m (default tiny) when --config is absent", NULL},
        {"seed", "N", "random seed (default 0)", NULL},
        {"std", "S", "standard deviation of the weights (default 0.02)", NULL},
        {"dtype", "T", "f32 or bf16 (default f32)", NULL},
    };
    cli_command_spec spec = {"model init", "--out DIR [--config FILE | --preset NAME] [options]",
                             "Write a random-initialised Qwen3 checkpoint (config.json + "
                             "model.safetensors).",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    kpo_error err;
    const char *out = cli_get(&spec, "out"), *config_path = cli_get(&spec, "config");
    const char *preset = cli_get(&spec, "preset"), *dtype = cli_get(&spec, "dtype");
    if (!out)
        return command_fail("kpo model init: --out is required");
    model_config config;
    if (config_path) {
        if (model_config_load(config_path, &config, &err) != KPO_OK)
            return command_fail(err.message);
    } else {
        const model_preset *found = NULL;
        for (size_t k = 0; k < sizeof PRESETS / sizeof PRESETS[0]; k++)
            if (strcmp(PRESETS[k].name, preset ? preset : "tiny") == 0)
                found = &PRESETS[k];
        if (!found)
            return command_fail("--preset: must be tiny or 50m");
        config = found->config;
    }
    safetensors_dtype st_dtype = SAFETENSORS_F32;
    if (dtype && strcmp(dtype, "bf16") == 0)
        st_dtype = SAFETENSORS_BF16;
    else if (dtype && strcmp(dtype, "f32") != 0)
        return command_fail("--dtype: must be f32 or bf16");
    long long seed;
    double std;
    if (cli_get_int64(&spec, "seed", 0, &seed, &err) != KPO_OK ||
        cli_get_double(&spec, "std", 0.02, &std, &err) != KPO_OK)
        return command_fail(err.message);
    if (seed < 0 || !(std >= 0))
        return command_fail("--seed and --std must be >= 0");
    model m;
    if (model_init(&m, &config, &err) != KPO_OK)
        return command_fail(err.message);
    model_init_random(&m, (uint64_t)seed, std);
    status = model_save(&m, out, st_dtype, &err);
    if (status == KPO_OK)
        printf("%s: %lld parameters, %s\n", out, (long long)model_config_param_count(&config),
               safetensors_dtype_name(st_dtype));
    model_free(&m);
    return status == KPO_OK ? 0 : command_fail(err.message);
}

static int model_list_main(int argc, char **argv)
{
    cli_option options[] = {{"tensors", NULL, "also list every tensor", NULL}};
    cli_command_spec spec = {"model list", "DIR [--tensors]",
                             "Describe a checkpoint: its config, and each tensor's dtype and "
                             "shape; validates it fully.",
                             CLI_OPTIONS(options)};
    const char *positional[1];
    int status = command_start_one(&spec, argc, argv, positional,
                                   "kpo model list: give one checkpoint directory");
    if (status >= 0)
        return status;
    kpo_error err;
    model m;
    /* Loading checks every tensor against the config, so a listing that
     * prints is a checkpoint kpo can use. */
    if (model_load(positional[0], &m, &err) != KPO_OK)
        return command_fail(err.message);
    safetensors_set set;
    if (safetensors_set_open(positional[0], &set, &err) != KPO_OK) {
        model_free(&m);
        return command_fail(err.message);
    }
    const model_config *c = &m.config;
    printf("%s: Qwen3, %lld layers, hidden %lld, intermediate %lld, heads %lld / kv %lld, "
           "head_dim %lld, vocab %lld, rope_theta %g, eps %g, %s embeddings\n",
           positional[0], (long long)c->num_hidden_layers, (long long)c->hidden_size,
           (long long)c->intermediate_size, (long long)c->num_attention_heads,
           (long long)c->num_key_value_heads, (long long)c->head_dim, (long long)c->vocab_size,
           c->rope_theta, c->rms_norm_eps, c->tie_word_embeddings ? "tied" : "untied");
    int64_t total = 0;
    for (size_t f = 0; f < set.n_files; f++)
        for (size_t k = 0; k < set.files[f].n_tensors; k++) {
            const safetensors_tensor *t = &set.files[f].tensors[k];
            total += t->numel;
            if (!cli_get(&spec, "tensors"))
                continue;
            char shape[128];
            int used = snprintf(shape, sizeof shape, "[");
            for (int d = 0; d < t->rank; d++)
                used += snprintf(shape + used, sizeof shape - (size_t)used, d ? ", %lld" : "%lld",
                                 (long long)t->shape[d]);
            snprintf(shape + used, sizeof shape - (size_t)used, "]");
            printf("  %-55s %-5s %-16s %12lld\n", t->name, safetensors_dtype_name(t->dtype),
                   shape, (long long)t->numel);
        }
    printf("%zu file(s), %lld stored values, %lld model parameters\n", set.n_files,
           (long long)total, (long long)model_config_param_count(c));
    safetensors_set_close(&set);
    model_free(&m);
    return 0;
}

int cmd_model(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "init") == 0)
        return model_init_main(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "list") == 0)
        return model_list_main(argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        printf("usage: kpo model init --out DIR [...]   random checkpoint\n"
               "       kpo model list DIR [--tensors]   describe a checkpoint\n");
        return 0;
    }
    return command_fail("kpo model: expected 'init' or 'list' (kpo model --help)");
}
