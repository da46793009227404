#include "model_test_util.h"

#include <math.h>
#include <stdio.h>

double test_compare(const char *name, const float *got, const float *want, int64_t n)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(want[i]));
    const double floor = scale > 0 ? 1e-2 * scale : 1e-30;
    double worst = 0;
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor);
        if (!(e <= worst)) { /* catches NaN too */
            worst = isnan(e) ? INFINITY : e;
            at = i;
        }
    }
    printf("  %-50s n=%-7lld max rel err %.3e at [%lld]: got %.9g want %.9g\n", name,
           (long long)n, worst, (long long)at, n ? got[at] : 0.0, n ? want[at] : 0.0);
    return worst;
}

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"

void test_tiny_model(model *m, int tied, int64_t heads, int64_t kv_heads, uint64_t seed)
{
    model_config c = {.vocab_size = 53, .hidden_size = 24, .intermediate_size = 40,
                      .num_hidden_layers = 2, .num_attention_heads = heads,
                      .num_key_value_heads = kv_heads, .head_dim = 8,
                      .max_position_embeddings = 256, .rope_theta = 10000.0,
                      .rms_norm_eps = 1e-6, .tie_word_embeddings = tied};
    kpo_error err;
    if (model_init(m, &c, &err) != KPO_OK) {
        fprintf(stderr, "%s\n", err.message);
        abort();
    }
    model_init_random(m, seed, 0.3);
    rng_stream rng;
    rng_stream_init(&rng, seed, 999);
    for (size_t k = 0; k < m->n_params_table; k++)
        if (m->params[k].is_norm)
            for (int64_t i = 0; i < m->params[k].numel; i++)
                m->weights.data[m->params[k].offset + i] += (float)(0.2 * rng_normal(&rng));
}

void test_temp_dir(char *path)
{
    const char *base = getenv("TMPDIR");
    snprintf(path, 256, "%s/kpo_model_test_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path))
        abort();
}
