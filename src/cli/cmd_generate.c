/* kpo generate: continue a token sequence with the KV-cache decoder,
 * greedily or by temperature / top-p sampling, for inspection. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "core/parse.h"
#include "core/rng.h"
#include "model/model_compute.h"

static const float *sort_keys;

static int by_probability(const void *a, const void *b)
{
    const float x = sort_keys[*(const int32_t *)a], y = sort_keys[*(const int32_t *)b];
    return x > y ? -1 : x < y ? 1 : (*(const int32_t *)a - *(const int32_t *)b);
}

/* Softmax at the temperature, the smallest top set with mass >= top_p, then
 * one uniform draw: the same (seed, position) always gives the same token. */
static int32_t sample(float *logits, int64_t V, double temperature, double top_p,
                      rng_stream *rng, int32_t *order)
{
    int32_t best = 0;
    for (int64_t j = 1; j < V; j++)
        if (logits[j] > logits[best])
            best = (int32_t)j;
    if (temperature <= 0)
        return best;
    double sum = 0;
    const float mx = logits[best];
    for (int64_t j = 0; j < V; j++) {
        logits[j] = expf((float)((logits[j] - mx) / temperature));
        sum += logits[j];
        order[j] = (int32_t)j;
    }
    sort_keys = logits;
    qsort(order, (size_t)V, sizeof *order, by_probability);
    int64_t keep = 0;
    double mass = 0;
    while (keep < V && (keep == 0 || mass < top_p * sum))
        mass += logits[order[keep++]];
    double u = rng_uniform(rng) * mass, acc = 0;
    for (int64_t k = 0; k < keep; k++) {
        acc += logits[order[k]];
        if (u < acc)
            return order[k];
    }
    return order[keep - 1];
}

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
                             options, sizeof options / sizeof options[0]};
    size_t n_positional;
    int status = command_start(&spec, argc, argv, NULL, 0, &n_positional);
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
    int32_t *order = malloc((size_t)V * sizeof *order);
    float *logits = malloc((size_t)V * sizeof *logits);
    model_kv_cache cache;
    status = tokens && order && logits ? model_kv_cache_init(&cache, &m, 1, total, &err)
                                       : error_set(&err, "out of memory");
    for (size_t i = 0; status == KPO_OK && i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            status = error_set(&err, "--tokens: token id %lld is out of range [0, %lld)",
                               (long long)ids[i], (long long)V);
        else
            tokens[i] = (int32_t)ids[i];
    }
    rng_stream rng;
    rng_stream_init(&rng, (uint64_t)seed, 0);
    int64_t slot = 0, n_new = (int64_t)n_ids, n = (int64_t)n_ids;
    while (status == KPO_OK && n < total) {
        status = model_decode_step(&m, &cache, 1, &slot, &n_new, tokens + n - n_new, logits, &err);
        if (status == KPO_OK) {
            tokens[n++] = sample(logits, V, temperature, top_p, &rng, order);
            n_new = 1;
        }
    }
    if (status == KPO_OK) {
        for (int64_t i = (int64_t)n_ids; i < total; i++)
            printf("%s%d", i > (int64_t)n_ids ? "," : "", tokens[i]);
        printf("\n");
        model_kv_cache_free(&cache);
    }
    free(tokens);
    free(order);
    free(logits);
    free(ids);
    model_free(&m);
    return status == KPO_OK ? 0 : command_fail(err.message);
}
