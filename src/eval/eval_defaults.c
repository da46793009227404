/* kpo eval's defaults from the model directory and the run that wrote it
 * (eval_defaults.h has the order of the sources). */
#include "eval/eval_defaults.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file_util.h"
#include "io/runfile.h"

static void set_default(eval_default *d, const char *value, int from_run, const char *fmt,
                        const char *path, const char *what)
{
    snprintf(d->value, sizeof d->value, "%s", value);
    if (snprintf(d->source, sizeof d->source, fmt, path, what) >= (int)sizeof d->source)
        snprintf(d->source + sizeof d->source - 4, 4, "...");
    d->from_run = from_run;
}

int eval_defaults_config_get(const char *text, const char *section, const char *key, char *out,
                             size_t size)
{
    size_t key_len = strlen(key), section_len = strlen(section);
    int in_section = 0;
    for (const char *line = text; line && *line;) {
        const char *end = strchr(line, '\n');
        const char *stop = end ? end : line + strlen(line);
        const char *p = line;
        while (p < stop && isspace((unsigned char)*p))
            p++;
        if (p < stop && *p == '[') {
            in_section = (size_t)(stop - p) > section_len + 1 &&
                         strncmp(p + 1, section, section_len) == 0 && p[1 + section_len] == ']';
        } else if (in_section && (size_t)(stop - p) > key_len && strncmp(p, key, key_len) == 0) {
            const char *v = p + key_len;
            while (v < stop && (*v == ' ' || *v == '\t'))
                v++;
            if (v < stop && *v == '=') {
                v++;
                while (v < stop && isspace((unsigned char)*v))
                    v++;
                const char *v_end = v;
                /* inih's inline comment: ';' after whitespace. */
                while (v_end < stop && !(*v_end == ';' && v_end > v &&
                                         isspace((unsigned char)v_end[-1])))
                    v_end++;
                while (v_end > v && isspace((unsigned char)v_end[-1]))
                    v_end--;
                size_t n = (size_t)(v_end - v);
                if (n >= size)
                    return 0;
                memcpy(out, v, n);
                out[n] = '\0';
                return 1;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

/* A JSON file as an object (NULL and KPO_OK when absent). */
static int read_json_object(const char *path, cJSON **out, kpo_error *err)
{
    *out = NULL;
    if (!file_exists(path))
        return KPO_OK;
    char *text = NULL;
    if (file_read_all(path, &text, NULL, err) != KPO_OK)
        return KPO_ERR;
    cJSON *json = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        return error_set(err, "%s: not a JSON object", path);
    }
    *out = json;
    return KPO_OK;
}

static void from_model_meta(const char *path, const cJSON *meta, eval_defaults *out)
{
    static const char *const FMT = "%s (%s)";
    const struct {
        const char *key;
        eval_default *dest;
    } fields[] = {{"prompt_template", &out->prompt_template},
                  {"chat_template", &out->chat_template},
                  {"reward", &out->reward}};
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(meta, fields[k].key);
        if (cJSON_IsString(item) && item->valuestring[0])
            set_default(fields[k].dest, item->valuestring, 1, FMT, path, fields[k].key);
    }
    const cJSON *sft = cJSON_GetObjectItemCaseSensitive(meta, "sft");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(sft, "data");
    const cJSON *difficulty = cJSON_GetObjectItemCaseSensitive(sft, "difficulty");
    if (cJSON_IsString(data) && strcmp(data->valuestring, "arith") == 0 &&
        cJSON_IsNumber(difficulty)) {
        char value[32];
        snprintf(value, sizeof value, "%d", difficulty->valueint);
        set_default(&out->arith_difficulty, value, 1, FMT, path, "sft.difficulty");
    }
}

/* A run's resolved config: INI text (the run file's `config` attribute, a
 * "config" string) or a JSON object of "section.key" -> value text (kpo
 * train's trainer_state.json "config"). */
typedef struct run_config {
    const char *text;
    const cJSON *values;
} run_config;

static int run_config_get(const run_config *rc, const char *section, const char *key,
                          char *out, size_t size)
{
    if (rc->text)
        return eval_defaults_config_get(rc->text, section, key, out, size);
    char dotted[256];
    snprintf(dotted, sizeof dotted, "%s.%s", section, key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(rc->values, dotted);
    if (cJSON_IsString(item) && strlen(item->valuestring) < size) {
        snprintf(out, size, "%s", item->valuestring);
        return 1;
    }
    if (cJSON_IsNumber(item)) {
        snprintf(out, size, "%.17g", item->valuedouble);
        return 1;
    }
    return 0;
}

static void from_run_config(const char *where, const run_config *rc, eval_defaults *out)
{
    static const char *const FMT = "%s (%s)";
    char value[4096];
    if (run_config_get(rc, "data", "prompt_template", value, sizeof value))
        set_default(&out->prompt_template, value, 1, FMT, where, "data.prompt_template");
    if (run_config_get(rc, "data", "chat_template", value, sizeof value))
        set_default(&out->chat_template, value, 1, FMT, where, "data.chat_template");
    if (run_config_get(rc, "rollout", "reward", value, sizeof value)) {
        set_default(&out->reward, value, 1, FMT, where, "rollout.reward");
        if (strcmp(value, "program") == 0 &&
            run_config_get(rc, "rollout", "reward_program", value, sizeof value))
            set_default(&out->reward_program, value, 1, FMT, where, "rollout.reward_program");
    }
    if (run_config_get(rc, "data", "train", value, sizeof value) && strcmp(value, "arith") == 0 &&
        run_config_get(rc, "data", "arith_difficulty", value, sizeof value))
        set_default(&out->arith_difficulty, value, 1, FMT, where, "data.arith_difficulty");
}

/* RUN when model_dir is RUN/checkpoints/step-N (a trailing '/' allowed). */
static int run_dir_of(const char *model_dir, char *out, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s", model_dir);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash || strncmp(slash + 1, "step-", 5) != 0)
        return 0;
    *slash = '\0';
    const char *parent = strrchr(path, '/');
    parent = parent ? parent + 1 : path;
    if (strcmp(parent, "checkpoints") != 0)
        return 0;
    if (parent == path) {
        snprintf(out, size, ".");
        return 1;
    }
    path[parent - path - 1] = '\0';
    snprintf(out, size, "%s", path[0] ? path : "/");
    return 1;
}

/* The checkpoint's own record of the resolved config, trainer_state.json's
 * "config" (an object of "section.key" values, or INI text), when kpo train
 * wrote one: *state holds it (NULL when not). */
static int checkpoint_config(const char *model_dir, char *where, size_t where_size,
                             cJSON **state, run_config *rc, kpo_error *err)
{
    snprintf(where, where_size, "%s/trainer_state.json", model_dir);
    if (read_json_object(where, state, err) != KPO_OK)
        return KPO_ERR;
    const cJSON *config = cJSON_GetObjectItemCaseSensitive(*state, "config");
    if (cJSON_IsObject(config)) {
        rc->values = config;
    } else if (cJSON_IsString(config) && config->valuestring[0]) {
        rc->text = config->valuestring;
    } else {
        cJSON_Delete(*state);
        *state = NULL;
    }
    return KPO_OK;
}

int eval_defaults_resolve(const char *model_dir, eval_defaults *out, kpo_error *err)
{
    memset(out, 0, sizeof *out);
    static const char *const BUILT_IN = "%skpo eval's default%s";
    set_default(&out->prompt_template, "dapo", 0, BUILT_IN, "", "");
    set_default(&out->chat_template, "qwen3", 0, BUILT_IN, "", "");
    set_default(&out->reward, "dapo", 0, BUILT_IN, "", "");
    set_default(&out->reward_program, "", 0, BUILT_IN, "", "");
    set_default(&out->arith_difficulty, "1", 0, BUILT_IN, "", "");

    char path[4608];
    snprintf(path, sizeof path, "%s/kpo_model.json", model_dir);
    cJSON *meta;
    if (read_json_object(path, &meta, err) != KPO_OK)
        return KPO_ERR;
    if (meta)
        from_model_meta(path, meta, out);
    cJSON_Delete(meta);

    cJSON *state = NULL;
    run_config rc = {NULL, NULL};
    if (checkpoint_config(model_dir, path, sizeof path, &state, &rc, err) != KPO_OK)
        return KPO_ERR;
    char run_dir[4096], *text = NULL;
    if (!state && run_dir_of(model_dir, run_dir, sizeof run_dir)) {
        snprintf(path, sizeof path, "%s/run.h5", run_dir);
        kpo_error why;
        if (file_exists(path) && runfile_read_config(path, &text, &why) != KPO_OK) {
            text = NULL;
            snprintf(out->note, sizeof out->note, "the run's config was not read (%s)",
                     why.message);
        }
        rc.text = text;
    }
    if (rc.text || rc.values)
        from_run_config(path, &rc, out);
    free(text);
    cJSON_Delete(state);
    return KPO_OK;
}
