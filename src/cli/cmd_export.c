/* kpo export: turns a kpo model directory (a training checkpoint, a kpo sft
 * output, any config.json + safetensors kpo loads) into a Hugging Face model
 * directory: safetensors in F32 or BF16, sharded under a size limit with
 * model.safetensors.index.json as save_pretrained writes them, config.json
 * with the matching torch_dtype, generation_config.json and the tokenizer's
 * files. The directory is built under a temporary name and renamed into
 * place, so DIR either does not exist or is complete. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "io/checkpoint.h"
#include "core/file_util.h"
#include "model/model.h"
#include "model/model_io_util.h"
#include "tokenizer/tokenizer.h"
#include "train/train_data.h"

/* HF's default max_shard_size. */
static const char DEFAULT_SHARD_SIZE[] = "5GB";

/* "5GB" -> 5e9 bytes. Decimal units as HF's convert_file_size_to_int
 * (KB, MB, GB), binary ones with an i (KiB, MiB, GiB); a bare number is
 * bytes. */
static int parse_size(const char *text, int64_t *out, kpo_error *err)
{
    char *end;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || errno != 0 || !(value > 0))
        return error_set(err, "--max-shard-size: '%s' is not a positive size like 5GB", text);
    static const struct {
        const char *suffix;
        double scale;
    } UNITS[] = {{"", 1},           {"B", 1},           {"KB", 1e3},
                 {"MB", 1e6},        {"GB", 1e9},        {"TB", 1e12},
                 {"KIB", 0x1p10},    {"MIB", 0x1p20},    {"GIB", 0x1p30},
                 {"TIB", 0x1p40}};
    char unit[8] = {0};
    size_t n = strlen(end);
    if (n >= sizeof unit)
        return error_set(err, "--max-shard-size: unknown unit in '%s'", text);
    for (size_t k = 0; k < n; k++)
        unit[k] = (char)toupper((unsigned char)end[k]);
    for (size_t k = 0; k < sizeof UNITS / sizeof UNITS[0]; k++)
        if (strcmp(unit, UNITS[k].suffix) == 0) {
            double bytes = value * UNITS[k].scale;
            if (bytes < 1 || bytes > 9e18)
                return error_set(err, "--max-shard-size: '%s' is out of range", text);
            *out = (int64_t)bytes;
            return KPO_OK;
        }
    return error_set(err, "--max-shard-size: unknown unit in '%s' (B, KB, MB, GB, KiB, MiB, GiB)",
                     text);
}

typedef struct export_settings {
    const char *model_dir, *out, *tokenizer;
    safetensors_dtype dtype;
    int64_t max_shard_bytes;
} export_settings;

/* One tensor to write, and the shard (0-based) it goes to. */
typedef struct export_plan {
    safetensors_entry *entries; /* [n], parameter-table order */
    int *shard;                 /* [n] */
    size_t n;
    int n_shards;
    int64_t total_bytes;
} export_plan;

static int64_t param_bytes(const model_param *p, safetensors_dtype dtype)
{
    return p->numel * (int64_t)safetensors_dtype_size(dtype);
}

/* Shards filled in order, a new one whenever the next tensor would take the
 * current one past the limit (HF's rule). A single tensor larger than the
 * limit gets a shard of its own, as in HF; the caller warns. */
static int plan_shards(const model *m, const export_settings *s, export_plan *plan,
                       kpo_error *err)
{
    memset(plan, 0, sizeof *plan);
    plan->n = m->n_params_table;
    plan->entries = calloc(plan->n, sizeof *plan->entries);
    plan->shard = calloc(plan->n, sizeof *plan->shard);
    if (!plan->entries || !plan->shard)
        return error_set(err, "%s: out of memory planning the shards", s->out);
    int64_t used = 0;
    int shard = 0;
    for (size_t k = 0; k < plan->n; k++) {
        const model_param *p = &m->params[k];
        const int64_t bytes = param_bytes(p, s->dtype);
        if (used > 0 && used + bytes > s->max_shard_bytes) {
            shard++;
            used = 0;
        }
        used += bytes;
        plan->total_bytes += bytes;
        plan->shard[k] = shard;
        plan->entries[k] = (safetensors_entry){.name = p->name,
                                               .data = m->weights.data + p->offset,
                                               .rank = p->rank,
                                               .shape = {p->shape[0], p->shape[1]}};
    }
    plan->n_shards = plan->n ? shard + 1 : 0;
    return KPO_OK;
}

static void plan_free(export_plan *plan)
{
    free(plan->entries);
    free(plan->shard);
}

/* dir/name into out; too long is an error, not a different file. */
static int join_path(char *out, size_t size, const char *dir, const char *name, kpo_error *err)
{
    int n = snprintf(out, size, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= size)
        return error_set(err, "%s: path too long", dir);
    return KPO_OK;
}

/* HF's names: model.safetensors alone, else model-00001-of-00003.safetensors. */
static void shard_name(const export_plan *plan, int shard, char *out, size_t size)
{
    if (plan->n_shards == 1)
        snprintf(out, size, "model.safetensors");
    else
        snprintf(out, size, "model-%05d-of-%05d.safetensors", shard + 1, plan->n_shards);
}

static int write_shards(const char *dir, const export_plan *plan, safetensors_dtype dtype,
                        kpo_error *err)
{
    safetensors_entry *chosen = malloc((plan->n ? plan->n : 1) * sizeof *chosen);
    if (!chosen)
        return error_set(err, "%s: out of memory", dir);
    int status = KPO_OK;
    for (int shard = 0; shard < plan->n_shards && status == KPO_OK; shard++) {
        size_t n = 0;
        for (size_t k = 0; k < plan->n; k++)
            if (plan->shard[k] == shard)
                chosen[n++] = plan->entries[k];
        char name[64], path[4200];
        shard_name(plan, shard, name, sizeof name);
        status = join_path(path, sizeof path, dir, name, err);
        if (status == KPO_OK)
            status = safetensors_write(path, chosen, n, dtype, err);
    }
    free(chosen);
    return status;
}

/* model.safetensors.index.json as save_pretrained writes it:
 * {"metadata": {"total_size": bytes of tensor data}, "weight_map": {name: shard}}. */
static int write_index(const char *dir, const export_plan *plan, kpo_error *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddNumberToObject(meta, "total_size", (double)plan->total_bytes);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (size_t k = 0; k < plan->n; k++) {
        char name[64];
        shard_name(plan, plan->shard[k], name, sizeof name);
        cJSON_AddStringToObject(map, plan->entries[k].name, name);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char path[4200];
    int status = join_path(path, sizeof path, dir, "model.safetensors.index.json", err);
    if (status == KPO_OK)
        status = text ? model_io_write_atomic(path, text, strlen(text), err)
                      : error_set(err, "%s: out of memory", path);
    free(text);
    return status;
}

/* Everything DIR will hold, written into dir (the temporary one). */
static int write_export(const export_settings *s, const model *m, const char *tokenizer,
                        const char *dir, export_plan *plan, kpo_error *err)
{
    if (mkdir(dir, 0777) != 0)
        return error_set(err, "%s: cannot create directory: %s", dir, strerror(errno));
    if (plan_shards(m, s, plan, err) != KPO_OK || write_shards(dir, plan, s->dtype, err) != KPO_OK)
        return KPO_ERR;
    if (plan->n_shards > 1 && write_index(dir, plan, err) != KPO_OK)
        return KPO_ERR;
    char path[4200];
    if (join_path(path, sizeof path, dir, "config.json", err) != KPO_OK ||
        model_config_save(&m->config, path,
                          s->dtype == SAFETENSORS_BF16 ? "bfloat16" : "float32", err) != KPO_OK)
        return KPO_ERR;
    checkpoint_source source = {.tokenizer = tokenizer, .model_dir = s->model_dir};
    if (checkpoint_write_tokenizer(dir, &source, err) != KPO_OK)
        return KPO_ERR;
    return file_sync_dir_files(dir, err);
}

/* The directory DIR is renamed into: made if missing (mkdir -p). */
static int make_parent(const char *out, char *parent, size_t size, kpo_error *err)
{
    snprintf(parent, size, "%s", out);
    char *slash = strrchr(parent, '/');
    while (slash && slash > parent && slash[1] == '\0') { /* "dir/" */
        *slash = '\0';
        slash = strrchr(parent, '/');
    }
    if (!slash) {
        snprintf(parent, size, ".");
        return KPO_OK;
    }
    if (slash == parent)
        slash[1] = '\0'; /* "/name": the root */
    else
        *slash = '\0';
    return file_make_dirs(parent, err);
}

static int export_main(const export_settings *s, kpo_error *err)
{
    struct stat st;
    if (stat(s->out, &st) == 0 || errno != ENOENT)
        return error_set(err, "--out %s: already exists; refusing to overwrite it", s->out);
    char tok_name[4096], parent[4096], tmp[4200];
    if (train_tokenizer_resolve(s->tokenizer, s->model_dir, tok_name, sizeof tok_name, err) !=
        KPO_OK)
        return KPO_ERR;
    /* A HF directory whose tokenizer is missing or has ids beyond the
     * embedding is broken in ways only its first user would find. */
    tokenizer *tok;
    if (tokenizer_load(&tok, tok_name, err) != KPO_OK)
        return error_prefix(err, "%s: no tokenizer to export (pass --tokenizer byte|DIR): ",
                            s->model_dir);
    const size_t tok_vocab = tokenizer_vocab_size(tok);
    tokenizer_free(tok);
    model m;
    if (model_load(s->model_dir, &m, err) != KPO_OK)
        return KPO_ERR;
    if ((int64_t)tok_vocab > m.config.vocab_size) {
        const long long vocab = (long long)m.config.vocab_size;
        model_free(&m);
        return error_set(err, "%s: vocab_size %lld is smaller than the tokenizer's %zu ids (%s)",
                         s->model_dir, vocab, tok_vocab, tok_name);
    }
    int status = make_parent(s->out, parent, sizeof parent, err);
    if (snprintf(tmp, sizeof tmp, "%s.tmp-export-%ld", s->out, (long)getpid()) >= (int)sizeof tmp)
        status = error_set(err, "--out %s: path too long", s->out);
    export_plan plan = {0};
    if (status == KPO_OK)
        status = write_export(s, &m, tok_name, tmp, &plan, err);
    /* rename() would replace an empty directory made meanwhile: look again. */
    if (status == KPO_OK && stat(s->out, &st) == 0)
        status = error_set(err, "--out %s: appeared while exporting; refusing to overwrite it",
                           s->out);
    if (status == KPO_OK && rename(tmp, s->out) != 0)
        status = error_set(err, "%s: cannot rename into place: %s", s->out, strerror(errno));
    if (status == KPO_OK)
        status = file_sync_path(parent, err);
    else
        file_remove_tree(tmp, NULL);
    if (status == KPO_OK) {
        for (size_t k = 0; k < plan.n; k++)
            if (param_bytes(&m.params[k], s->dtype) > s->max_shard_bytes)
                fprintf(stderr,
                        "kpo: warning: tensor '%s' (%lld bytes) is larger than --max-shard-size "
                        "and has a shard of its own\n",
                        m.params[k].name, (long long)param_bytes(&m.params[k], s->dtype));
        if (strcmp(tok_name, "byte") == 0)
            fprintf(stderr, "kpo: note: the byte tokenizer has no Hugging Face form; %s records "
                            "it in kpo_model.json only\n", s->out);
        printf("%s: %zu tensors, %s, %d shard%s, %lld bytes of weights, tokenizer %s\n", s->out,
               plan.n, safetensors_dtype_name(s->dtype), plan.n_shards,
               plan.n_shards == 1 ? "" : "s", (long long)plan.total_bytes, tok_name);
    }
    plan_free(&plan);
    model_free(&m);
    return status;
}

int cmd_export(int argc, char **argv)
{
    cli_option options[] = {
        {"out", "DIR", "the Hugging Face model directory to write (required; must not exist)",
         NULL},
        {"dtype", "bf16|f32", "weight dtype (default bf16, rounded to nearest even)", NULL},
        {"max-shard-size", "SIZE", "largest shard, e.g. 5GB (default), 500MB, 2GiB; one shard "
                                   "is model.safetensors, more get an index", NULL},
        {"tokenizer", "byte|DIR", "default: the model's kpo_model.json \"tokenizer\", else the "
                                  "model directory's own files", NULL},
    };
    cli_command_spec spec = {"export", "MODEL_DIR --out DIR [--dtype bf16|f32] [--max-shard-size SIZE]",
                             "Write a kpo checkpoint as a Hugging Face model directory: sharded "
                             "safetensors + index, config.json, generation_config.json, the "
                             "tokenizer's files.",
                             CLI_OPTIONS(options)};
    const char *positional[1];
    int status = command_start_one(&spec, argc, argv, positional,
                                   "kpo export: give one model directory (a checkpoint)");
    if (status >= 0)
        return status;
    kpo_error err;
    export_settings s = {.model_dir = positional[0], .out = cli_get(&spec, "out"),
                         .tokenizer = cli_get(&spec, "tokenizer"), .dtype = SAFETENSORS_BF16};
    if (!s.out || !s.out[0])
        return command_fail("kpo export: --out DIR is required");
    const char *dtype = cli_get(&spec, "dtype");
    if (dtype && strcmp(dtype, "f32") == 0)
        s.dtype = SAFETENSORS_F32;
    else if (dtype && strcmp(dtype, "bf16") != 0)
        return command_fail("--dtype: must be bf16 or f32");
    const char *size = cli_get(&spec, "max-shard-size");
    if (parse_size(size ? size : DEFAULT_SHARD_SIZE, &s.max_shard_bytes, &err) != KPO_OK ||
        export_main(&s, &err) != KPO_OK)
        return command_fail(err.message);
    return 0;
}
