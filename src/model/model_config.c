/* Qwen3 config.json: reading, validation (including a parameter count that
 * must fit a checkpoint) and writing. */
#include "model/model_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "model/model_io_util.h"

static int read_int(const cJSON *root, const char *path, const char *key, int64_t *out,
                    kpo_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item))
        return error_set(err, "%s: field '%s' is missing", path, key);
    double v = item->valuedouble;
    if (!cJSON_IsNumber(item) || v != floor(v) || fabs(v) > 9e15)
        return error_set(err, "%s: field '%s' must be an integer", path, key);
    if (v <= 0)
        return error_set(err, "%s: field '%s' must be > 0 (got %g)", path, key, v);
    *out = (int64_t)v;
    return KPO_OK;
}

static int read_double(const cJSON *root, const char *path, const char *key, double *out,
                       kpo_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item))
        return error_set(err, "%s: field '%s' is missing", path, key);
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return error_set(err, "%s: field '%s' must be a number", path, key);
    if (item->valuedouble <= 0)
        return error_set(err, "%s: field '%s' must be > 0 (got %g)", path, key,
                         item->valuedouble);
    *out = item->valuedouble;
    return KPO_OK;
}

/* Every tensor size, offset and the total stay below MODEL_MAX_PARAMS,
 * checked step by step so that no product can overflow on the way: a
 * wrapped count would write a checkpoint that cannot be read back. */
enum { MODEL_MAX_PARAMS_LOG2 = 51 };
#define MODEL_MAX_PARAMS ((int64_t)1 << MODEL_MAX_PARAMS_LOG2)

/* a * b (both > 0) into *out, or false when it reaches the limit. */
static bool mul_bounded(int64_t a, int64_t b, int64_t *out)
{
    if (a > MODEL_MAX_PARAMS / b)
        return false;
    *out = a * b;
    return *out <= MODEL_MAX_PARAMS;
}

static bool add_bounded(int64_t a, int64_t b, int64_t *out)
{
    *out = a + b; /* both operands <= 2^51: no overflow */
    return *out <= MODEL_MAX_PARAMS;
}

static int too_large(const char *where, const char *field, int64_t value, const char *with,
                     kpo_error *err)
{
    return error_set(err,
                     "%s: field '%s' (%lld) makes the model too large%s%s%s: over 2^%d "
                     "parameters, more than a checkpoint can hold",
                     where, field, (long long)value, with ? " (with '" : "", with ? with : "",
                     with ? "')" : "", MODEL_MAX_PARAMS_LOG2);
}

static int check_param_count(const model_config *c, const char *where, kpo_error *err)
{
    int64_t q, kv, embed, attn_q, attn_kv, mlp, layer, layers, total;
    const int64_t h = c->hidden_size, d = c->head_dim;
    if (h > MODEL_MAX_PARAMS)
        return too_large(where, "hidden_size", h, NULL, err);
    if (d > MODEL_MAX_PARAMS)
        return too_large(where, "head_dim", d, NULL, err);
    if (!mul_bounded(c->num_attention_heads, d, &q))
        return too_large(where, "num_attention_heads", c->num_attention_heads, "head_dim", err);
    if (!mul_bounded(c->num_key_value_heads, d, &kv))
        return too_large(where, "num_key_value_heads", c->num_key_value_heads, "head_dim", err);
    if (!mul_bounded(c->vocab_size, h, &embed))
        return too_large(where, "vocab_size", c->vocab_size, "hidden_size", err);
    if (!mul_bounded(q, h, &attn_q))
        return too_large(where, "num_attention_heads", c->num_attention_heads, "hidden_size",
                         err);
    if (!mul_bounded(kv, h, &attn_kv))
        return too_large(where, "num_key_value_heads", c->num_key_value_heads, "hidden_size",
                         err);
    if (!mul_bounded(c->intermediate_size, h, &mlp))
        return too_large(where, "intermediate_size", c->intermediate_size, "hidden_size", err);
    /* layer = 2h + 2d + (2 q*h + 2 kv*h) + 3 i*h: name the bigger part */
    int64_t attn, mlp3;
    if (!add_bounded(attn_q, attn_q, &attn) || !add_bounded(attn, attn_kv, &attn) ||
        !add_bounded(attn, attn_kv, &attn))
        return too_large(where, "num_attention_heads", c->num_attention_heads, "hidden_size",
                         err);
    if (!mul_bounded(mlp, 3, &mlp3))
        return too_large(where, "intermediate_size", c->intermediate_size, "hidden_size", err);
    if (!add_bounded(attn, mlp3, &layer) || !add_bounded(layer, 2 * h + 2 * d, &layer))
        return mlp3 >= attn ? too_large(where, "intermediate_size", c->intermediate_size,
                                        "hidden_size", err)
                            : too_large(where, "num_attention_heads", c->num_attention_heads,
                                        "hidden_size", err);
    if (!mul_bounded(c->num_hidden_layers, layer, &layers))
        return too_large(where, "num_hidden_layers", c->num_hidden_layers, NULL, err);
    if (!add_bounded(embed, layers, &total) || !add_bounded(total, h, &total) ||
        (!c->tie_word_embeddings && !add_bounded(total, embed, &total)))
        return too_large(where, "vocab_size", c->vocab_size, "the layers", err);
    return KPO_OK;
}

int model_config_validate(const model_config *c, const char *where, kpo_error *err)
{
    const struct {
        const char *name;
        int64_t value;
    } ints[] = {{"vocab_size", c->vocab_size},
                {"hidden_size", c->hidden_size},
                {"intermediate_size", c->intermediate_size},
                {"num_hidden_layers", c->num_hidden_layers},
                {"num_attention_heads", c->num_attention_heads},
                {"num_key_value_heads", c->num_key_value_heads},
                {"head_dim", c->head_dim},
                {"max_position_embeddings", c->max_position_embeddings}};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        if (ints[k].value <= 0)
            return error_set(err, "%s: field '%s' must be > 0", where, ints[k].name);
    if (!(c->rope_theta > 0))
        return error_set(err, "%s: field 'rope_theta' must be > 0", where);
    if (!(c->rms_norm_eps > 0))
        return error_set(err, "%s: field 'rms_norm_eps' must be > 0", where);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return error_set(err,
                         "%s: field 'num_attention_heads' (%lld) must be a multiple of "
                         "'num_key_value_heads' (%lld)",
                         where, (long long)c->num_attention_heads,
                         (long long)c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return error_set(err, "%s: field 'head_dim' must be even for rotate-half RoPE", where);
    if (c->vocab_size > INT32_MAX)
        return error_set(err, "%s: field 'vocab_size' exceeds the int32 token id range", where);
    return check_param_count(c, where, err);
}

int model_config_load(const char *path, model_config *config, kpo_error *err)
{
    char *text = NULL;
    if (file_read_all(path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, "%s: not a JSON object", path);
    }
    model_config c = {0};
    int status = KPO_OK;
    if (read_int(root, path, "vocab_size", &c.vocab_size, err) != KPO_OK ||
        read_int(root, path, "hidden_size", &c.hidden_size, err) != KPO_OK ||
        read_int(root, path, "intermediate_size", &c.intermediate_size, err) != KPO_OK ||
        read_int(root, path, "num_hidden_layers", &c.num_hidden_layers, err) != KPO_OK ||
        read_int(root, path, "num_attention_heads", &c.num_attention_heads, err) != KPO_OK ||
        read_int(root, path, "num_key_value_heads", &c.num_key_value_heads, err) != KPO_OK ||
        read_int(root, path, "head_dim", &c.head_dim, err) != KPO_OK ||
        read_int(root, path, "max_position_embeddings", &c.max_position_embeddings, err) !=
            KPO_OK ||
        read_double(root, path, "rope_theta", &c.rope_theta, err) != KPO_OK ||
        read_double(root, path, "rms_norm_eps", &c.rms_norm_eps, err) != KPO_OK)
        status = KPO_ERR;
    if (status == KPO_OK) {
        const cJSON *tie = cJSON_GetObjectItemCaseSensitive(root, "tie_word_embeddings");
        if (tie && !cJSON_IsBool(tie))
            status = error_set(err, "%s: field 'tie_word_embeddings' must be true or false", path);
        c.tie_word_embeddings = tie && cJSON_IsTrue(tie);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "model_type");
        if (status == KPO_OK && type &&
            !(cJSON_IsString(type) && strcmp(type->valuestring, "qwen3") == 0))
            status = error_set(err, "%s: field 'model_type' must be \"qwen3\"", path);
    }
    cJSON_Delete(root);
    if (status == KPO_OK)
        status = model_config_validate(&c, path, err);
    if (status == KPO_OK)
        *config = c;
    return status;
}

int model_config_save(const model_config *c, const char *path, const char *torch_dtype,
                      kpo_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen3ForCausalLM"));
    cJSON_AddFalseToObject(root, "attention_bias");
    cJSON_AddNumberToObject(root, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(root, "head_dim", (double)c->head_dim);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddNumberToObject(root, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(root, "initializer_range", 0.02);
    cJSON_AddNumberToObject(root, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddStringToObject(root, "model_type", "qwen3");
    cJSON_AddNumberToObject(root, "num_attention_heads", (double)c->num_attention_heads);
    cJSON_AddNumberToObject(root, "num_hidden_layers", (double)c->num_hidden_layers);
    cJSON_AddNumberToObject(root, "num_key_value_heads", (double)c->num_key_value_heads);
    cJSON_AddNumberToObject(root, "rms_norm_eps", c->rms_norm_eps);
    cJSON_AddNullToObject(root, "rope_scaling");
    cJSON_AddNumberToObject(root, "rope_theta", c->rope_theta);
    cJSON_AddNullToObject(root, "sliding_window");
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype);
    cJSON_AddTrueToObject(root, "use_cache");
    cJSON_AddFalseToObject(root, "use_sliding_window");
    cJSON_AddNumberToObject(root, "vocab_size", (double)c->vocab_size);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return error_set(err, "%s: out of memory formatting config", path);
    int status = model_io_write_atomic(path, text, strlen(text), err);
    free(text);
    return status;
}

int64_t model_config_param_count(const model_config *c)
{
    const int64_t h = c->hidden_size, d = c->head_dim;
    const int64_t q = c->num_attention_heads * d, kv = c->num_key_value_heads * d;
    const int64_t layer = 2 * h + 2 * d + h * q + 2 * h * kv + q * h + 3 * h * c->intermediate_size;
    int64_t total = c->vocab_size * h + c->num_hidden_layers * layer + h;
    if (!c->tie_word_embeddings)
        total += c->vocab_size * h;
    return total;
}
