/* Loading and saving a model directory (config.json + safetensors), and
 * random initialisation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/rng.h"
#include "model/model.h"

static int shape_matches(const safetensors_tensor *t, const model_param *p)
{
    if (t->rank != p->rank)
        return 0;
    for (int d = 0; d < p->rank; d++)
        if (t->shape[d] != p->shape[d])
            return 0;
    return 1;
}

static void format_shape(char *out, size_t size, int rank, const int64_t *shape)
{
    size_t used = (size_t)snprintf(out, size, "[");
    for (int d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(out + used, size - used, d ? ", %lld" : "%lld",
                                 (long long)shape[d]);
    if (used < size)
        snprintf(out + used, size - used, "]");
}

/* NaN or inf weights load (a diverged run's checkpoint is still worth
 * inspecting) but poison every forward pass: say so, once per tensor. */
static void warn_nonfinite(const char *path, const model_param *p, const float *w)
{
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < p->numel; i++)
        if (!isfinite(w[i]) && bad++ == 0)
            first = i;
    if (bad)
        fprintf(stderr,
                "kpo: warning: %s: tensor '%s' has %lld non-finite value%s (NaN or inf; the "
                "first at flat index %lld)\n",
                path, p->name, (long long)bad, bad == 1 ? "" : "s", (long long)first);
}

static int load_weights(model *m, const safetensors_set *set, const char *dir, kpo_error *err)
{
    /* Check every tensor before converting any, so a bad checkpoint costs
     * no conversion time and leaves nothing behind. */
    for (size_t k = 0; k < m->n_params_table; k++) {
        const model_param *p = &m->params[k];
        const safetensors_file *file = NULL;
        const safetensors_tensor *t = safetensors_set_find(set, p->name, &file);
        if (!t)
            return error_set(err, "%s: tensor '%s' is missing", dir, p->name);
        if (!shape_matches(t, p)) {
            char got[128], want[128];
            format_shape(got, sizeof got, t->rank, t->shape);
            format_shape(want, sizeof want, p->rank, p->shape);
            return error_set(err, "%s: tensor '%s' has shape %s but config.json implies %s",
                             file->path, p->name, got, want);
        }
    }
    for (size_t k = 0; k < m->n_params_table; k++) {
        const safetensors_file *file = NULL;
        const safetensors_tensor *t = safetensors_set_find(set, m->params[k].name, &file);
        safetensors_read_f32(file, t, m->weights.data + m->params[k].offset);
        warn_nonfinite(file->path, &m->params[k], m->weights.data + m->params[k].offset);
    }
    return KPO_OK;
}

int model_load(const char *dir, model *out, kpo_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    model_config config;
    if (model_config_load(path, &config, err) != KPO_OK)
        return KPO_ERR;
    safetensors_set set;
    if (safetensors_set_open(dir, &set, err) != KPO_OK)
        return KPO_ERR;
    model m;
    int status = model_init(&m, &config, err);
    if (status == KPO_OK) {
        status = load_weights(&m, &set, dir, err);
        if (status != KPO_OK)
            model_free(&m);
    }
    safetensors_set_close(&set);
    if (status == KPO_OK)
        *out = m;
    return status;
}

int model_save(const model *m, const char *dir, safetensors_dtype dtype, kpo_error *err)
{
    struct stat st;
    if (mkdir(dir, 0777) != 0 && !(stat(dir, &st) == 0 && S_ISDIR(st.st_mode)))
        return error_set(err, "%s: cannot create directory", dir);
    safetensors_entry *entries = calloc(m->n_params_table, sizeof *entries);
    if (!entries)
        return error_set(err, "%s: out of memory", dir);
    for (size_t k = 0; k < m->n_params_table; k++) {
        const model_param *p = &m->params[k];
        entries[k].name = p->name;
        entries[k].data = m->weights.data + p->offset;
        entries[k].rank = p->rank;
        entries[k].shape[0] = p->shape[0];
        entries[k].shape[1] = p->shape[1];
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int status = safetensors_write(path, entries, m->n_params_table, dtype, err);
    free(entries);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (status == KPO_OK)
        status = model_config_save(&m->config, path,
                                   dtype == SAFETENSORS_BF16 ? "bfloat16" : "float32", err);
    return status;
}

void model_init_random(model *m, uint64_t seed, double std)
{
    for (size_t k = 0; k < m->n_params_table; k++) {
        const model_param *p = &m->params[k];
        float *w = m->weights.data + p->offset;
        rng_stream rng;
        rng_stream_init(&rng, seed, k);
        for (int64_t i = 0; i < p->numel; i++)
            w[i] = p->is_norm ? 1.0f : (float)(std * rng_normal(&rng));
    }
}
