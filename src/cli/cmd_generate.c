/* kpo generate: continue a token sequence with the KV-cache decoder,
 * greedily or by temperature / top-p sampling (the rollout sampler), for
 * inspection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "core/rng.h"
/* The CPU model itself, not the backend: kpo generate decodes with its KV
 * cache (model_kv_cache, model_decode_step) in fp32. */
#include "model/cpu/model_compute.h"
#include "sampling/sampler.h"

int cmd_generate(int argc, char **argv)
{
    cli_option options[] = {
        {"model", "DIR", "checkpoint directory (required)", NULL},
        {"tokens", "LIST", "prompt token ids, comma separated (required)", NULL},
        {"max-new", "N", "tokens to generate (default 16)", NULL},
        {"temperature", "T", "0 for greedy (default 0)", NULL},
        {"top-p", "P", "nucleus mass in (0, 1] (default 1)", NULL},
        {"seed", "N", "sampling seed (default 0)", NULL},
    };
    cli_command_spec spec = {"generate", "--model DIR --tokens LIST [options]",
                             "Continue token ids with the KV-cache decoder and print them.",
                             CLI_OPTIONS(options)};
    int status = command_start_options(&spec, argc, argv);
    if (status >= 0)
        return status;
    const char *dir = cli_get(&spec, "model"), *text = cli_get(&spec, "tokens");
    if (!dir || !text)
        return command_fail("kpo generate: --model and --tokens are required");
    kpo_error err;
    long long max_new, seed;
    double temperature, top_p;
    if (cli_get_int64(&spec, "max-new", 16, &max_new, &err) != KPO_OK ||
        cli_get_int64(&spec, "seed", 0, &seed, &err) != KPO_OK ||
        cli_get_double(&spec, "temperature", 0, &temperature, &err) != KPO_OK ||
        cli_get_double(&spec, "top-p", 1, &top_p, &err) != KPO_OK)
        return command_fail(err.message);
    if (max_new < 1 || temperature < 0 || !(top_p > 0 && top_p <= 1) || seed < 0)
        return command_fail("kpo generate: need --max-new >= 1, --temperature >= 0, "
                            "--top-p in (0, 1], --seed >= 0");
    int64_t *ids = NULL;
    size_t n_ids = 0;
    if (parse_int64_list(text, "--tokens", &ids, &n_ids, &err) != KPO_OK)
        return command_fail(err.message);
    model m;
    if (model_load(dir, &m, &err) != KPO_OK) {
        free(ids);
        return command_fail(err.message);
    }
    const int64_t V = m.config.vocab_size, total = (int64_t)n_ids + max_new;
    int32_t *tokens = malloc((size_t)total * sizeof *tokens);
    float *logits = malloc((size_t)V * sizeof *logits);
    sampler_config sampler = {temperature, top_p};
    sampler_scratch scratch = {0};
    model_kv_cache cache;
    int have_cache = 0;
    status = tokens && logits ? sampler_scratch_init(&scratch, V, &err)
                              : error_set(&err, "out of memory");
    if (status == KPO_OK)
        status = model_kv_cache_init(&cache, &m, 1, total, &err);
    have_cache = status == KPO_OK;
    for (size_t i = 0; status == KPO_OK && i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            status = error_set(&err, "--tokens: token id %lld is out of range [0, %lld)",
                               (long long)ids[i], (long long)V);
        else
            tokens[i] = (int32_t)ids[i];
    }
    rng_stream rng;
    sampler_stream_init(&rng, (uint64_t)seed, 0, 0, 0);
    int64_t slot = 0, n_new = (int64_t)n_ids, n = (int64_t)n_ids;
    while (status == KPO_OK && n < total) {
        status = model_decode_step(&m, &cache, 1, &slot, &n_new, tokens + n - n_new, logits, &err);
        if (status == KPO_OK) {
            tokens[n++] = sampler_draw(&sampler, logits, V, &scratch, &rng);
            n_new = 1;
        }
    }
    if (status == KPO_OK) {
        for (int64_t i = (int64_t)n_ids; i < total; i++)
            printf("%s%d", i > (int64_t)n_ids ? "," : "", tokens[i]);
        printf("\n");
    }
    if (have_cache) /* on every path: a bad --tokens id fails after the cache exists */
        model_kv_cache_free(&cache);
    free(tokens);
    sampler_scratch_free(&scratch);
    free(logits);
    free(ids);
    model_free(&m);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
